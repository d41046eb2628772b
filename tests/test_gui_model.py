"""Loading a classifier from the GUI: a bad file is refused with its reason and the old model stays."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from core.config import default_classifier_path  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    """QMessageBox.warning recorded instead of blocking on a modal dialog."""
    shown: list[str] = []
    monkeypatch.setattr("app.main_window.QMessageBox.warning", lambda parent, title, text, *a: shown.append(text))
    return shown


def test_bad_model_file_is_refused_and_the_old_model_stays(
    make_window, qtbot, gui_store, random_classifier, tmp_path, warnings, monkeypatch
):
    gui_store.setValue("model/path", str(random_classifier))
    window = make_window()
    assert window.model_info.path == random_classifier
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    monkeypatch.setattr("app.main_window.QFileDialog.getOpenFileName", lambda *a, **k: (str(bad), ""))
    window.act_load_model.trigger()
    qtbot.waitUntil(lambda: bool(warnings), timeout=WAIT_MS)
    assert "broken.onnx" in warnings[0] and "not a loadable ONNX model" in warnings[0]
    assert "test-random-0" in warnings[0], "the message says which model is still in use"

    # The real state: the worker still classifies with the old model, and nothing was saved.
    assert window.live.worker.analyzer.classifier.path == random_classifier
    assert window.model_info.path == random_classifier
    assert window.settings.model_path == str(random_classifier)
    assert QSettings(gui_store.fileName(), QSettings.Format.IniFormat).value("model/path") == str(random_classifier)
    assert "test-random-0" in window.model_label.text()

    # A good file is taken (so the refusal above was about the file), and remembered.
    good = tmp_path / "retrained.onnx"
    shutil.copy(random_classifier, good)
    window.load_model(str(good))
    qtbot.waitUntil(lambda: window.model_info.path == good, timeout=WAIT_MS)
    assert window.live.worker.analyzer.classifier.path == good
    assert QSettings(gui_store.fileName(), QSettings.Format.IniFormat).value("model/path") == str(good)
    assert len(warnings) == 1


def test_saved_model_that_no_longer_loads_falls_back_with_a_message(make_window, gui_store, tmp_path, warnings):
    gui_store.setValue("model/path", str(tmp_path / "gone.onnx"))
    window = make_window()
    assert warnings and "gone.onnx" in warnings[0]
    default = default_classifier_path()
    assert window.model_info.path == (default if default.exists() else None)


def test_about_shows_the_model_card(make_window, gui_store, random_classifier, monkeypatch):
    gui_store.setValue("model/path", str(random_classifier))
    window = make_window()
    cards: list[str] = []
    monkeypatch.setattr("app.main_window.QMessageBox.about", lambda parent, title, text: cards.append(text))
    window.act_about.trigger()
    assert len(cards) == 1
    for expected in ("test-random-0", "mobilenetv3_small_050", "random weights for tests", "64×64", "no network"):
        assert expected in cards[0]


def test_batch_uses_the_model_the_live_view_uses(make_window, qtbot, gui_store, random_classifier, samples_dir):
    gui_store.setValue("model/path", str(random_classifier))
    window = make_window()
    done = []
    window.batch.finished.connect(done.append)
    window.start_batch([Path(samples_dir) / "scene_mixed.jpg"])
    qtbot.waitUntil(lambda: bool(done) and not window.batch.running, timeout=WAIT_MS)
    assert window.batch_model.path == random_classifier
    faces = window.batch_panel.model.results[0].faces
    assert faces and all(f.class_id is not None for f in faces)
