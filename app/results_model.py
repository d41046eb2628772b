"""The batch results as a Qt table: one row per face, or one per image with no face or an error.

A QAbstractTableModel over the list of ImageResults (the same rows as the CLI's CSV); sorting
and filtering are a QSortFilterProxyModel on top, using the roles below so numbers sort as
numbers and the filter sees a plain state key.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QRegularExpression, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from app.overlay import MASK_TEXT, age_text, gender_text, mask_colour
from core.batch import ImageResult

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
FILTER_ROLE = Qt.ItemDataRole.UserRole + 2

COLUMNS = ("File", "Face", "Status", "Mask", "Confidence", "Gender", "Age", "Class", "Detection", "Message")

#: Filter choices: label shown → state key matched against FILTER_ROLE ("" = everything).
FILTERS: dict[str, str] = {
    "All rows": "",
    "Mask worn": "wear",
    "Mask worn wrongly": "incorrect",
    "No mask": "not_wear",
    "Faces not classified": "unclassified",
    "Images with no face": "no_face",
    "Unreadable files": "error",
}

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class RowRef:
    result: int  # index into `results`
    face: int | None  # index into that result's faces; None for a no-face or error row


class ResultsTableModel(QAbstractTableModel):
    """Rows are appended as the batch reports each image; never edited."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.results: list[ImageResult] = []
        self._rows: list[RowRef] = []
        self.min_confidence = 0.0  # gender and age below this read "?" (Settings)

    # ------------------------------------------------------------------ filling

    def add(self, result: ImageResult) -> None:
        refs = [RowRef(len(self.results), i) for i in range(len(result.faces))] or [RowRef(len(self.results), None)]
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(refs) - 1)
        self.results.append(result)
        self._rows.extend(refs)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.results.clear()
        self._rows.clear()
        self.endResetModel()

    def row_ref(self, row: int) -> RowRef:
        return self._rows[row]

    # ------------------------------------------------------------------ Qt model API

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and orientation == Qt.Orientation.Horizontal and COLUMNS[section] == "Face":
            return "Face number in the photo, from 0: the same as the face column of an exported CSV"
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        ref = self._rows[index.row()]
        result = self.results[ref.result]
        face = result.faces[ref.face] if ref.face is not None else None
        column = COLUMNS[index.column()]
        if role == FILTER_ROLE:
            if face is None:
                return result.status
            return face.mask.label.name.lower() if face.mask is not None else "unclassified"
        if role == Qt.ItemDataRole.DecorationRole and column == "Mask" and face is not None:
            return mask_colour(face.mask.label if face.mask is not None else None)
        if role == Qt.ItemDataRole.ForegroundRole and column == "Status" and result.status == "error":
            return QColor(200, 40, 40)
        if role == Qt.ItemDataRole.ToolTipRole and column in ("File", "Message"):
            return str(result.path) if column == "File" else (result.error or result.warning or None)
        if role == SORT_ROLE:
            return self._sort_value(column, result, face, ref)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(column, result, face, ref, self.min_confidence)
        return None

    def set_min_confidence(self, value: float) -> None:
        self.min_confidence = value
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(COLUMNS) - 1))

    @staticmethod
    def _text(column: str, result: ImageResult, face, ref: RowRef, min_confidence: float = 0.0) -> str:
        if column == "File":
            return result.path.name
        if column == "Status":
            return {"face": "face", "no_face": "no face", "error": "unreadable"}[result.status]
        if column == "Message":
            return result.error or result.warning or ""
        if face is None:
            return ""
        if column == "Face":
            return str(ref.face)  # numbered from 0, as in the exported CSV's face column
        if column == "Detection":
            return f"{face.det_score:.2f}"
        if face.mask is None or face.gender is None or face.age is None:
            return "—" if column == "Mask" else ""
        return {
            "Mask": MASK_TEXT[face.mask.label],
            "Confidence": f"{face.mask.confidence:.2f}",
            "Gender": gender_text(face, min_confidence),
            "Age": age_text(face, min_confidence),
            "Class": str(face.class_id),
        }[column]

    @staticmethod
    def _sort_value(column: str, result: ImageResult, face, ref: RowRef):
        """Same type within a column (float or str) so the proxy can compare any two rows."""
        if column == "File":
            return str(result.path).lower()
        if column in ("Status", "Message"):
            return ResultsTableModel._text(column, result, face, ref)
        if face is None:
            return -1.0 if column in ("Face", "Confidence", "Class", "Detection") else ""
        if column == "Face":
            return float(ref.face)
        if column == "Detection":
            return face.det_score
        if column == "Mask":
            return str(int(face.mask.label)) if face.mask is not None else "9"
        if column == "Confidence":
            return face.mask.confidence if face.mask is not None else -1.0
        if column == "Class":
            return float(face.class_id) if face.class_id is not None else -1.0
        return ResultsTableModel._text(column, result, face, ref)


class ResultsProxy(QSortFilterProxyModel):
    """Sorting by SORT_ROLE and filtering by mask state (see FILTERS)."""

    def __init__(self, source: ResultsTableModel, parent=None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.setFilterRole(FILTER_ROLE)
        self.setFilterKeyColumn(0)

    def set_state_filter(self, key: str) -> None:
        self.setFilterRegularExpression(QRegularExpression(f"^{QRegularExpression.escape(key)}$" if key else ""))
