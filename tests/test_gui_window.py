"""The window opens, says what it has, keeps its settings and state, and `mask-checker` opens it."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import AppSettings, load_settings  # noqa: E402
from app.tracking import AlertOptions  # noqa: E402
from core.config import DetectorConfig, default_classifier_path  # noqa: E402


def test_window_opens_with_empty_state_when_there_is_no_camera(make_window, qtbot):
    window = make_window(camera_probe=lambda: [])
    assert window.windowTitle() == "Mask Checker"
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Live", "Batch"]
    qtbot.waitUntil(lambda: window.live_panel.empty.title.text() == "No camera found", timeout=10_000)
    panel = window.live_panel
    assert panel.stack.currentWidget() is panel.empty
    texts = {w.text() for w in panel.empty.findChildren(QPushButton)}
    assert {"Open video…", "Open folder…", "Open stream…"} <= texts
    if not default_classifier_path().exists():
        assert window.model_info.detection_only
        assert "Detection only" in window.model_label.text()
    assert not window.act_stop.isEnabled() and not window.act_pause.isEnabled()


def test_cameras_found_are_listed(make_window, qtbot):
    window = make_window(camera_probe=lambda: [0, 2])
    qtbot.waitUntil(lambda: window.live_panel.sources.count() == 2, timeout=10_000)
    assert [window.live_panel.sources.itemText(i) for i in range(2)] == ["Camera 0", "Camera 2"]
    assert window.live_panel.empty.title.text() == "Ready"


def test_settings_are_applied_to_the_worker_and_persisted(make_window, qtbot, gui_store, tmp_path):
    window = make_window()
    new = AppSettings(
        detector=DetectorConfig(min_face_size=24, thresholds=(0.5, 0.6, 0.65)),
        model_path="",
        alerts=AlertOptions(enabled=True, frames=5, beep=True, cooldown_s=2.0),
        snapshot_dir=str(tmp_path / "shots"),
        blur_snapshots=True,
        batch_recursive=False,
        label_min_confidence=0.8,
    )
    window.apply_settings(new)
    worker = window.live.worker
    qtbot.waitUntil(lambda: worker.analyzer.detector.config == new.detector, timeout=10_000)
    qtbot.waitUntil(lambda: worker.stats.options == new.alerts, timeout=10_000)
    reread = load_settings(QSettings(gui_store.fileName(), QSettings.Format.IniFormat))
    assert reread == new
    # The caption threshold reaches both views and the batch table at once.
    assert window.live_panel.view.min_confidence == window.batch_panel.preview.min_confidence == 0.8
    assert window.batch_panel.model.min_confidence == 0.8


def test_window_geometry_is_restored(qtbot, gui_store):
    first = MainWindow(gui_store, camera_probe=lambda: [])
    qtbot.addWidget(first)
    first.show()
    first.resize(720, 540)
    first.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: first.model_info is not None, timeout=60_000)
    first.close()
    second = MainWindow(gui_store, camera_probe=lambda: [])
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == (720, 540)
    assert second.tabs.currentIndex() == 1


def test_no_subcommand_opens_the_window(monkeypatch):
    import app.gui
    from app.cli import main

    opened = []
    monkeypatch.setattr(app.gui, "run_app", lambda source=None: opened.append(source) or 0)
    assert main([]) == 0
    assert main(["--source", "clip.avi"]) == 0
    assert opened == [None, "clip.avi"]


def test_settings_dialog_round_trip(make_window, qtbot, monkeypatch, tmp_path):
    from app.settings_dialog import SettingsDialog

    window = make_window()
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    assert dialog.settings() == window.settings  # unchanged when nothing is edited
    dialog.min_face.setValue(30)
    dialog.thresholds[2].setValue(0.8)
    dialog.alert_frames.setValue(7)
    dialog.alert_beep.setChecked(True)
    dialog.snapshot_dir.setText(str(tmp_path / "elsewhere"))
    dialog.label_confidence.setValue(0.75)
    edited = dialog.settings()
    assert edited.label_min_confidence == 0.75
    assert edited.detector == DetectorConfig(min_face_size=30, thresholds=(0.6, 0.7, 0.8))
    assert (edited.alerts.frames, edited.alerts.beep) == (7, True)
    assert edited.snapshot_dir == str(tmp_path / "elsewhere")

    monkeypatch.setattr(SettingsDialog, "exec", lambda self: SettingsDialog.DialogCode.Accepted)
    monkeypatch.setattr(SettingsDialog, "settings", lambda self: edited)
    window.edit_settings()
    assert window.settings == edited
    qtbot.waitUntil(lambda: window.live.worker.analyzer.detector.config == edited.detector, timeout=10_000)


def test_stream_address_is_checked_and_export_needs_results(make_window, monkeypatch):
    window = make_window()
    told: list[str] = []
    monkeypatch.setattr("app.main_window.QMessageBox.warning", lambda parent, title, text, *a: told.append(text))
    monkeypatch.setattr("app.main_window.QMessageBox.information", lambda parent, title, text, *a: told.append(text))
    monkeypatch.setattr("app.main_window.QInputDialog.getText", lambda *a, **k: ("ftp://camera/stream", True))
    window.choose_stream()
    assert "not a stream address" in told[-1] and window.live.source is None
    window.act_export_csv.trigger()
    assert "no results" in told[-1]
    assert window.snapshot() is None  # nothing on screen yet: nothing saved


def test_about_reads_as_a_model_card_with_the_weights_licence(make_window, monkeypatch):
    """Help › About: what the classifier tells and learnt from, in words (no raw metadata), the
    licence its weights carry (the shipped model's from its MODEL_CARD.md), and the detector's."""
    window = make_window()
    if window.model_info.detection_only:
        import pytest

        pytest.skip("no shipped classifier")
    shown: list[str] = []
    monkeypatch.setattr("app.main_window.QMessageBox.about", lambda parent, title, text: shown.append(text))
    window.about()
    (text,) = shown
    assert "Licence of the weights." in text and "non-commercial research use only" in text
    assert "mask worn wrongly" in text and "not_wear" not in text
    assert "{" not in text and "validation_score" not in text  # no JSON blob
    assert "MIT licence" in text  # the detector's weights
