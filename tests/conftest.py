"""Shared fixtures: the real photos in ../shared/data and a small randomly initialised classifier."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_path() -> Path:
    return Path(os.environ.get("MASK_CHECKER_DATA", REPO.parent / "shared" / "data"))


def under_ci() -> bool:
    """CI sets CI=true (GitHub, GitLab and most others do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """Under CI a missing data folder fails the run: a third of the tests need the real photos,
    and a green run that skipped them tested far less than it says. Locally they skip."""
    if under_ci() and not data_path().is_dir():
        raise pytest.UsageError(
            f"CI=true but the shared data folder is missing: {data_path()} (set MASK_CHECKER_DATA); "
            "the parity, training, live and GUI tests need the real photos"
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's photo collections (never copied into the repo)."""
    path = data_path()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set MASK_CHECKER_DATA)")
    return path


@pytest.fixture(scope="session")
def dlib_dir() -> Path:
    """The CC0 dlib gender and age networks (`make dlib-models`, a prerequisite of `make test`)."""
    from training.config.classifier import DEFAULT_DLIB_DIR

    if not (DEFAULT_DLIB_DIR / "gender-v1.onnx").is_file():
        if under_ci():
            pytest.fail(f"CI=true but the dlib networks are missing from {DEFAULT_DLIB_DIR}: run `make dlib-models`")
        pytest.skip(f"the dlib networks are not in {DEFAULT_DLIB_DIR} (make dlib-models)")
    return DEFAULT_DLIB_DIR


@pytest.fixture(scope="session")
def scene_boxes(shared_data: Path) -> dict[str, list[dict[str, str]]]:
    """face_mask_853's labelled boxes, grouped by image path (relative to its folder)."""
    boxes: dict[str, list[dict[str, str]]] = {}
    with open(shared_data / "face_mask_853" / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["path"], []).append(row)
    return boxes


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return REPO / "assets" / "samples"


def build_random_classifier(path: Path, heads: str = "three", input_size: int = 64, age_boundary: int = 60,
                            check_crops_bgr=None, half_weights: bool = False) -> Path:
    """Export a randomly initialised network with real metadata: plumbing, not accuracy. The same
    weights every call (seed 0); `check_crops_bgr` and `half_weights` go to export_classifier."""
    pytest.importorskip("torch")
    import torch

    from core.labels import LABEL_NAMES, NUM_CLASSES, class_names
    from core.metadata import ModelMetadata
    from training.export.onnx import export_classifier
    from training.classifier.model import MaskClassifier

    torch.manual_seed(0)
    if heads == "three":
        head_sizes, names = None, dict(LABEL_NAMES)
    else:
        head_sizes, names = {"class": NUM_CLASSES}, {"class": class_names()}
    model = MaskClassifier("mobilenetv3_small_050", heads=head_sizes)
    config = model.data_config()
    metadata = ModelMetadata(
        heads=names, input_size=input_size, mean=config["mean"], std=config["std"], crop_margin=0.2,
        model_version="test-random-0", training_data="none: random weights for tests",
        architecture="mobilenetv3_small_050", age_boundary=age_boundary,
    )
    return export_classifier(model, metadata, path, check_crops_bgr, half_weights=half_weights)


@pytest.fixture(scope="session")
def random_classifier(tmp_path_factory) -> Path:
    return build_random_classifier(tmp_path_factory.mktemp("models") / "random.onnx")


# ------------------------------------------------------------------------------- GUI tests


@pytest.fixture
def gui_store(tmp_path: Path):
    """Settings in a temporary INI file (the GUI tests never touch the user's real settings)."""
    from PySide6.QtCore import QSettings

    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    store.setValue("snapshot/folder", str(tmp_path / "snapshots"))
    return store


@pytest.fixture(scope="session")
def scene_video(shared_data: Path, tmp_path_factory) -> Path:
    """30 frames (10 fps, 640x480 MJPG) of a photo with several bare and masked faces."""
    from tests.gui_support import SCENE, make_scene_video

    return make_scene_video(tmp_path_factory.mktemp("video") / "scene.avi", shared_data / "face_mask_853" / "images" / SCENE)


@pytest.fixture
def make_window(qtbot, gui_store):
    """Builds a MainWindow (no camera probing unless asked) and closes it after the test."""
    from app.main_window import MainWindow

    def build(**kwargs):
        kwargs.setdefault("store", gui_store)
        kwargs.setdefault("camera_probe", lambda: [])
        window = MainWindow(**kwargs)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=60_000)
        return window

    return build
