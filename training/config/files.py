"""Settings files: the `--config` TOML a user writes, and the config.json a run saves.

A TOML file may hold top-level keys (shared by every sub-command that has a field of that name,
e.g. `cache`) and one table per sub-command (`[prepare]`, `[train]`, ...). Precedence: dataclass
default < top-level key < the command's table < command-line option. Unknown keys in a table are
refused, so a typo cannot silently fall back to a default.

A run's saved settings are read the other way round: leniently. They carry `config_version`;
renamed fields are carried over, fields this version does not know are dropped with a warning,
and today's range checks are not applied (they guard new input, and the run was valid when it
ran), so evaluating or exporting an old run keeps working after a field is added, renamed or
its check tightened.
"""
from __future__ import annotations

import dataclasses
import logging
import tomllib
import typing
from pathlib import Path
from typing import Any

from training.config.base import ConfigError, coerce_value, field_default
from training.config.classifier import (CalibrateConfig, EvaluateConfig, ExportConfig, PredictConfig, RecoverConfig, SoupConfig,
                                         TeachConfig, TrainConfig, TuneConfig)
from training.config.data import EdaConfig, PrepareConfig, SplitConfig
from training.config.detector import EvalDetectorConfig, ExportDetectorConfig, FinetuneDetectorConfig, SynthConfig

log = logging.getLogger(__name__)

#: Sub-command -> its settings; also the names of the TOML tables.
SECTIONS: dict[str, type] = {
    "export-detector": ExportDetectorConfig,
    "prepare": PrepareConfig,
    "eda": EdaConfig,
    "split": SplitConfig,
    "train": TrainConfig,
    "teach": TeachConfig,
    "tune": TuneConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
    "calibrate": CalibrateConfig,
    "soup": SoupConfig,
    "recover": RecoverConfig,
    "predict": PredictConfig,
    "synth": SynthConfig,
    "eval-detector": EvalDetectorConfig,
    "finetune-detector": FinetuneDetectorConfig,
}

#: Version of the settings a run saves (config.json, checkpoints). 2: fields renamed so that one
#: name means one thing across sub-commands (the old names live on as their options' other flags:
#: `aliases`).
CONFIG_VERSION = 2


def load_toml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def make_config(cls: type, toml: dict[str, Any] | None = None, section: str | None = None, **overrides: Any):
    """`cls` from its defaults, the TOML file's top-level keys and `[section]`, then `overrides`."""
    names = field_names(cls)
    values: dict[str, Any] = {}
    toml = toml or {}
    shared = {k: v for k, v in toml.items() if k not in SECTIONS}
    nobody = sorted(k for k in shared if not any(k in field_names(c) for c in SECTIONS.values()))
    if nobody:
        log.warning("no sub-command has the top-level setting(s) %s (ignored)", ", ".join(nobody))
    values.update({k: v for k, v in shared.items() if k in names})
    if section is not None and isinstance(toml.get(section), dict):
        table = _renamed_keys(cls, section, toml[section])
        unknown = sorted(set(table) - names)
        if unknown:
            raise ConfigError(f"[{section}] has unknown settings: {', '.join(unknown)}")
        values.update(table)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    values.update(overrides)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def aliases(cls: type) -> dict[str, str]:
    """Other names of fields: their other flags as keys (`--workers` -> workers), e.g. a field's name
    before it was renamed so that one name means one thing across sub-commands."""
    out = {}
    for f in dataclasses.fields(cls):
        for flag in f.metadata.get("flags", ()):
            key = flag.lstrip("-").replace("-", "_")
            if key != f.name and len(flag) > 2 and not flag.startswith("--no-"):  # --no-flip is flip's opposite
                out[key] = f.name
    return out


def _renamed_keys(cls: type, section: str, table: dict[str, Any]) -> dict[str, Any]:
    """A command's table with old names of its fields replaced (with a warning): old files keep working."""
    table = dict(table)
    for old, new in aliases(cls).items():
        if old in table and new not in table:
            log.warning("[%s] %s is now called %s", section, old, new)
            table[new] = table.pop(old)
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-friendly: paths as strings, tuples as lists."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def saved_dict(config: Any) -> dict[str, Any]:
    """What a run saves of its settings: to_dict with the config_version."""
    return {"config_version": CONFIG_VERSION, **to_dict(config)}


def load_saved(cls: type, saved: dict[str, Any], where: str = "saved settings"):
    """`cls` from settings a run saved (saved_dict), whichever version wrote them (see the module doc)."""
    values = dict(saved)
    version = values.pop("config_version", 1)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        log.warning("%s: config_version %r is newer than this code's (%d): reading what it can", where, version, CONFIG_VERSION)
        version = CONFIG_VERSION
    if version < CONFIG_VERSION:
        for old, new in aliases(cls).items():
            if old in values and new not in values:
                values[new] = values.pop(old)
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - field_names(cls))
    if unknown:
        log.warning("%s: settings this version does not know, ignored: %s", where, ", ".join(unknown))
    config = object.__new__(cls)  # no __post_init__: today's checks are for new input
    for f in dataclasses.fields(cls):
        value = field_default(f)
        if f.name in values:
            try:
                value = coerce_value(f.name, values[f.name], hints[f.name])
            except ConfigError as exc:
                log.warning("%s: %s (the default %r is used)", where, exc, value)
        object.__setattr__(config, f.name, value)
    return config
