"""Starting the desktop app: the QApplication, high-DPI policy, settings identity, the window."""
from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from app import __version__
from app.sources import Source
from core.config import assets_dir

log = logging.getLogger(__name__)


def app_icon_path() -> Path:
    """The window and taskbar icon (also the frozen app's file icon, see build.spec)."""
    return assets_dir() / "icons" / "mask-checker.png"


def parse_source(text: str) -> Source:
    """A camera index ("0"), a stream URL or a video file path, as typed on the command line."""
    if text.isdigit():
        return Source.camera(int(text))
    if "://" in text:
        return Source.url(text)
    return Source.file(Path(text).expanduser().resolve())


def create_application() -> QApplication:
    """The QApplication with the app's identity (settings location, icon); the self-test uses it too."""
    app = QApplication.instance()
    if app is None:  # the policy can only be set before the application exists
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
    app.setOrganizationName("MaskChecker")
    app.setApplicationName("Mask Checker")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("mask-checker")
    app.setWindowIcon(QIcon(str(app_icon_path())))
    return app


def run_app(source: str | None = None) -> int:
    """Open the main window (and start `source` if given); returns the exit code."""
    from app.toolkit import toolkit_problem
    from app.xcb import desktop_problem

    # Before Qt starts: it would abort with a page about its plugins, or crash minutes later.
    problem = toolkit_problem() or desktop_problem()
    if problem:
        log.error("%s", problem)
        return 1
    app = create_application()

    from app.main_window import MainWindow  # after QApplication: widgets need it

    window = MainWindow()
    window.show()
    if source:
        window.open_source(parse_source(source))
    # Ctrl-C or a termination request closes the window the normal way (threads stopped, state
    # saved) instead of raising KeyboardInterrupt inside a Qt slot. Python runs signal handlers
    # only between bytecodes, so a timer gives it a chance while Qt idles.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    return app.exec()
