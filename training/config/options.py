"""The command line of a settings dataclass, generated from its fields' declarations.

Each field declared with `setting(...)` becomes one option: its flags, help, metavar and choices
come from the declaration, its type and number of values from the type hint, and its help ends
with the default. Options given are the only ones in the namespace (default SUPPRESS), so the
TOML file and the dataclass default apply to the rest.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from training.config.base import ConfigError, field_default
from training.config.files import load_toml, make_config


def _inner(hint: Any) -> Any:
    """X of `X | None`."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _shown(default: Any) -> str:
    if isinstance(default, (tuple, list)):
        return " ".join(_shown(v) if isinstance(v, (tuple, list)) else str(v) for v in default)
    if isinstance(default, dict):
        return " ".join(f"{k}={v}" for k, v in default.items())
    return "" if default is None else str(default)


def option_kwargs(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """argparse's keyword arguments for field `f` (type hint `hint`)."""
    meta = f.metadata
    hint = _inner(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    default = field_default(f)
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if hint is bool:
        kwargs["action"] = "store_false" if default else "store_true"
        return kwargs
    if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed number of values
        kwargs.update(nargs=len(args), type=args[0])
    elif origin is tuple:
        item = args[0]
        if typing.get_origin(item) is tuple:  # repeatable groups of values
            kwargs.update(action="append", nargs=len(typing.get_args(item)), type=typing.get_args(item)[0])
        else:
            kwargs.update(type=item, **({"action": "append"} if meta["repeat"] else {"nargs": "+"}))
    elif origin is dict:  # NAME=VALUE pairs, parsed by `pairs`
        kwargs.update({"action": "append"} if meta["repeat"] else {"nargs": "+"})
    else:
        kwargs["type"] = hint
    if meta["metavar"] is not None:
        kwargs["metavar"] = meta["metavar"]
    if meta["choices"] is not None:
        kwargs["choices"] = meta["choices"]
    shown = _shown(default)
    if shown and not meta["positional"]:
        kwargs["help"] = f"{kwargs['help']} (default: {shown})"
    return kwargs


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of `cls` (file-only fields excepted), in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting(): it has no option")
        if meta["file_only"]:
            continue
        kwargs = option_kwargs(f, hints[f.name])
        if meta["positional"]:
            parser.add_argument(f.name, **kwargs)
        else:
            flags = meta["flags"] or (f"--{f.name.replace('_', '-')}",)
            parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, **kwargs)


def pairs(items: list[str], option: str, convert: Any = str) -> dict[str, Any]:
    """["a=b", ...] -> {"a": b}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes NAME=VALUE, not {item!r}")
        try:
            out[key] = convert(value)
        except ValueError as exc:
            raise ConfigError(f"{option} {item!r}: {exc}") from exc
    return out


def from_args(cls: type, args: argparse.Namespace, section: str):
    """`cls` from its defaults, the --config file and the options given on the command line."""
    hints = typing.get_type_hints(cls)
    given = vars(args)
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in given:
            continue
        value = given[f.name]
        hint = _inner(hints[f.name])
        if typing.get_origin(hint) is dict:
            flag = (f.metadata["flags"] or (f"--{f.name.replace('_', '-')}",))[0]
            value = pairs(value, flag, typing.get_args(hint)[1])
        overrides[f.name] = value
    return make_config(cls, load_toml(getattr(args, "config", None)), section, **overrides)
