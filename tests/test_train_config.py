"""Settings: dataclass defaults < TOML (top level < [command]) < command line; every command has --help;
every setting is declared once (the options are made from the fields) and means one thing."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import typing
from pathlib import Path

import pytest

from training.cli import _build_parser, main
from training.config import (
    SECTIONS,
    ConfigError,
    EvalDetectorConfig,
    PrepareConfig,
    SplitConfig,
    TrainConfig,
    load_saved,
    load_toml,
    make_config,
)

COMMANDS = tuple(SECTIONS)
#: A positional argument per command that needs one, to parse the rest.
POSITIONAL = {"predict": ["photos"], "synth": ["faces"], "soup": ["run_a", "run_b"]}


def test_toml_then_command_line(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'cache = "shared_cache"\n'
        "seed = 7\n"
        "[train]\n"
        'model = "resnet18"\n'
        "epochs = 3\n"
        "scale = [0.9, 1.1]\n"
        "lr = 1\n"
        "[prepare]\n"
        'data = ["utkface=/x"]\n'
        "class_map = { chin_out = \"incorrect\" }\n"
    )
    toml = load_toml(path)
    config = make_config(TrainConfig, toml, "train", epochs=5)
    assert config.cache == Path("shared_cache") and config.seed == 7 and config.model == "resnet18"
    assert config.epochs == 5  # the command line wins
    assert config.scale == (0.9, 1.1) and config.lr == 1.0 and isinstance(config.lr, float)
    assert config.resolved_run_dir == Path("shared_cache/runs/resnet18_fold0")
    prepare = make_config(PrepareConfig, toml, "prepare")
    assert prepare.data == ("utkface=/x",) and prepare.class_map == {"chin_out": "incorrect"}
    assert prepare.cache == Path("shared_cache")


def test_typos_and_bad_values_are_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nepoks = 3\n")
    with pytest.raises(ConfigError, match="unknown settings: epoks"):
        make_config(TrainConfig, load_toml(path), "train")
    with pytest.raises(ConfigError, match="sampler"):
        TrainConfig(sampler="balanced")
    with pytest.raises(ConfigError, match="trunk_input must be within"):
        TrainConfig(trunk_input=8)
    with pytest.raises(ConfigError, match="epochs must be of type int"):
        make_config(TrainConfig, {"train": {"epochs": "many"}}, "train")
    with pytest.raises(ConfigError, match="at least one dataset"):
        PrepareConfig()
    with pytest.raises(ConfigError, match="cannot read config"):
        load_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: mask-train " + command in capsys.readouterr().out


def test_config_file_on_the_command_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[split]\ncache = "{tmp_path / "nowhere"}"\n')
    # The file's cache is used (and reported missing): exit code 2, no traceback.
    assert main(["split", "--config", str(path)]) == 2


def _sub_parser(command: str) -> argparse.ArgumentParser:
    parser = _build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_has_its_option_and_every_option_its_field(command):
    fields = {f.name for f in dataclasses.fields(SECTIONS[command]) if not f.metadata["file_only"]}
    options = {a.dest for a in _sub_parser(command)._actions} - {"help", "config"}
    assert options == fields
    for f in dataclasses.fields(SECTIONS[command]):
        assert f.metadata["help"], f"{command}: {f.name} has no help text"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_a_config_file(command, tmp_path):
    args = _build_parser().parse_args([command, *POSITIONAL.get(command, []), "--config", str(tmp_path / "x.toml")])
    assert args.config == tmp_path / "x.toml"


def test_one_name_means_one_thing_across_commands():
    """A top-level TOML key goes to every command with a field of that name: so the name must have
    the same type everywhere, and no field may be named like a command's table."""
    seen: dict[str, tuple[str, object]] = {}
    for command, cls in SECTIONS.items():
        for name, hint in typing.get_type_hints(cls).items():
            hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if type(None) in typing.get_args(hint) else hint
            assert name not in SECTIONS, f"{command}.{name} is also a table name"
            if name in seen:
                assert hint == seen[name][1], f"{name}: {hint} in {command}, {seen[name][1]} in {seen[name][0]}"
            seen.setdefault(name, (command, hint))


def test_top_level_keys_serve_every_command(tmp_path, caplog):
    toml = {"cache": "c", "num_folds": 3, "run_folds": "all", "folds": 5}
    assert make_config(SplitConfig, toml, "split").num_folds == 3
    train = make_config(TrainConfig, toml, "train")  # `folds = 5` once broke train ("must be of type str")
    assert train.run_folds == "all" and train.cache == Path("c")
    assert "no sub-command has the top-level setting(s) folds" in caplog.text


def test_old_names_in_a_table_still_work(caplog):
    toml = {"train": {"workers": 0, "threads": 2, "folds": "all"}, "split": {"folds": 4}}
    train = make_config(TrainConfig, toml, "train")
    assert (train.loader_workers, train.torch_threads, train.run_folds) == (0, 2, "all")
    assert make_config(SplitConfig, toml, "split").num_folds == 4
    assert "[train] workers is now called loader_workers" in caplog.text


def test_options_reach_their_fields():
    args = _build_parser().parse_args(["train", "--folds", "all", "--workers", "0", "--threads", "2", "--no-flip",
                                       "--head-weights", "mask=2", "age=0.5", "--scale", "0.9", "1.2"])
    from training.config.options import from_args

    config = from_args(TrainConfig, args, "train")
    assert (config.run_folds, config.loader_workers, config.torch_threads, config.flip) == ("all", 0, 2, False)
    assert config.head_weights == {"mask": 2.0, "age": 0.5} and config.scale == (0.9, 1.2)
    args = _build_parser().parse_args(["eval-detector", "--min-face", "20", "--min-face", "40", "--thresholds", "0.5", "0.6", "0.7",
                                       "--detector", "a", "--detector", "b", "--label", "x", "--label", "y", "--split", "all"])
    config = from_args(EvalDetectorConfig, args, "eval-detector")
    assert config.min_faces == (20, 40) and config.threshold_sets == ((0.5, 0.6, 0.7),)
    assert config.detectors == (Path("a"), Path("b")) and config.labels == ("x", "y") and config.scene_split == "all"
    with pytest.raises(ConfigError, match="--class-map takes NAME=VALUE"):
        from_args(PrepareConfig, _build_parser().parse_args(["prepare", "--data", "x", "--class-map", "nope"]), "prepare")


def test_a_saved_run_config_of_another_version_still_loads(tmp_path, caplog):
    """Version 1 (no config_version) used other names; a field this code does not know and a value
    today's checks refuse must not stop evaluating or exporting the run."""
    saved = {"cache": "c", "model": "m", "folds": "", "workers": 3, "threads": None, "patience": 0, "a_future_setting": 1}
    with caplog.at_level(logging.WARNING):
        config = load_saved(TrainConfig, saved, "run/config.json")
    assert (config.loader_workers, config.torch_threads, config.patience, config.cache) == (3, None, 0, Path("c"))
    assert "a_future_setting" in caplog.text
    assert load_saved(TrainConfig, {"config_version": 2, "epochs": "many"}).epochs == TrainConfig().epochs


def test_load_best_reads_an_old_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from training import checkpoint
    from training.classifier.evaluate import load_best

    run = tmp_path / "run"
    state = {"config": json.dumps({"cache": "c", "model": "m", "workers": 2, "renamed_later": True}), "epoch": 1}
    checkpoint.save(run / "checkpoints" / "best.pt", state)
    config, loaded = load_best(run)
    assert config.loader_workers == 2 and config.model == "m" and loaded["epoch"] == 1
