"""The Batch tab's widgets: progress and Cancel, the sortable / filterable results table, the preview."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSplitter,
    QTableView, QToolBar, QVBoxLayout, QWidget,
)

from app.frame_view import FrameView
from app.results_model import FILTERS, ResultsProxy, ResultsTableModel

FILE_WIDTH_MAX = 150


class BatchPanel(QWidget):
    """Widgets only; the window runs the job and feeds `model`."""

    def __init__(
        self, open_folder: QAction, open_images: QAction, export_actions: list[QAction], parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = ResultsTableModel(self)
        self.proxy = ResultsProxy(self.model, self)

        bar = QToolBar("Batch")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addAction(open_folder)
        bar.addAction(open_images)
        bar.addSeparator()
        bar.addWidget(QLabel("Show "))
        self.filter = QComboBox()
        for label, key in FILTERS.items():
            self.filter.addItem(label, key)
        self.filter.currentIndexChanged.connect(lambda _: self.proxy.set_state_filter(self.filter.currentData()))
        bar.addWidget(self.filter)
        bar.addSeparator()
        for action in export_actions:
            bar.addAction(action)

        self.hint = QLabel("Drop photos or folders here, or use File › Open folder (Ctrl+Shift+O).")
        self.hint.setWordWrap(True)
        # Results made with other settings than the current ones say so until the photos are run again.
        self.stale = QLabel()
        self.stale.setWordWrap(True)
        self.stale.setStyleSheet("color: #b35900; font-weight: bold;")
        self.stale.hide()
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.hide()
        status = QHBoxLayout()
        status.addWidget(self.hint, 1)
        status.addWidget(self.progress, 1)
        status.addWidget(self.cancel)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # input order until a header is clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setDefaultSectionSize(72)
        self.table.setColumnWidth(0, 150)

        self.preview = FrameView()
        self.preview.setMinimumSize(240, 180)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 7)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([700, 300])  # the table first: its columns fit, the preview is a glance

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addLayout(status)
        layout.addWidget(self.stale)
        layout.addWidget(self.splitter, 1)

    def set_running(self, running: bool) -> None:
        self.progress.setVisible(running or self.model.results != [])
        self.cancel.setVisible(running)
        self.cancel.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the file count is known
            self.progress.setValue(0)

    def fit_columns(self) -> None:
        """Every column as wide as its contents, the file names at most FILE_WIDTH_MAX px: all
        columns fit the table at the window's default size."""
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(0, min(self.table.columnWidth(0), FILE_WIDTH_MAX))

    def set_stale(self, reason: str) -> None:
        """Mark the results as made with other settings ("" when they are current)."""
        self.stale.setText(f"These results were made with other settings than the current ones ({reason}): "
                           "open the photos again to update them." if reason else "")
        self.stale.setVisible(bool(reason))

    def set_progress(self, done: int, files: int) -> None:
        self.progress.setRange(0, max(1, files))
        self.progress.setValue(done)
