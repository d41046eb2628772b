"""`mask-train` meets bad input with one line and exit status 2, never a traceback: a missing or
broken model file, a broken detector, a reference detector that is not one."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from core.config import default_detector_dir
from training.cli import main


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_predict_with_a_missing_model_is_one_line(tmp_path, samples_dir, caplog):
    missing = tmp_path / "missing.onnx"
    assert main(["predict", str(samples_dir), "--model", str(missing), "--out", str(tmp_path / "p.csv")]) == 2
    errors = _errors(caplog)
    assert len(errors) == 1 and "missing.onnx" in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "p.csv").exists()


def test_predict_with_a_model_that_is_not_one_is_one_line(tmp_path, samples_dir, caplog):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    assert main(["predict", str(samples_dir), "--model", str(bogus), "--out", str(tmp_path / "p.csv")]) == 2
    assert len(_errors(caplog)) == 1 and "bogus.onnx" in _errors(caplog)[0]


def _broken_detector(tmp_path: Path) -> Path:
    """The shipped detector with P-Net copied over O-Net (issue 18's hostile case)."""
    folder = tmp_path / "broken"
    shutil.copytree(default_detector_dir(), folder)
    shutil.copy(folder / "pnet.onnx", folder / "onet.onnx")
    return folder


def test_eval_detector_with_a_broken_detector_is_one_line(tmp_path, shared_data, caplog):
    out = tmp_path / "eval.md"
    assert main(["eval-detector", "--data", str(shared_data), "--detector", str(_broken_detector(tmp_path)), "--out", str(out)]) == 2
    errors = _errors(caplog)
    assert len(errors) == 1 and "onet" in errors[0]
    assert not out.exists()


def test_synth_with_a_reference_that_is_no_detector_is_one_line(tmp_path, shared_data, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    chips = tmp_path / "chips"
    chips.mkdir()
    for chip in sorted((shared_data / "utkface" / "images").glob("*.jpg"))[:2]:
        shutil.copy(chip, chips / chip.name)
    assert main(["synth", str(chips), "--out", str(tmp_path / "out"), "--reference", str(empty)]) == 2
    errors = _errors(caplog)
    assert len(errors) == 1 and "pnet.onnx" in errors[0]

