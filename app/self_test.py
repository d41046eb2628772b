"""`mask-checker --self-test`: proves an install or a frozen bundle holds everything the app needs.

A bundle can build cleanly and still miss a model file, a Qt plugin or OpenCV's video backend;
each of those only shows when a user clicks. The self-test exercises them all headless (Qt's
offscreen platform), so a build machine or CI can run it: the shipped models load, the bundled
sample photos are analysed, a video written here is read back through FFmpeg, and the main window
is built and loads its models. It works the same from a checkout (`.venv/bin/mask-checker
--self-test`) and from the frozen app.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

#: How long the window's inference thread may take to load the models.
WINDOW_MODEL_TIMEOUT_S = 120.0
#: Seconds of video the self-test plays in the window (app/soak.py; bench/soak.py runs it for hours).
SOAK_SECONDS = 6.0
#: The platform plugin a desktop session needs, per OS (the offscreen one is not enough for users).
NATIVE_PLATFORM_PLUGIN = {"linux": "xcb", "win32": "windows", "darwin": "cocoa"}


class SelfTestError(Exception):
    """A check failed; the message says what is missing and where it was looked for."""


def describe_face(index: int, face) -> str:
    """One line per face: box, detection score and each head's label with its confidence."""
    x1, y1, x2, y2 = (round(float(v)) for v in face.box)
    parts = [f"face {index}: box ({x1}, {y1}, {x2}, {y2}) score {face.det_score:.2f}"]
    for kind, head in (("mask", face.mask), ("gender", face.gender), ("age", face.age)):
        if head is not None:
            parts.append(f"{kind} {head.name} ({head.confidence:.2f})")
    return " · ".join(parts)


def check_toolkit(out: TextIO) -> None:
    """The GUI toolkit is not a release known to crash the app (app/toolkit.py)."""
    from PySide6 import __version__ as pyside_version

    from app.toolkit import toolkit_problem

    problem = toolkit_problem(pyside_version)
    if problem:
        raise SelfTestError(problem)
    print(f"ok toolkit: PySide6 {pyside_version} on Python {sys.version_info[0]}.{sys.version_info[1]}", file=out)


def check_models(out: TextIO):
    """The shipped detector and classifier, loaded through core the way the app loads them."""
    from core.analyzer import FaceAnalyzer
    from core.config import default_classifier_path, default_detector_dir

    classifier = default_classifier_path()
    if not classifier.is_file():
        raise SelfTestError(f"the shipped classifier is missing: {classifier}")
    try:
        analyzer = FaceAnalyzer.with_default_models()
    except Exception as exc:  # any load failure is the finding
        raise SelfTestError(f"the shipped models do not load: {exc}") from exc
    version = analyzer.classifier.metadata.model_version if analyzer.classifier else "?"
    print(f"ok models: detector {default_detector_dir()}, classifier {classifier.name} ({version})", file=out)
    return analyzer


def check_samples(analyzer, out: TextIO) -> int:
    """Analyse every bundled sample photo and print the faces; at least one face must be found."""
    from core.config import assets_dir
    from core.files import is_image_name
    from core.imageio import ImageReadError, load_image

    samples = sorted(p for p in (assets_dir() / "samples").glob("*") if is_image_name(p.name))
    if not samples:
        raise SelfTestError(f"no sample photos in {assets_dir() / 'samples'}")
    total = 0
    for path in samples:
        try:
            image = load_image(path).image
        except ImageReadError as exc:
            raise SelfTestError(f"sample {path.name} cannot be read: {exc.reason}") from exc
        start = time.perf_counter()
        faces = analyzer.analyze(image)
        elapsed = time.perf_counter() - start
        print(f"ok sample {path.name} ({image.shape[1]}x{image.shape[0]}): {len(faces)} faces in {elapsed:.2f} s", file=out)
        for i, face in enumerate(faces, 1):
            print("  " + describe_face(i, face), file=out)
        total += len(faces)
    if total == 0:
        raise SelfTestError("no face found in the sample photos: the detector is not working")
    return total


def check_video(workdir: Path, out: TextIO) -> None:
    """Write a short MJPG clip and read it back through OpenCV's FFmpeg backend (video files need it)."""
    import cv2

    path = workdir / "self_test.avi"
    size = (64, 48)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    if not writer.isOpened():
        raise SelfTestError("OpenCV cannot write an MJPG test clip")
    for i in range(5):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise SelfTestError("OpenCV's FFmpeg backend cannot open a video file (video input would not work)")
        frames = 0
        while capture.read()[0]:
            frames += 1
    finally:
        capture.release()
    if frames == 0:
        raise SelfTestError("OpenCV's FFmpeg backend opened the test clip but decoded no frame")
    print(f"ok video: FFmpeg backend decoded {frames} frames", file=out)


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Run the Qt event loop until `condition()` holds or the time is up."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    return True


def check_native_platform_plugin(out: TextIO) -> None:
    """The desktop's platform plugin must be shipped; whether it loads depends on the machine, so a
    failure to load is reported, not fatal (a build server has no X11 libraries)."""
    from PySide6.QtCore import QLibraryInfo, QPluginLoader

    name = NATIVE_PLATFORM_PLUGIN.get(sys.platform)
    if name is None:
        return
    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    found = sorted(folder.glob(f"*q{name}.*"))
    if not found:
        raise SelfTestError(f"the '{name}' platform plugin is missing from {folder}: the window could not open on a desktop")
    loader = QPluginLoader(str(found[0]))
    if loader.load():
        print(f"ok platform plugin: {found[0].name} loads", file=out)
        loader.unload()
    else:
        hint = " (Linux: see the README's list of libxcb packages)" if name == "xcb" else ""
        print(f"note platform plugin: {found[0].name} is shipped but does not load here{hint}: {loader.errorString()}", file=out)


def check_window(workdir: Path, out: TextIO) -> None:
    """Build the main window offscreen with a throw-away settings file and wait for its models."""
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QPixmap

    from app.gui import app_icon_path, create_application

    app = create_application()
    if QPixmap(str(app_icon_path())).isNull():
        raise SelfTestError(f"the app icon is missing or unreadable: {app_icon_path()}")
    from app.main_window import MainWindow  # widgets need the QApplication first

    store = QSettings(str(workdir / "self_test.ini"), QSettings.Format.IniFormat)
    window = MainWindow(store=store, camera_probe=list)  # "no cameras": never touch the user's here
    outcome: dict[str, str] = {}
    window.live.modelChanged.connect(lambda info: outcome.setdefault("model", info.status_text()))
    window.live.engineFailed.connect(lambda message: outcome.setdefault("failed", message))
    try:
        window.show()
        if not _wait_for(lambda: bool(outcome), WINDOW_MODEL_TIMEOUT_S):
            raise SelfTestError(f"the window did not load its models within {WINDOW_MODEL_TIMEOUT_S:.0f} s")
        if "failed" in outcome:
            raise SelfTestError(f"the window's engine failed: {outcome['failed']}")
        picture = window.grab()
        if picture.isNull() or picture.width() == 0:
            raise SelfTestError("the window could not be rendered")
        print(
            f"ok window: platform '{app.platformName()}', {picture.width()}x{picture.height()}, {outcome['model']}",
            file=out,
        )
    finally:
        window.close()


def check_soak(workdir: Path, out: TextIO, seconds: float = SOAK_SECONDS) -> None:
    """Play a clip of the sample scenes in the window for a few seconds: frames keep coming, the
    threads stay up, and the GUI toolkit does not leak references to None (the 6.12.0 crash)."""
    from app.soak import run_soak

    report = run_soak(seconds, workdir, sample_every_s=1.0)
    if report.problems:
        raise SelfTestError(f"the live view failed a {seconds:.0f} s soak: {'; '.join(report.problems)}")
    print(
        f"ok soak: {seconds:.0f} s of video, {report.frames_shown} frames shown, "
        f"None refs {-report.none_drift:+d}, RSS {report.rss_growth_mib:+.1f} MiB",
        file=out,
    )


def run_self_test(out: TextIO = sys.stdout) -> int:
    """Run every check; 0 when all pass, 1 (with the reason on stderr) at the first failure."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication: no display needed
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "checkout"
    from core.config import assets_dir

    print(f"mask-checker self-test ({frozen}, assets in {assets_dir()})", file=out)
    try:
        with tempfile.TemporaryDirectory(prefix="mask-checker-self-test-") as tmp:
            check_toolkit(out)
            analyzer = check_models(out)
            faces = check_samples(analyzer, out)
            check_video(Path(tmp), out)
            check_native_platform_plugin(out)
            check_window(Path(tmp), out)
            check_soak(Path(tmp), out)
    except SelfTestError as exc:
        print(f"self-test FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. a module or library missing from a bundle: show where
        traceback.print_exc()
        print(f"self-test FAILED: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"self-test passed: {faces} faces found in the samples", file=out)
    return 0
