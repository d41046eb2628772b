"""The Live tab's alert log: a table over app/live_log.py's AlertLog and the two export buttons."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableView, QVBoxLayout, QWidget

from app.live_log import AlertLog

HEADERS = ("Time", "Person", "State", "Lasted")

Index = QModelIndex | QPersistentModelIndex


class AlertTableModel(QAbstractTableModel):
    """Newest alert first; `refresh` after the log changed (or to tick the ongoing durations)."""

    def __init__(self, log: AlertLog, parent=None) -> None:
        super().__init__(parent)
        self.log = log
        self._rows: list[tuple] = []

    def refresh(self) -> None:
        self.beginResetModel()
        self._rows = list(reversed(self.log.rows()))
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        started, track, state, seconds, ongoing = self._rows[index.row()]
        return (started[11:], f"#{track}", state, f"{seconds:.0f} s" + (" …" if ongoing else ""))[index.column()]


class AlertPanel(QWidget):
    """Widgets only: the window feeds the log and runs the exports."""

    def __init__(self, log: AlertLog, export_alerts: QAction, export_counts: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = AlertTableModel(log, self)
        title = QLabel("<b>Alerts</b> (this session, kept in memory)")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.empty = QLabel("No alert yet.")
        buttons = QHBoxLayout()
        for action in (export_alerts, export_counts):
            button = QPushButton(action.text().replace("&", ""))
            button.setToolTip(action.toolTip())
            button.clicked.connect(action.trigger)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        self.model.refresh()
        self.empty.setVisible(self.model.rowCount() == 0)
