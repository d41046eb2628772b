"""The Settings dialog: edits an AppSettings value; the window applies and saves what comes back."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
    QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from app.settings import AppSettings
from app.tracking import AlertOptions
from core.config import DetectorConfig


def _threshold_box(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(value)
    return box


class SettingsDialog(QDialog):
    """Detector, model, alert, snapshot and batch options."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._initial = settings

        self.min_face = QSpinBox()
        self.min_face.setRange(12, 2000)
        self.min_face.setSuffix(" px")
        self.min_face.setValue(settings.detector.min_face_size)
        rule = settings.detector
        self.min_face.setToolTip(
            "Smaller finds smaller faces but is slower (the biggest lever on speed). In batch, a small photo is "
            f"also searched for faces down to {rule.min_face_fraction:g} of its short side (at least "
            f"{rule.min_face_floor} px); live video uses this size as it is."
        )
        self.thresholds = [_threshold_box(t) for t in settings.detector.thresholds]
        row = QHBoxLayout()
        for box in self.thresholds:
            row.addWidget(box)
        self.live_thresholds = [_threshold_box(t) for t in settings.live_thresholds]
        live_row = QHBoxLayout()
        for box in self.live_thresholds:
            live_row.addWidget(box)
        detector = QGroupBox("Face detector")
        form = QFormLayout(detector)
        form.addRow("Minimum face size", self.min_face)
        form.addRow("Thresholds, photos (P, R, O)", row)
        form.addRow("Thresholds, live video (P, R, O)", live_row)
        for box in self.live_thresholds:
            box.setToolTip("Live video may be looser than a photo: a face is shown only once seen in 3 frames.")

        self.model_path = QLineEdit(settings.model_path)
        self.model_path.setPlaceholderText("shipped model (assets/models/classifier.onnx)")
        browse_model = QPushButton("Browse…")
        browse_model.clicked.connect(self._browse_model)
        default_model = QPushButton("Default")
        default_model.clicked.connect(self.model_path.clear)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_path, 1)
        model_row.addWidget(browse_model)
        model_row.addWidget(default_model)
        model = QGroupBox("Classifier model")
        model.setLayout(model_row)

        self.alerts_enabled = QCheckBox("Alert when a face stays unmasked or wrongly masked")
        self.alerts_enabled.setChecked(settings.alerts.enabled)
        self.alert_frames = QSpinBox()
        self.alert_frames.setRange(1, 10000)
        self.alert_frames.setSuffix(" frames")
        self.alert_frames.setValue(settings.alerts.frames)
        self.alert_cooldown = QDoubleSpinBox()
        self.alert_cooldown.setRange(0.0, 3600.0)
        self.alert_cooldown.setSuffix(" s")
        self.alert_cooldown.setValue(settings.alerts.cooldown_s)
        self.alert_beep = QCheckBox("Beep")
        self.alert_beep.setChecked(settings.alerts.beep)
        alerts = QGroupBox("Alerts")
        form = QFormLayout(alerts)
        form.addRow(self.alerts_enabled)
        form.addRow("After", self.alert_frames)
        form.addRow("Same person at most once every", self.alert_cooldown)
        form.addRow(self.alert_beep)

        self.label_confidence = _threshold_box(settings.label_min_confidence)
        self.label_confidence.setToolTip("Below this the classifier is guessing: its gender or age is shown as \"?\".")
        captions = QGroupBox("Captions")
        form = QFormLayout(captions)
        form.addRow("Show gender and age from confidence", self.label_confidence)

        self.snapshot_dir = QLineEdit(settings.snapshot_dir)
        browse_dir = QPushButton("Browse…")
        browse_dir.clicked.connect(self._browse_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.snapshot_dir, 1)
        folder_row.addWidget(browse_dir)
        self.blur = QCheckBox("Blur faces in snapshots")
        self.blur.setChecked(settings.blur_snapshots)
        self.recursive = QCheckBox("Include subfolders when a folder is opened")
        self.recursive.setChecked(settings.batch_recursive)
        files = QGroupBox("Files")
        form = QFormLayout(files)
        form.addRow("Snapshot folder", folder_row)
        form.addRow(self.blur)
        form.addRow(self.recursive)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (detector, model, alerts, captions, files, buttons):
            layout.addWidget(widget)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Classifier model", self.model_path.text(), "ONNX models (*.onnx);;All files (*)")
        if path:
            self.model_path.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Snapshot folder", self.snapshot_dir.text())
        if path:
            self.snapshot_dir.setText(path)

    def settings(self) -> AppSettings:
        """The edited values (thresholds and sizes are range-checked by the spin boxes)."""
        return replace(
            self._initial,
            detector=DetectorConfig(
                min_face_size=self.min_face.value(),
                thresholds=tuple(box.value() for box in self.thresholds),  # type: ignore[arg-type]
                scale_factor=self._initial.detector.scale_factor,
                min_face_fraction=self._initial.detector.min_face_fraction,
                min_face_floor=self._initial.detector.min_face_floor,
            ),
            live_thresholds=tuple(box.value() for box in self.live_thresholds),  # type: ignore[arg-type]
            model_path=self.model_path.text().strip(),
            alerts=AlertOptions(
                enabled=self.alerts_enabled.isChecked(), frames=self.alert_frames.value(),
                beep=self.alert_beep.isChecked(), cooldown_s=self.alert_cooldown.value(),
            ),
            snapshot_dir=self.snapshot_dir.text().strip() or self._initial.snapshot_dir,
            blur_snapshots=self.blur.isChecked(),
            batch_recursive=self.recursive.isChecked(),
            label_min_confidence=self.label_confidence.value(),
        )
