"""`mask-train tune`: two tiny Ray Tune trials (Optuna + ASHA) on a local Ray, and the best
configuration read back by `mask-train train --config best.toml`."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("ray.tune")
pytest.importorskip("optuna")

from training.cli import main  # noqa: E402
from training.config import ConfigError, PrepareConfig, SplitConfig, TrainConfig, load_toml, make_config, to_dict  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from training.classifier.tune import NOT_WRITTEN, check_space  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

SETTINGS = """
[train]
model = "mobilenetv3_small_050"
batch_size = 8
loader_workers = 0
device = "cpu"
warmup_epochs = 0.5
sampler = "weighted"

[tune]
num_samples = 2
max_epochs = 2
grace_epochs = 1
cpus_per_trial = 1
num_cpus = 2
seed = 4

[tune.space]
lr = { loguniform = [1e-4, 3e-3] }
label_smoothing = { uniform = [0.0, 0.2] }
augment = { uniform = [0.5, 1.5] }
"""


def test_search_space_mistakes_are_named():
    with pytest.raises(ConfigError, match="lrate: not a train setting"):
        check_space({"lrate": {"uniform": [0, 1]}})
    with pytest.raises(ConfigError, match="epochs: set by tune itself"):
        check_space({"epochs": {"choice": [1, 2]}})
    with pytest.raises(ConfigError, match="uniform takes 2 values"):
        check_space({"lr": {"uniform": [0.1]}})
    with pytest.raises(ConfigError, match="write one of"):
        check_space({"lr": {"gaussian": [0, 1]}})
    assert "lr" in check_space({})  # the default space


def test_two_tiny_trials_and_best_toml_round_trip(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    layout_competition(tmp_path / "competition", shared_data, people=6)
    cache = tmp_path / "cache"
    prepare(PrepareConfig(data=(f"competition={tmp_path / 'competition'}",), cache=cache, input_size=64), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    settings = tmp_path / "tune.toml"
    settings.write_text(SETTINGS)
    out = tmp_path / "tune"
    assert main(["tune", "--config", str(settings), "--cache", str(cache), "--out", str(out)]) == 0

    with open(out / "results.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 2 and {t["status"] for t in trials} == {"done"}
    assert float(trials[0]["best_score"]) >= float(trials[1]["best_score"])  # best first
    for trial in trials:
        assert 1e-4 <= float(trial["lr"]) <= 3e-3 and 0.5 <= float(trial["augment"]) <= 1.5
        run = Path(trial["run_dir"])
        assert (run / "checkpoints" / "best.pt").is_file()  # each trial is a real training run
        with open(run / "metrics.csv", newline="") as handle:
            assert 1 <= len(list(csv.DictReader(handle))) == int(trial["epochs"]) <= 2
        ran = json.loads((run / "config.json").read_text())
        assert ran["lr"] == pytest.approx(float(trial["lr"])) and ran["sampler"] == "weighted"  # [train] + the draw
        assert ran["color_jitter"] == pytest.approx(0.3 * float(trial["augment"]))

    # best.toml is the best trial's settings as a [train] table that train accepts.
    best = make_config(TrainConfig, load_toml(out / "best.toml"), "train")
    ran = json.loads((Path(trials[0]["run_dir"]) / "config.json").read_text())
    written = to_dict(best)
    ignored = (*NOT_WRITTEN, "config_version")  # the saved file also says its settings' version
    assert {k: v for k, v in written.items() if k not in ignored} == {k: v for k, v in ran.items() if k not in ignored}
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "best.toml"), "--run-dir", str(again), "--epochs", "1",
                 "--workers", "0", "--threads", "1", "--device", "cpu"]) == 0
    assert (again / "checkpoints" / "best.pt").is_file()
    assert json.loads((again / "config.json").read_text())["lr"] == pytest.approx(float(trials[0]["lr"]))
