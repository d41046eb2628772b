"""The built wheel, installed non-editable into a new runtime-only venv, works from any directory.

`pip install -e .` finds assets/ beside the packages; a wheel has to carry them (pyproject's
data-files put them in <prefix>/share/mask-checker/assets). This builds the wheel, installs it
with the runtime dependencies only (no torch), pinned by constraints.txt, and runs what a user of
`pip install mask-checker` / pipx would: `--self-test` and `batch`, from a folder far from the checkout.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = "Scripts" if sys.platform == "win32" else "bin"


def run(cmd: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MASK_CHECKER_ASSETS", "PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv holding the wheel and the runtime dependencies, nothing else; returns its bin/."""
    root = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(REPO)], cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((root / "dist").glob("mask_checker-*.whl"))
    base_python = getattr(sys, "_base_executable", sys.executable)
    made = run([base_python, "-m", "venv", str(root / "venv")], cwd=root)
    assert made.returncode == 0, made.stderr[-3000:]
    bin_dir = root / "venv" / BIN
    pip = [str(bin_dir / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q", "-c", str(REPO / "constraints.txt")]
    result = run([*pip, str(wheel)], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return bin_dir


@pytest.mark.slow
def test_the_wheel_is_runtime_only_and_carries_its_assets(installed):
    python = str(installed / "python")
    result = run([python, "-c", "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('timm') is None)"], cwd=installed)
    assert result.stdout.split() == ["True", "True"], "the runtime install pulled in training packages"
    result = run([python, "-c", "from core.config import assets_dir, default_classifier_path; print(assets_dir()); print(default_classifier_path().is_file())"], cwd=installed)
    assets, classifier_found = result.stdout.split()
    assert Path(assets).is_relative_to(installed.parent), f"assets found outside the venv: {assets}"
    assert classifier_found == "True", result.stderr


@pytest.mark.slow
def test_the_installed_wheel_passes_its_self_test_from_any_directory(installed, tmp_path):
    elsewhere = tmp_path / "somewhere else"
    elsewhere.mkdir()
    result = run([str(installed / "mask-checker"), "--self-test"], cwd=elsewhere, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "self-test passed" in result.stdout
    assert "ok soak: " in result.stdout and "ok window: platform 'offscreen'" in result.stdout


@pytest.mark.slow
def test_the_installed_wheel_labels_photos_from_any_directory(installed, tmp_path, samples_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in samples_dir.glob("*.jpg"):
        shutil.copy(photo, photos / photo.name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    result = run([str(installed / "mask-checker"), "batch", "photos", "--out", "results.csv"], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {Path(r["file"]).name for r in rows} == {p.name for p in photos.iterdir()}
    assert [r["status"] for r in rows if Path(r["file"]).name == "broken.jpg"] == ["error"]
    faces = [r for r in rows if r["status"] == "face"]
    assert len(faces) >= 4 and all(r["mask"] for r in faces), "the shipped classifier did not label the faces"
