"""Settings: dataclass defaults < TOML (top level < [command]) < command line; every command has --help."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.cli import _build_parser, main
from training.config import ConfigError, PrepareConfig, TrainConfig, load_toml, make_config

COMMANDS = ("export-detector", "prepare", "split", "train", "evaluate", "export", "predict")


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
