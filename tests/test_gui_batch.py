"""Dropping photos on the window runs the batch in the background, fills the table, and exports."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QMimeData, Qt, QUrl  # noqa: E402

from app.results_model import COLUMNS, FILTER_ROLE, FILTERS  # noqa: E402
from core.batch import CSV_COLUMNS  # noqa: E402
from tests.gui_support import SCENE  # noqa: E402

WAIT_MS = 120_000
PHOTOS = (SCENE, "maksssksksss206.jpg", "maksssksksss1.jpg")


@pytest.fixture
def photo_folder(shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in PHOTOS[:2]:
        shutil.copy(shared_data / "face_mask_853" / "images" / name, folder / name)
    shutil.copy(shared_data / "face_mask_853" / "images" / PHOTOS[2], folder / "sub" / PHOTOS[2])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return folder


def drop(window, *paths: Path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return window.handle_drop(mime)


def run_batch(window, qtbot, *paths: Path):
    summaries = []
    window.batch.finished.connect(summaries.append)
    assert drop(window, *paths)
    qtbot.waitUntil(lambda: bool(summaries) and not window.batch.running, timeout=WAIT_MS)
    return summaries[0]


@pytest.fixture
def classified_window(make_window, gui_store, random_classifier):
    gui_store.setValue("model/path", str(random_classifier))
    return make_window()


def test_dropped_folder_fills_the_table_and_exports_csv(classified_window, qtbot, photo_folder, tmp_path, monkeypatch):
    window = classified_window
    summary = run_batch(window, qtbot, photo_folder)
    assert window.tabs.currentWidget() is window.batch_panel
    model, proxy = window.batch_panel.model, window.batch_panel.proxy
    assert summary.files == 4 and summary.done == 4 and summary.errors == 1  # recursive by default
    assert summary.faces >= 5
    assert [r.path.name for r in model.results] == ["broken.jpg", PHOTOS[0], PHOTOS[1], PHOTOS[2]]
    assert model.rowCount() == sum(max(1, len(r.faces)) for r in model.results)
    assert model.columnCount() == len(COLUMNS)
    assert window.batch_panel.progress.value() == 4 and window.batch_panel.progress.maximum() == 4

    # The summary is in words, not the labels' code names; every column fits the default window.
    hint = window.batch_panel.hint.text()
    assert hint.startswith("4 of 4 photos: 3 with faces, none without, 1 unreadable · ") and "faces: " in hint
    assert not any(code in hint for code in ("not_wear", "incorrect", "wear "))
    table = window.batch_panel.table
    header = table.horizontalHeader()
    last = COLUMNS.index("Detection")
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= table.viewport().width(), \
        [header.sectionSize(i) for i in range(len(COLUMNS))]

    # Filter by state: every row lands in exactly one of the state filters.
    sizes = {}
    for label, key in FILTERS.items():
        window.batch_panel.filter.setCurrentText(label)
        sizes[key] = proxy.rowCount()
        assert all(proxy.index(r, 0).data(FILTER_ROLE) == key for r in range(proxy.rowCount())) or key == ""
    assert sizes[""] == model.rowCount() == sum(v for k, v in sizes.items() if k)
    assert sizes["error"] == 1 and sizes["wear"] + sizes["incorrect"] + sizes["not_wear"] == summary.faces
    window.batch_panel.filter.setCurrentText("All rows")

    # Sorting by detection score puts the best-scored face first.
    window.batch_panel.table.sortByColumn(COLUMNS.index("Detection"), Qt.SortOrder.DescendingOrder)
    best = max(f.det_score for r in model.results for f in r.faces)
    assert proxy.index(0, COLUMNS.index("Detection")).data() == f"{best:.2f}"

    # Selecting a row previews that image with its overlays, the selected face emphasised.
    window.batch_panel.table.selectRow(0)
    preview = window.batch_panel.preview
    qtbot.waitUntil(lambda: preview.image is not None and bool(preview.faces), timeout=WAIT_MS)
    ref = model.row_ref(proxy.mapToSource(proxy.index(0, 0)).row())
    result = model.results[ref.result]
    assert (preview.image.width(), preview.image.height()) == (result.width, result.height)
    assert preview.faces == result.faces and preview.emphasised == {ref.face}

    out = tmp_path / "out" / "results.csv"
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), ""))
    window.act_export_csv.trigger()
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == model.rowCount()
    assert [r["status"] for r in rows].count("error") == 1
    assert {r["mask"] for r in rows if r["status"] == "face"} <= {"wear", "incorrect", "not_wear"}
    # One face numbering: the table's Face column is the CSV's face column, row for row.
    face_column = COLUMNS.index("Face")
    table_faces = sorted((model.results[model.row_ref(r).result].path.name, model.index(r, face_column).data())
                         for r in range(model.rowCount()) if model.row_ref(r).face is not None)
    csv_faces = sorted((Path(r["file"]).name, r["face"]) for r in rows if r["status"] == "face")
    assert table_faces == csv_faces

    # With a filter on, the export still writes everything, and says so.
    window.batch_panel.filter.setCurrentText("No mask")
    window.act_export_csv.trigger()
    assert window.statusBar().currentMessage().startswith("Exported all 4 images")
    assert "only changes what the table shows" in window.statusBar().currentMessage()
    with open(out, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == model.rowCount()

    # Results made before a settings change say so; running the photos again clears it.
    assert window.batch_panel.stale.isHidden()
    from dataclasses import replace

    from core.config import DetectorConfig

    window.apply_settings(replace(window.settings, detector=DetectorConfig(min_face_size=24)))
    assert not window.batch_panel.stale.isHidden()
    assert "face detector settings changed" in window.batch_panel.stale.text()


def test_json_and_submission_exports(classified_window, qtbot, photo_folder, tmp_path, monkeypatch):
    window = classified_window
    run_batch(window, qtbot, photo_folder / PHOTOS[0], photo_folder / PHOTOS[1])
    json_out = tmp_path / "results.json"
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(json_out), ""))
    assert window.export(window_kind("JSON")) == json_out
    data = json.loads(json_out.read_text(encoding="utf-8"))
    assert data["model"]["model_version"] == "test-random-0"
    assert [Path(i["file"]).name for i in data["images"]] == list(PHOTOS[:2])

    info = tmp_path / "eval" / "info.csv"
    info.parent.mkdir()
    info.write_text("ImageID,ans\n" + f"{PHOTOS[0]},\n{PHOTOS[1]},\nmissing.jpg,\n", encoding="utf-8")
    submission = tmp_path / "eval" / "submission.csv"
    monkeypatch.setattr("app.main_window.QFileDialog.getOpenFileName", lambda *a, **k: (str(info), ""))
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(submission), ""))
    assert window.export(window_kind("SUBMISSION")) == submission
    with open(submission, newline="", encoding="utf-8") as handle:
        answers = {row["ImageID"]: int(row["ans"]) for row in csv.DictReader(handle)}
    largest = {r.path.name: r.largest_face().class_id for r in window.batch_panel.model.results}
    assert answers == {PHOTOS[0]: largest[PHOTOS[0]], PHOTOS[1]: largest[PHOTOS[1]], "missing.jpg": 4}
    assert info.read_text(encoding="utf-8").endswith("missing.jpg,\n"), "info.csv is never overwritten"


def test_cancel_keeps_what_was_done(make_window, qtbot, shared_data, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for name in sorted(os.listdir(shared_data / "face_mask_853" / "images"))[:100]:
        shutil.copy(shared_data / "face_mask_853" / "images" / name, folder / name)
    window = make_window()
    summaries = []
    window.batch.finished.connect(summaries.append)
    assert drop(window, folder)
    qtbot.waitUntil(lambda: len(window.batch_panel.model.results) >= 2, timeout=WAIT_MS)
    window.batch_panel.cancel.click()
    qtbot.waitUntil(lambda: bool(summaries) and not window.batch.running, timeout=WAIT_MS)
    summary = summaries[0]
    assert summary.interrupted and summary.done < summary.files == 100
    assert len(window.batch_panel.model.results) == summary.done
    assert window.batch_panel.cancel.isHidden()


def test_a_second_drop_while_running_is_refused(make_window, qtbot, photo_folder):
    window = make_window()
    summaries = []
    window.batch.finished.connect(summaries.append)
    assert drop(window, photo_folder)
    assert not drop(window, photo_folder)
    qtbot.waitUntil(lambda: bool(summaries) and not window.batch.running, timeout=WAIT_MS)
    assert len(summaries) == 1


def window_kind(name: str):
    from app.export import ExportKind

    return ExportKind[name]
