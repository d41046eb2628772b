"""The machinery under every settings dataclass: declaring a field once, with its help text and
flags, and turning TOML/JSON values into the declared types.

A field is declared with `setting(default, "help text", flags=..., metavar=...)`; the argparse
options (training.config.options) and the TOML tables (training.config.files) are both made from
these declarations, so a setting cannot exist in one place and not the other.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MISSING: Any = dataclasses.MISSING


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names it."""


def setting(default: Any = _MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            flags: tuple[str, ...] = (), metavar: str | tuple[str, ...] | None = None,
            choices: tuple[Any, ...] | None = None, repeat: bool = False, positional: bool = False,
            file_only: bool = False) -> Any:
    """A dataclass field that also declares its command-line option.

    flags: the option strings (default `--field-name`); the first names the option in messages.
    repeat: a tuple/dict field given as a repeated option (`--data A --data B`) rather than as
    several values after one (`--nets pnet rnet`). positional: an argument without a flag.
    file_only: set only in the --config file (a nested table the command line cannot spell).
    """
    metadata = {"help": help, "flags": flags, "metavar": metavar, "choices": choices,
                "repeat": repeat, "positional": positional, "file_only": file_only}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def coerce(config: Any) -> None:
    """Turn TOML/JSON values into the declared types (str -> Path, list -> tuple, int -> float)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        new = coerce_value(f.name, value, hints[f.name])
        if new is not value:
            object.__setattr__(config, f.name, new)


def coerce_value(name: str, value: Any, hint: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return coerce_value(name, value, inner[0])
    try:
        if hint is Path:
            return value if isinstance(value, Path) else Path(value)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint in (int, str) and (not isinstance(value, hint) or isinstance(value, bool)):
            raise ConfigError(f"{name} must be of type {hint.__name__}, not {value!r}")
        if hint is float and not isinstance(value, float):
            raise ConfigError(f"{name} must be a number, not {value!r}")
        if hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
        if origin is tuple:
            items = (value,) if isinstance(value, (str, Path)) else tuple(value)
            if args and args[-1] is not Ellipsis:
                if len(items) != len(args):
                    raise ConfigError(f"{name} needs {len(args)} values, got {len(items)}")
                return tuple(coerce_value(name, v, a) for v, a in zip(items, args))
            return tuple(coerce_value(name, v, args[0]) for v in items) if args else items
        if origin is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table, not {value!r}")
            return {str(k): coerce_value(name, v, args[1]) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{name}: {exc}") from exc
    return value
