"""The Live tab's widgets: source controls, the view (or an empty state) with its alert banner,
the alert log beside it, counters."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget, QToolBar, QVBoxLayout, QWidget,
)

from app.frame_view import FrameView
from app.overlay import mask_colour
from app.sources import Source, SourceKind
from app.tracking import Counts
from core.labels import Mask


def _action_button(action: QAction) -> QPushButton:
    """A big push button that mirrors (and triggers) an action."""
    button = QPushButton(action.text().replace("&", ""))
    button.setMinimumHeight(36)
    button.clicked.connect(action.trigger)
    return button


class EmptyState(QWidget):
    """Shown until something plays: says what is (not) there and offers the ways in."""

    def __init__(self, open_video: QAction, open_folder: QAction, open_url: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Looking for cameras…")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        self.title.setFont(font)
        self.hint = QLabel("")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for action in (open_video, open_folder, open_url):
            buttons.addWidget(_action_button(action))
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(2)

    def set_cameras(self, cameras: list[int]) -> None:
        if cameras:
            names = ", ".join(str(i) for i in cameras)
            self.title.setText("Ready")
            self.hint.setText(f"Camera {names} found. Press Start (F5), or open a video, a stream or a folder of photos.")
        else:
            self.title.setText("No camera found")
            self.hint.setText(
                "Open a video file or a network stream to check it live, or a folder of photos to label them. "
                "You can also drop photos and folders onto this window."
            )


class LivePanel(QWidget):
    """Widgets only; the window connects them to the live controller."""

    def __init__(
        self, start: QAction, pause: QAction, stop: QAction, snapshot: QAction,
        open_video: QAction, open_folder: QAction, open_url: QAction, side: QWidget | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sources = QComboBox()
        self.sources.setMinimumContentsLength(24)
        self.sources.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.sources.setToolTip("What to read: a camera, a video file or a stream")
        bar = QToolBar("Live")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addWidget(QLabel("Source "))
        bar.addWidget(self.sources)
        bar.addAction(open_video)
        bar.addAction(open_url)
        bar.addSeparator()
        for action in (start, pause, stop):
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(snapshot)

        self.empty = EmptyState(open_video, open_folder, open_url)
        # A source that failed: what went wrong and a Retry button, above the picture.
        self.failure = QLabel()
        self.failure.setWordWrap(True)
        self.retry = QPushButton("Retry")
        self.retry.setToolTip("Try this source again")
        self.failure_bar = QWidget()
        failure_row = QHBoxLayout(self.failure_bar)
        failure_row.setContentsMargins(4, 2, 4, 2)
        failure_row.addWidget(self.failure, 1)
        failure_row.addWidget(self.retry)
        self.failure_bar.hide()
        self.view = FrameView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)

        self.faces_now = QLabel()
        self.count_labels: dict[Mask, QLabel] = {}
        counters = QHBoxLayout()
        counters.addWidget(self.faces_now)
        counters.addStretch(1)
        counters.addWidget(QLabel("Since Start:"))
        for mask, text in ((Mask.WEAR, "Mask ✓"), (Mask.INCORRECT, "Mask wrong"), (Mask.NOT_WEAR, "No mask")):
            label = QLabel()
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setProperty("caption", f"<span style='color:{mask_colour(mask).name()}'>■</span>&nbsp;{text}")
            label.setContentsMargins(12, 0, 0, 0)
            self.count_labels[mask] = label
            counters.addWidget(label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addWidget(self.failure_bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.stack)
        if side is not None:
            self.splitter.addWidget(side)
            self.splitter.setStretchFactor(0, 4)
            self.splitter.setStretchFactor(1, 1)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(counters)
        self.show_counts(Counts())

    # ------------------------------------------------------------------ updates from the window

    def show_counts(self, counts: Counts) -> None:
        self.counts = counts
        self.faces_now.setText(f"Faces now: {counts.now}")
        for mask, value in ((Mask.WEAR, counts.wear), (Mask.INCORRECT, counts.incorrect), (Mask.NOT_WEAR, counts.none)):
            label = self.count_labels[mask]
            label.setText(f"{label.property('caption')}: {value}")

    def show_banner(self, text: str) -> None:
        """Who is alerting now, in a bar above the picture; "" takes it away. Set every frame:
        it clears as soon as nobody is unmasked or wrongly masked any more."""
        if text != self.view.banner:
            self.view.set_banner(text)

    def show_failure(self, text: str) -> None:
        """The reason a source failed, with Retry; "" hides it."""
        self.failure.setText(text)
        self.failure_bar.setVisible(bool(text))

    def show_view(self) -> None:
        self.stack.setCurrentWidget(self.view)

    def current_source(self) -> Source | None:
        return self.sources.currentData()

    def set_cameras(self, cameras: list[int]) -> None:
        """Cameras first, then the files and streams opened in this run (kept)."""
        current = self.current_source()
        kept = [self.sources.itemData(i) for i in range(self.sources.count())]
        kept = [s for s in kept if s is not None and s.kind is not SourceKind.CAMERA]
        self.sources.clear()
        for source in [Source.camera(i) for i in cameras] + kept:
            self.sources.addItem(source.label, source)
        self.select(current)
        self.empty.set_cameras(cameras)

    def add_source(self, source: Source) -> None:
        if self.select(source):
            return
        self.sources.addItem(source.label, source)
        tip = source.target if source.is_file else source.label  # a URL's password stays hidden
        self.sources.setItemData(self.sources.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.select(source)

    def select(self, source: Source | None) -> bool:
        for i in range(self.sources.count()):
            if self.sources.itemData(i) == source:
                self.sources.setCurrentIndex(i)
                return True
        return False
