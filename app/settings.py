"""The user's settings as one immutable value, read from and written to QSettings.

A value that is missing or unreadable in the store falls back to its default, so a damaged
settings file never stops the app from starting.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from app.tracking import AlertOptions
from core.config import DetectorConfig, LiveConfig

log = logging.getLogger(__name__)


def default_snapshot_dir() -> str:
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return str(Path(pictures or Path.home()) / "Mask Checker")


@dataclass(frozen=True)
class AppSettings:
    """model_path: a classifier chosen by the user; empty means the shipped one (if any).
    detector: photos and batch. live_thresholds: the detector's thresholds in live video, looser
    by default (core.config.LiveConfig.detector_thresholds says why and how they were chosen)."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    live_thresholds: tuple[float, float, float] = field(
        default_factory=lambda: LiveConfig().detector_thresholds or DetectorConfig().thresholds)
    model_path: str = ""
    alerts: AlertOptions = field(default_factory=AlertOptions)
    snapshot_dir: str = field(default_factory=default_snapshot_dir)
    blur_snapshots: bool = False
    batch_recursive: bool = True
    #: Gender and age guessed with less confidence than this are shown as "?" (captions, table).
    label_min_confidence: float = 0.6

    def with_model(self, path: str) -> AppSettings:
        return replace(self, model_path=path)


def _get(store: QSettings, key: str, default, kind):
    raw = store.value(key, None)
    if raw is None:
        return default
    try:
        if kind is bool:
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except (TypeError, ValueError):
        log.warning("setting %s=%r is unreadable; using %r", key, raw, default)
        return default


def load_settings(store: QSettings) -> AppSettings:
    defaults = AppSettings()
    d, a = defaults.detector, defaults.alerts
    try:
        thresholds = tuple(float(x) for x in str(store.value("detector/thresholds", "")).split(",") if x.strip())
        detector = DetectorConfig(
            min_face_size=_get(store, "detector/min_face_size", d.min_face_size, int),
            thresholds=thresholds if thresholds else d.thresholds,
        )
    except ValueError as exc:
        log.warning("detector settings are invalid (%s); using the defaults", exc)
        detector = d
    try:
        live = tuple(float(x) for x in str(store.value("live/thresholds", "")).split(",") if x.strip())
        live_thresholds = LiveConfig(detector_thresholds=live).detector_thresholds if live else defaults.live_thresholds
    except ValueError as exc:
        log.warning("live thresholds are invalid (%s); using the defaults", exc)
        live_thresholds = defaults.live_thresholds
    alerts = AlertOptions(
        enabled=_get(store, "alerts/enabled", a.enabled, bool),
        frames=max(1, _get(store, "alerts/frames", a.frames, int)),
        beep=_get(store, "alerts/beep", a.beep, bool),
        cooldown_s=max(0.0, _get(store, "alerts/cooldown_s", a.cooldown_s, float)),
    )
    return AppSettings(
        detector=detector,
        live_thresholds=live_thresholds,
        model_path=_get(store, "model/path", "", str),
        alerts=alerts,
        snapshot_dir=_get(store, "snapshot/folder", defaults.snapshot_dir, str) or defaults.snapshot_dir,
        blur_snapshots=_get(store, "snapshot/blur_faces", defaults.blur_snapshots, bool),
        batch_recursive=_get(store, "batch/recursive", defaults.batch_recursive, bool),
        label_min_confidence=min(1.0, max(0.0, _get(store, "captions/min_confidence", defaults.label_min_confidence, float))),
    )


def save_settings(store: QSettings, settings: AppSettings) -> None:
    store.setValue("detector/min_face_size", settings.detector.min_face_size)
    store.setValue("detector/thresholds", ",".join(f"{t:g}" for t in settings.detector.thresholds))
    store.setValue("live/thresholds", ",".join(f"{t:g}" for t in settings.live_thresholds))
    store.setValue("model/path", settings.model_path)
    store.setValue("alerts/enabled", settings.alerts.enabled)
    store.setValue("alerts/frames", settings.alerts.frames)
    store.setValue("alerts/beep", settings.alerts.beep)
    store.setValue("alerts/cooldown_s", settings.alerts.cooldown_s)
    store.setValue("snapshot/folder", settings.snapshot_dir)
    store.setValue("snapshot/blur_faces", settings.blur_snapshots)
    store.setValue("batch/recursive", settings.batch_recursive)
    store.setValue("captions/min_confidence", settings.label_min_confidence)
    store.sync()
