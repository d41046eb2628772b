"""The main window: widgets, actions and the wiring between them and the controllers.

All the work happens elsewhere: capture and inference in LiveController's threads, batch jobs
in BatchController's, preview decoding in PreviewLoader's. This class only reacts to their
signals on the UI thread and turns user actions into requests.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, QSettings, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox, QTabWidget,
)

from app import __version__
from app.alert_panel import AlertPanel
from app.batch_panel import BatchPanel
from app.batch_worker import AnalyzerSpec, BatchController
from app.camera_probe import CameraProbe, CameraScanner
from app.capture import CaptureState
from app.export import ExportKind, export_results
from app.inference import AnalyzerFactory, FrameResult
from app.live import LiveController
from app.live_log import AlertLog, MinuteCounts
from app.live_panel import LivePanel
from app.model_card import DETECTOR_HTML, ModelInfo
from app.preview_loader import PreviewLoader
from app.settings import AppSettings, load_settings, save_settings
from app.settings_dialog import SettingsDialog
from app.snapshot import SnapshotError, save_snapshot
from app.sources import CaptureFactory, Source, open_capture, probe_cameras
from app.tracking import Counts, RateMeter
from core.analyzer import FaceAnalyzer
from core.batch import BatchError, BatchSummary, ImageResult
from core.config import LiveConfig, default_classifier_path
from core.labels import Mask

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
LIVE_TAB, BATCH_TAB = 0, 1


#: The mask states as the batch summary words them.
MASK_WORDS = {Mask.WEAR: "mask worn", Mask.INCORRECT: "worn wrongly", Mask.NOT_WEAR: "no mask"}


def batch_summary_text(summary: BatchSummary, results: list[ImageResult]) -> str:
    """The batch's outcome in words, e.g. "4 of 4 photos: 3 with faces, none without, 1 unreadable
    · 14 faces: 11 mask worn, 1 worn wrongly, 2 no mask"."""
    if summary.files == 0:
        return "No photos found there."
    head = (f"{summary.done} of {summary.files} photos{' (cancelled)' if summary.interrupted else ''}: "
            f"{summary.with_faces} with faces, {summary.without_faces or 'none'} without, {summary.errors} unreadable")
    states = Counter(f.mask.label for r in results for f in r.faces if f.mask is not None)
    faces = f"{summary.faces} face{'s' if summary.faces != 1 else ''}"
    if states:
        faces += ": " + ", ".join(f"{states[m]} {MASK_WORDS[m]}" for m in (Mask.WEAR, Mask.INCORRECT, Mask.NOT_WEAR) if states[m])
    return f"{head} · {faces}"


class MainWindow(QMainWindow):
    """Mask Checker's window. The factories are injectable so tests can drive real pipelines."""

    def __init__(
        self,
        store: QSettings | None = None,
        capture_factory: CaptureFactory = open_capture,
        camera_probe: CameraProbe = probe_cameras,
        analyzer_factory: AnalyzerFactory = FaceAnalyzer.with_default_models,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Mask Checker")
        self.store = store if store is not None else QSettings()
        self.settings: AppSettings = load_settings(self.store)
        self.model_info: ModelInfo | None = None  # None until the inference worker reports
        self.batch_model = ModelInfo()  # the model the last batch ran with (for its exports)
        self.batch_spec: AnalyzerSpec | None = None  # the settings the table's results were made with
        self.last_result: FrameResult | None = None
        self.frames_shown = 0
        self._ended_session = -1  # the live session whose source ended or stopped (its late frames raise no alert)
        self._pending_model: str | None = None  # a model file asked for, not yet confirmed
        self._preview: tuple[ImageResult, int | None] | None = None  # the row being previewed
        self._preview_request = 0
        self._meter = RateMeter()
        self.alert_log = AlertLog()  # memory only: written when the user exports
        self.minute_counts = MinuteCounts()
        self._alerts_refreshed = 0.0

        self.live = LiveController(
            self.settings.detector, self.settings.model_path or None, self.settings.alerts,
            capture_factory=capture_factory, analyzer_factory=analyzer_factory, parent=self,
            live=LiveConfig(detector_thresholds=self.settings.live_thresholds),
        )
        self.batch = BatchController(self)
        self.scanner = CameraScanner(camera_probe, self)
        self.previews = PreviewLoader(self)

        self._make_actions()
        self._make_widgets()
        self._make_menus()
        self._connect()
        self._restore_state()
        self.setAcceptDrops(True)
        self._update_live_actions()
        self.scanner.scan()

    # ================================================================== construction

    def _action(self, text: str, slot, shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" if shortcut else tip)
        if slot is not None:
            action.triggered.connect(slot)
        return action

    def _make_actions(self) -> None:
        self.act_open_video = self._action("Open &video…", self.choose_video, QKeySequence.StandardKey.Open, "Play a video file")
        self.act_open_url = self._action("Open &stream…", self.choose_stream, "Ctrl+U", "Read an RTSP or HTTP stream")
        self.act_open_folder = self._action("Open &folder…", self.choose_folder, "Ctrl+Shift+O", "Label every photo in a folder")
        self.act_open_images = self._action("Open &photos…", self.choose_images, "Ctrl+Shift+I", "Label some photos")
        self.act_export_csv = self._action("Export &CSV…", lambda: self.export(ExportKind.CSV), "Ctrl+E",
                                           "Every result, one row per face (whatever the table's filter)")
        self.act_export_json = self._action("Export &JSON…", lambda: self.export(ExportKind.JSON), "Ctrl+Shift+E",
                                            "Every result, one object per image (whatever the table's filter)")
        self.act_export_submission = self._action(
            "Export &submission…", lambda: self.export(ExportKind.SUBMISSION), None, "Fill the competition's info.csv"
        )
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_start = self._action("&Start", self.start_live, "F5", "Start reading the chosen source")
        self.act_pause = self._action("&Pause", None, "Space", "Pause or resume")
        self.act_pause.setCheckable(True)
        self.act_pause.toggled.connect(self.set_paused)
        self.act_stop = self._action("S&top", self.stop_live, "Shift+F5", "Stop reading")
        self.act_snapshot = self._action("Snaps&hot", self.snapshot, "Ctrl+Shift+S", "Save the annotated frame")
        self.act_export_alerts = self._action("Export &alerts…", self.export_alerts, None,
                                              "The alert log as CSV: time, person, state, how long")
        self.act_export_counts = self._action("Export counts per &minute…", self.export_counts, None,
                                              "Faces and people counted each minute since Start, as CSV")
        self.act_cameras = self._action("Find &cameras again", self.scanner_scan, None, "Look for cameras again")
        self.act_settings = self._action("&Settings…", self.edit_settings, QKeySequence.StandardKey.Preferences)
        if self.act_settings.shortcut().isEmpty():
            self.act_settings.setShortcut(QKeySequence("Ctrl+,"))
        self.act_load_model = self._action("&Load model…", self.choose_model, "Ctrl+M", "Use another classifier ONNX file")
        self.act_default_model = self._action("Use &default model", self.use_default_model, None, "Back to the shipped model")
        self.act_about = self._action("&About Mask Checker", self.about, QKeySequence.StandardKey.HelpContents)
        self.act_tab_live = self._action("&Live", lambda: self.tabs.setCurrentIndex(LIVE_TAB), "Ctrl+1")
        self.act_tab_batch = self._action("&Batch", lambda: self.tabs.setCurrentIndex(BATCH_TAB), "Ctrl+2")

    def _make_widgets(self) -> None:
        self.alert_panel = AlertPanel(self.alert_log, self.act_export_alerts, self.act_export_counts)
        self.live_panel = LivePanel(
            self.act_start, self.act_pause, self.act_stop, self.act_snapshot,
            self.act_open_video, self.act_open_folder, self.act_open_url, side=self.alert_panel,
        )
        self.batch_panel = BatchPanel(
            self.act_open_folder, self.act_open_images,
            [self.act_export_csv, self.act_export_json, self.act_export_submission],
        )
        self.tabs = QTabWidget()
        self.tabs.addTab(self.live_panel, "Live")
        self.tabs.addTab(self.batch_panel, "Batch")
        self.setCentralWidget(self.tabs)
        self._apply_label_confidence()
        self.model_label = QLabel("Loading models…")
        self.statusBar().addPermanentWidget(self.model_label)

    def _make_menus(self) -> None:
        menus = self.menuBar()
        file = menus.addMenu("&File")
        for action in (self.act_open_video, self.act_open_url, self.act_open_folder, self.act_open_images):
            file.addAction(action)
        file.addSeparator()
        for action in (self.act_export_csv, self.act_export_json, self.act_export_submission):
            file.addAction(action)
        file.addSeparator()
        file.addAction(self.act_quit)
        live = menus.addMenu("&Live")
        for action in (self.act_start, self.act_pause, self.act_stop, self.act_snapshot):
            live.addAction(action)
        live.addSeparator()
        live.addAction(self.act_export_alerts)
        live.addAction(self.act_export_counts)
        live.addSeparator()
        live.addAction(self.act_cameras)
        view = menus.addMenu("&View")
        view.addAction(self.act_tab_live)
        view.addAction(self.act_tab_batch)
        settings = menus.addMenu("&Settings")
        for action in (self.act_settings, self.act_load_model, self.act_default_model):
            settings.addAction(action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.act_about)

    def _connect(self) -> None:
        self.live.frameAnalyzed.connect(self.show_frame)
        self.live.stateChanged.connect(self.on_capture_state)
        self.live.modelChanged.connect(self.on_model_changed)
        self.live.modelFailed.connect(self.on_model_failed)
        self.live.engineFailed.connect(self.on_engine_failed)
        self.scanner.found.connect(self.on_cameras)
        self.batch.progress.connect(self.on_batch_progress)
        self.batch.modelInfo.connect(self.on_batch_model)
        self.batch.finished.connect(self.on_batch_finished)
        self.batch.failed.connect(self.on_batch_failed)
        self.batch_panel.cancel.clicked.connect(self.cancel_batch)
        self.live_panel.retry.clicked.connect(self.start_live)
        self.batch_panel.table.selectionModel().currentRowChanged.connect(self.on_row_selected)
        self.previews.loaded.connect(self.on_preview_loaded)

    def _restore_state(self) -> None:
        geometry = self.store.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 760)
        state = self.store.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        splitter = self.store.value("window/batch_splitter")
        if isinstance(splitter, QByteArray):
            self.batch_panel.splitter.restoreState(splitter)
        tab = self.store.value("window/tab", LIVE_TAB)
        self.tabs.setCurrentIndex(int(tab) if str(tab).isdigit() else LIVE_TAB)
        source = Source.from_setting(self.store.value("live/last_source", "") or "")
        if source is not None and source.is_file:
            self.live_panel.add_source(source)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/state", self.saveState())
        self.store.setValue("window/batch_splitter", self.batch_panel.splitter.saveState())
        self.store.setValue("window/tab", self.tabs.currentIndex())
        self.store.sync()
        self.batch.shutdown()
        self.live.shutdown()
        self.scanner.wait()
        self.previews.shutdown()
        super().closeEvent(event)

    # ================================================================== live

    def scanner_scan(self) -> None:
        self.scanner.scan()

    def on_cameras(self, cameras: list[int]) -> None:
        self.live_panel.set_cameras(cameras)
        self._update_live_actions()

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open video", self._last_dir(), "Videos (" + " ".join(f"*{e}" for e in sorted(VIDEO_EXTENSIONS)) + ");;All files (*)",
        )
        if path:
            self._remember_dir(Path(path).parent)
            self.open_source(Source.file(path))

    def choose_stream(self) -> None:
        url, ok = QInputDialog.getText(self, "Open stream", "RTSP or HTTP address (e.g. rtsp://camera.local/stream):")
        url = url.strip()
        if not ok or not url:
            return
        if not url.lower().startswith(STREAM_SCHEMES):
            QMessageBox.warning(self, "Open stream", f"{url} is not a stream address: it must start with rtsp://, http:// or https://.")
            return
        self.open_source(Source.url(url))

    def open_source(self, source: Source) -> None:
        """Pick `source` and start it."""
        self.live_panel.add_source(source)
        if source.is_file:  # not a URL: it may carry a password (rtsp://user:pass@host)
            self.store.setValue("live/last_source", source.to_setting())
        self.start_live()

    def start_live(self) -> None:
        source = self.live_panel.current_source()
        if source is None:
            self.choose_video()
            return
        self.tabs.setCurrentIndex(LIVE_TAB)
        self.act_pause.setChecked(False)
        self.last_result = None
        self._meter.reset()
        self.live_panel.view.clear()
        self.live_panel.show_banner("")
        self.live_panel.show_failure("")
        self.live_panel.show_counts(Counts())
        self.alert_log.clear()
        self.minute_counts.clear()
        self.alert_panel.refresh()
        self.live_panel.show_view()
        self.live.start(source)
        self._update_live_actions()

    def stop_live(self) -> None:
        self.live.stop()
        self._end_alerts()
        self._update_live_actions()

    def _end_alerts(self) -> None:
        """Nothing is watched any more: no banner, and the alerts still open end now."""
        self.live_panel.show_banner("")
        self.alert_log.end_all()
        self.alert_panel.refresh()

    def set_paused(self, paused: bool) -> None:
        if self.live.running:
            self.live.set_paused(paused)
        elif paused:
            self.act_pause.setChecked(False)

    def show_frame(self, result: FrameResult) -> None:
        self.last_result = result
        self.frames_shown += 1
        fps = self._meter.tick()
        self.live_panel.view.set_frame(result.image, result.faces, result.notes.alerting)
        self.live_panel.view.set_hud(f"{fps:.1f} fps · {result.latency_s * 1000:.0f} ms/frame")
        self.live_panel.show_counts(result.notes.counts)
        # A frame analysed after its source ended or stopped is shown, but nobody is watched any
        # more: it must not raise the banner again nor reopen alerts that were just closed.
        watching = result.session != self._ended_session
        self.live_panel.show_banner(result.notes.banner if watching else "")
        if watching and result.notes.alert is not None and self.settings.alerts.beep:
            QApplication.beep()
        self.minute_counts.update(result.notes)
        changed = watching and self.alert_log.update(result.notes)
        now = time.monotonic()
        if changed or (self.alert_log.ongoing and now - self._alerts_refreshed >= 1.0):  # durations tick
            self._alerts_refreshed = now
            self.alert_panel.refresh()

    def on_capture_state(self, state: CaptureState, message: str) -> None:
        view = self.live_panel.view
        if state is CaptureState.PLAYING:
            view.set_message("")
            if message:
                self.statusBar().showMessage(message, 4000)
        else:
            view.set_message(message)
        if state in (CaptureState.FAILED, CaptureState.LOST, CaptureState.ENDED):
            self.statusBar().showMessage(message, 8000)
        if state in (CaptureState.FAILED, CaptureState.ENDED, CaptureState.STOPPED):
            self._ended_session = self.live.session
            self._end_alerts()
        self.live_panel.show_failure(message if state is CaptureState.FAILED else "")
        self._update_live_actions()

    def _update_live_actions(self) -> None:
        running = self.live.running  # Start stays enabled: it (re)starts the chosen source
        self.act_pause.setEnabled(running)
        self.act_stop.setEnabled(running)
        if not running and self.act_pause.isChecked():
            self.act_pause.blockSignals(True)
            self.act_pause.setChecked(False)
            self.act_pause.blockSignals(False)

    def snapshot(self) -> Path | None:
        """Save the frame on screen, with its overlay, to the snapshot folder (only when asked)."""
        result = self.last_result
        if result is None:
            self.statusBar().showMessage("Nothing to save yet: start a source first.", 4000)
            return None
        try:
            path = save_snapshot(result.image, result.faces, Path(self.settings.snapshot_dir), self.settings.blur_snapshots,
                                 self.settings.label_min_confidence)
        except SnapshotError as exc:
            QMessageBox.warning(self, "Snapshot", str(exc))
            return None
        self.statusBar().showMessage(f"Snapshot saved to {path}", 6000)
        return path

    def export_alerts(self) -> Path | None:
        """The alert log to a CSV file the user picks (nothing is written otherwise)."""
        return self._export_live("alerts.csv", "Export alerts", self.alert_log.write_csv, len(self.alert_log.entries), "alerts")

    def export_counts(self) -> Path | None:
        rows = len(self.minute_counts.rows())
        return self._export_live("counts_per_minute.csv", "Export counts per minute", self.minute_counts.write_csv, rows, "minutes")

    def _export_live(self, default: str, title: str, write, rows: int, what: str) -> Path | None:
        if rows == 0:
            QMessageBox.information(self, title, f"There is nothing to export yet: no {what} recorded since Start.")
            return None
        name, _ = QFileDialog.getSaveFileName(self, title, str(Path(self._last_dir()) / default), "CSV (*.csv)")
        if not name:
            return None
        path = Path(name) if name.lower().endswith(".csv") else Path(name + ".csv")
        try:
            written = write(path)
        except OSError as exc:
            QMessageBox.warning(self, title, f"Could not write {path}: {exc.strerror or exc}")
            return None
        self._remember_dir(written.parent)
        self.statusBar().showMessage(f"Exported {rows} {what} to {written}", 8000)
        return written

    # ================================================================== model

    def choose_model(self) -> None:
        start = self.settings.model_path or str(default_classifier_path().parent)
        path, _ = QFileDialog.getOpenFileName(self, "Load classifier model", start, "ONNX models (*.onnx);;All files (*)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> None:
        """Ask the inference worker to load `path`; it replies modelChanged or modelFailed."""
        self._pending_model = path
        self.statusBar().showMessage(f"Loading {Path(path).name}…")
        self.live.load_classifier(path)

    def use_default_model(self) -> None:
        self._pending_model = ""
        self.live.use_default_classifier()

    def on_model_changed(self, info: ModelInfo) -> None:
        self.model_info = info
        self.model_label.setText(info.status_text())
        self.model_label.setToolTip(str(info.path) if info.path else "")
        pending = self._pending_model
        if pending is not None and (pending == "" or Path(pending) == info.path):
            self._set_settings(self.settings.with_model(pending))
            self._pending_model = None
            self.statusBar().showMessage(info.status_text(), 6000)
        self._check_batch_stale()

    def on_model_failed(self, path: str, reason: str) -> None:
        self._pending_model = None
        self.statusBar().clearMessage()
        keep = self.model_info.status_text() if self.model_info is not None else "the default model"
        QMessageBox.warning(
            self, "Model not loaded",
            f"{Path(path).name} could not be loaded:\n\n{reason}\n\nStill in use: {keep}",
        )

    def on_engine_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        if self.model_info is None:
            self.model_label.setText("Face detector unavailable")
            QMessageBox.critical(self, "Mask Checker", message)

    # ================================================================== settings

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: AppSettings) -> None:
        """Send what changed to the workers and save; a new model is saved once it has loaded."""
        old = self.settings
        if new.detector != old.detector:
            self.live.set_detector_config(new.detector)
        if new.live_thresholds != old.live_thresholds:
            self.live.set_live_thresholds(new.live_thresholds)
        if new.alerts != old.alerts:
            self.live.set_alert_options(new.alerts)
        self._set_settings(replace(new, model_path=old.model_path))
        self._check_batch_stale()
        if new.model_path != old.model_path:
            if new.model_path:
                self.load_model(new.model_path)
            else:
                self.use_default_model()

    def _set_settings(self, settings: AppSettings) -> None:
        self.settings = settings
        save_settings(self.store, settings)
        self._apply_label_confidence()

    def _apply_label_confidence(self) -> None:
        value = self.settings.label_min_confidence
        self.live_panel.view.set_min_confidence(value)
        self.batch_panel.preview.set_min_confidence(value)
        self.batch_panel.model.set_min_confidence(value)

    def _last_dir(self) -> str:
        return str(self.store.value("paths/last_dir", "") or Path.home())

    def _remember_dir(self, folder: Path) -> None:
        self.store.setValue("paths/last_dir", str(folder))

    # ================================================================== batch

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder of photos", self._last_dir())
        if folder:
            self._remember_dir(Path(folder))
            self.start_batch([Path(folder)])

    def choose_images(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open photos", self._last_dir(), "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff *.gif *.avif);;All files (*)")
        if paths:
            self._remember_dir(Path(paths[0]).parent)
            self.start_batch([Path(p) for p in paths])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.handle_drop(event.mimeData()):
            event.acceptProposedAction()

    def handle_drop(self, mime: QMimeData) -> bool:
        """Dropped files: a single video plays live; photos and folders become a batch."""
        paths = [Path(url.toLocalFile()) for url in mime.urls() if isinstance(url, QUrl) and url.isLocalFile()]
        if not paths:
            return False
        if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_EXTENSIONS:
            self.open_source(Source.file(paths[0]))
            return True
        return self.start_batch(paths)

    def _classifier_path(self) -> Path | None:
        """The classifier the live view uses (the batch must label the same way)."""
        if self.model_info is not None:
            return self.model_info.path
        if self.settings.model_path:
            return Path(self.settings.model_path)
        default = default_classifier_path()
        return default if default.exists() else None

    def start_batch(self, paths: list[Path]) -> bool:
        if self.batch.running:
            self.statusBar().showMessage("A batch is already running: cancel it first.", 5000)
            return False
        spec = AnalyzerSpec(self.settings.detector, self._classifier_path())
        self.batch_spec = spec
        self.batch_panel.set_stale("")
        self.tabs.setCurrentIndex(BATCH_TAB)
        self.batch_panel.model.clear()
        self.batch_panel.preview.clear()
        self.batch_panel.hint.setText("Labelling " + ", ".join(p.name or str(p) for p in paths[:3]) + ("…" if len(paths) > 3 else ""))
        self.batch_panel.set_running(True)
        self.batch.start(paths, spec, self.settings.batch_recursive)
        return True

    def cancel_batch(self) -> None:
        self.batch.cancel()
        self.batch_panel.cancel.setEnabled(False)
        self.statusBar().showMessage("Cancelling after the current image…", 4000)

    def on_batch_model(self, info: ModelInfo) -> None:
        self.batch_model = info

    def on_batch_progress(self, result: ImageResult, done: int, files: int) -> None:
        self.batch_panel.model.add(result)
        self.batch_panel.set_progress(done, files)

    def on_batch_finished(self, summary: BatchSummary) -> None:
        self.batch_panel.set_running(False)
        self.batch_panel.set_progress(summary.done, summary.files)
        self.batch_panel.fit_columns()
        text = batch_summary_text(summary, self.batch_panel.model.results)
        self.batch_panel.hint.setText(text)
        if summary.files == 0:
            self.statusBar().showMessage("No photos found there.", 6000)
        else:
            self.statusBar().showMessage(("Cancelled: " if summary.interrupted else "Done: ") + text.split(" · ")[0], 8000)
        self._check_batch_stale()

    def _check_batch_stale(self) -> None:
        """Say so when the table's results were made with other detector settings or model."""
        spec = self.batch_spec
        if spec is None:
            return
        reasons = []
        if spec.detector != self.settings.detector:
            reasons.append("face detector settings changed")
        if spec.classifier_path != self._classifier_path():
            reasons.append("another model")
        self.batch_panel.set_stale(", ".join(reasons))

    def on_batch_failed(self, message: str) -> None:
        self.batch_panel.set_running(False)
        self.batch_panel.hint.setText(f"Batch failed: {message}")
        QMessageBox.warning(self, "Batch", message)

    def on_row_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.batch_panel.preview.clear()
            return
        ref = self.batch_panel.model.row_ref(self.batch_panel.proxy.mapToSource(current).row())
        result = self.batch_panel.model.results[ref.result]
        self._preview = (result, ref.face)
        self.batch_panel.preview.set_message(f"Loading {result.path.name}…")
        self._preview_request = self.previews.request(result.path)

    def on_preview_loaded(self, request: int, image, reason: str) -> None:
        if request != self._preview_request or self._preview is None:
            return
        result, face = self._preview
        preview = self.batch_panel.preview
        if image is None:
            preview.clear()
            preview.set_message(f"{result.path.name}: {reason}")
            return
        preview.set_frame(image, result.faces, {face} if face is not None else ())
        preview.set_message(result.path.name)

    def export(self, kind: ExportKind) -> Path | None:
        results = self.batch_panel.model.results
        if not results:
            QMessageBox.information(self, "Export", "There are no results to export yet: open a folder of photos first.")
            return None
        info_csv = None
        if kind is ExportKind.SUBMISSION:
            if self.batch_model.detection_only:
                QMessageBox.warning(self, "Export", "A submission needs a classifier model; these results were made with detection only.")
                return None
            name, _ = QFileDialog.getOpenFileName(self, "The competition's info.csv", self._last_dir(), "CSV (*.csv)")
            if not name:
                return None
            info_csv = Path(name)
            default = str(info_csv.with_name("submission.csv"))
        else:
            default = str(Path(self._last_dir()) / f"results.{kind.value}")
        suffix = "csv" if kind is not ExportKind.JSON else "json"
        name, _ = QFileDialog.getSaveFileName(self, "Export results", default, f"{suffix.upper()} (*.{suffix})")
        if not name:
            return None
        path = Path(name)
        if path.suffix.lower() != f".{suffix}":
            path = path.with_name(path.name + f".{suffix}")
        try:
            written = export_results(results, kind, path, self.batch_model, info_csv)
        except (BatchError, OSError) as exc:
            QMessageBox.warning(self, "Export", f"Could not export: {exc}")
            return None
        self._remember_dir(written.parent)
        shown = self.batch_panel.filter.currentText()
        note = "" if not self.batch_panel.filter.currentData() else f" (the filter \"{shown}\" only changes what the table shows)"
        self.statusBar().showMessage(f"Exported all {len(results)} images to {written}{note}", 8000)
        return written

    # ================================================================== help

    def about(self) -> None:
        info = self.model_info or ModelInfo()
        QMessageBox.about(
            self, "About Mask Checker",
            f"<h3>Mask Checker {__version__}</h3>"
            "<p>Finds every face and tells whether the mask is worn properly, wrongly or not at all, "
            "with gender and age group. Runs on this computer only: no network calls, and no frame or "
            "face is saved unless you take a snapshot.</p>"
            f"<h4>Classifier model</h4>{info.card_html()}{DETECTOR_HTML}",
        )
