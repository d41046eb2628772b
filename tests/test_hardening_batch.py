"""Issue 18: no input, output path or signal crashes `mask-checker batch` or loses results.

Real photos, the real detector and a real (randomly initialised) classifier; signals are sent
to a real `mask-checker batch` process.
"""
from __future__ import annotations

import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest

from app.cli import main
from core.analyzer import FaceAnalyzer
from core.batch import BatchJob
from core.config import AnalyzerConfig

REPO = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:  # strict UTF-8: the file must be valid
        return list(csv.DictReader(handle))


def rows_by_name(path: Path) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    for row in read_rows(path):
        rows.setdefault(Path(row["file"]).name, []).append(row)
    return rows


@pytest.fixture
def photo(shared_data: Path) -> Path:
    """A real web photo with one face."""
    return sorted((shared_data / "mask_web" / "without_mask").iterdir())[0]


@pytest.fixture
def batch(random_classifier: Path):
    def run(*args: str | Path) -> int:
        return main(["batch", *map(str, args), "--model", str(random_classifier)])

    return run


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Path:
    """A folder no file can be created in (mode 555; as root, /sys, which root cannot write either)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            yield candidate
            break
    else:
        pytest.skip("no folder here refuses writing")
    folder.chmod(0o755)


# ------------------------------------------------------------------------ inputs (1, 2, 6, 12)


def test_symlink_loop_among_inputs_is_an_error_row(tmp_path, photo, batch):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "real.jpg")
    (folder / "a.jpg").symlink_to(folder / "b.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    out = tmp_path / "results.csv"
    assert batch(folder, folder / "a.jpg", "--out", out, "--annotate", tmp_path / "ann") == 0
    rows = rows_by_name(out)
    assert set(rows) == {"real.jpg", "a.jpg", "b.jpg"}
    assert all(r["status"] == "error" and "symbolic links" in r["message"] for r in rows["a.jpg"] + rows["b.jpg"])
    assert rows["real.jpg"][0]["status"] == "face"


def test_file_name_that_is_not_utf8_gets_a_row(tmp_path, photo, batch):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / os.fsdecode(b"caf\xe9.jpg"))
    out, out_json = tmp_path / "results.csv", tmp_path / "results.json"
    assert batch(folder, "--out", out) == 0
    assert batch(folder, "--out", out_json, "--annotate", tmp_path / "ann") == 0
    (row,) = read_rows(out)
    assert row["file"].endswith("caf\\xe9.jpg") and row["status"] == "face"
    assert "not valid UTF-8" in row["message"]
    assert "caf\\\\xe9.jpg" in out_json.read_text(encoding="utf-8")
    assert [p.name for p in (tmp_path / "ann").iterdir()] == [os.fsdecode(b"caf\xe9.jpg")]


def test_long_input_name_is_annotated(tmp_path, photo, batch):
    name = "a" * 246 + ".jpg"  # 250 bytes: valid, but the temporary name used to be 264
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / name)
    ann = tmp_path / "ann"
    assert batch(folder, "--out", tmp_path / "r.csv", "--annotate", ann) == 0
    assert cv2.imread(str(ann / name)) is not None


def test_heic_in_a_folder_gets_an_error_row(tmp_path, photo, batch):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "ok.jpg")
    (folder / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    out = tmp_path / "r.csv"
    assert batch(folder, "--out", out) == 0
    (row,) = rows_by_name(out)["IMG_0001.HEIC"]
    assert row["status"] == "error" and "HEIC" in row["message"]


# ----------------------------------------------------------------------------- outputs (5, 7)


def test_out_naming_a_folder_fails_before_any_work(tmp_path, photo, batch, caplog):
    folder = tmp_path / "results.csv"
    folder.mkdir()
    assert batch(photo, "--out", folder) == 2
    assert "is a folder" in caplog.text and "labelling" not in caplog.text
    assert folder.is_dir() and not list(folder.iterdir())


def test_out_in_a_read_only_folder_is_one_line(tmp_path, photo, batch, read_only_dir, caplog):
    assert batch(photo, "--out", read_only_dir / "results.csv") == 2
    assert "cannot write" in caplog.text


def test_annotate_naming_a_file_or_a_read_only_folder(tmp_path, photo, batch, read_only_dir, caplog):
    a_file = tmp_path / "ann.txt"
    a_file.write_text("keep me")
    assert batch(photo, "--out", tmp_path / "r.csv", "--annotate", a_file) == 2
    assert a_file.read_text() == "keep me" and not (tmp_path / "r.csv").exists()
    assert batch(photo, "--out", tmp_path / "r.csv", "--annotate", read_only_dir) == 2
    assert "cannot write annotated copies" in caplog.text


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-3"])
def test_max_mpx_must_be_a_positive_finite_number(photo, batch, capsys, value):
    with pytest.raises(SystemExit) as stop:
        batch(photo, "--max-mpx", value)
    assert stop.value.code == 2 and "--max-mpx" in capsys.readouterr().err


def test_submission_never_lands_on_an_annotated_copy(tmp_path, photo, batch):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photo, folder / "x.jpg")
    info = tmp_path / "info.csv"
    info.write_text("ImageID,ans\nx.jpg,0\n")
    ann = tmp_path / "ann"
    assert batch(folder, "--annotate", ann, "--submission", info, "--submission-out", ann / "x.jpg") == 0
    assert (ann / "x.jpg").read_text().startswith("ImageID,ans")
    assert cv2.imread(str(ann / "x_annotated.jpg")) is not None


# ------------------------------------------------------------------ interruptions (3, 4, 12)


class InterruptedAnalyzer(FaceAnalyzer):
    """The real analyzer, stopped by Ctrl-C while it works on the first image."""

    def analyze(self, image_bgr, reduction=1):
        raise KeyboardInterrupt


def test_ctrl_c_before_the_first_image_keeps_the_previous_results(tmp_path, photo, random_classifier):
    out = tmp_path / "results.csv"
    out.write_text("previous good results\n")
    analyzer = InterruptedAnalyzer(AnalyzerConfig(classifier_path=random_classifier))
    summary = BatchJob(paths=[photo], out=out).run(analyzer)
    assert summary.interrupted and summary.done == 0 and not summary.outputs
    assert out.read_text() == "previous good results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def start_batch(folder: Path, out: Path, model: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "-v", "batch", str(folder), "--out", str(out), "--model", str(model)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", **popen,
    )


def wait_for_first_image(process: subprocess.Popen) -> list[str]:
    """Stderr lines up to the first image done (the CLI logs each at debug level)."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("DEBUG mask_checker:") and line.rstrip().endswith((": face", ": no_face", ": error")):
            return lines
    raise AssertionError("the batch ended before any image was done:\n" + "".join(lines))


@pytest.fixture
def many_photos(tmp_path, samples_dir) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        shutil.copy(samples_dir / "scene_mixed.jpg", folder / f"p{i:02d}.jpg")
    return folder


def test_sigterm_then_ctrl_c_writes_the_images_done(tmp_path, many_photos, random_classifier):
    out = tmp_path / "results.csv"
    process = start_batch(many_photos, out, random_classifier)
    lines = wait_for_first_image(process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # (signals pending together are handled lowest number first: SIGINT would win)
    process.send_signal(signal.SIGINT)  # a second signal while stopping must not cut the writing short
    _, err = process.communicate(timeout=120)
    err = "".join(lines) + err
    assert process.returncode == 143, err
    assert "Traceback" not in err
    names = {Path(r["file"]).name for r in read_rows(out)}
    assert 1 <= len(names) < 40
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigkill_leaves_no_temporary_file(tmp_path, many_photos, random_classifier):
    out = tmp_path / "results.csv"
    process = start_batch(many_photos, out, random_classifier)
    wait_for_first_image(process)
    process.kill()
    process.communicate(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many"]


def test_ctrl_c_during_start_up_is_quiet_and_writes_nothing(tmp_path, photo, random_classifier):
    out = tmp_path / "results.csv"
    out.write_text("previous good results\n")
    process = start_batch(photo, out, random_classifier)
    lines = []
    for line in process.stderr:  # the detector is loaded, the classifier not yet
        lines.append(line)
        if "core.mtcnn: MTCNN from" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    err = "".join(lines) + err
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert out.read_text() == "previous good results\n"


def test_disk_full_is_one_line_and_keeps_the_previous_file(tmp_path, many_photos, random_classifier):
    """The process may write files of at most 2 kB (RLIMIT_FSIZE: writes past it fail as on a
    full disk); the results of 40 photos need more."""
    out = tmp_path / "results.csv"
    out.write_text("previous good results\n")

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))

    process = start_batch(many_photos, out, random_classifier, preexec_fn=small_files)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 3, err
    assert "Traceback" not in err and "cannot write" in err
    assert out.read_text() == "previous good results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "results.csv"]
