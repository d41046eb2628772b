"""`mask-checker batch` end to end: real photos, hostile files, every output, interruption."""
import csv
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import main
from core.analyzer import FaceAnalyzer
from core.batch import BatchJob
from core.config import AnalyzerConfig
from core.labels import NUM_CLASSES


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photo_dir(tmp_path, samples_dir, shared_data) -> Path:
    """Two real scenes, a real single-face photo, and three files that are not usable images."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for sample in sorted(samples_dir.glob("*.jpg")):
        shutil.copy(sample, folder / sample.name)
    web = sorted((shared_data / "mask_web" / "without_mask").iterdir())[0]
    shutil.copy(web, folder / "single.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a photo")
    data = (samples_dir / "scene_mixed.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[:200])
    return folder


def test_csv_has_a_row_for_every_face_and_every_problem(photo_dir, tmp_path, random_classifier):
    out = tmp_path / "results.csv"
    assert main(["batch", str(photo_dir), "--out", str(out), "--model", str(random_classifier)]) == 0
    rows = read_rows(out)
    by_file: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert set(by_file) == {p.name for p in photo_dir.iterdir()}
    for bad in ("empty.jpg", "notes.jpg", "cut.jpg"):
        (row,) = by_file[bad]
        assert row["status"] == "error" and row["message"], row
    for good in ("scene_mixed.jpg", "scene_incorrect.jpg"):
        faces = by_file[good]
        assert len(faces) >= 2 and all(r["status"] == "face" for r in faces)
        for r in faces:
            assert 0 <= int(r["class_id"]) < NUM_CLASSES
            assert r["mask"] in ("wear", "incorrect", "not_wear")
            total = sum(float(r[k]) for k in r if k.startswith("p_mask_"))
            assert abs(total - 1) < 1e-3
    assert [int(r["face"]) for r in by_file["scene_mixed.jpg"]] == list(range(len(by_file["scene_mixed.jpg"])))


def test_json_nests_faces_per_image(photo_dir, tmp_path, random_classifier):
    out = tmp_path / "results.json"
    assert main(["batch", str(photo_dir), "--out", str(out), "--model", str(random_classifier)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["model"]["model_version"] == "test-random-0"
    images = {Path(i["file"]).name: i for i in report["images"]}
    assert len(images) == 6
    assert images["notes.jpg"]["status"] == "error"
    scene = images["scene_mixed.jpg"]
    assert scene["status"] == "face" and len(scene["faces"]) >= 2
    assert len(scene["faces"][0]["landmarks"]) == 5


def test_submission_fills_every_row_and_keeps_info_csv(photo_dir, tmp_path, random_classifier):
    info = tmp_path / "eval" / "info.csv"
    info.parent.mkdir()
    names = ["scene_mixed.jpg", "single.jpg", "notes.jpg", "missing.jpg"]
    info.write_text("ImageID,ans\n" + "".join(f"{n},0\n" for n in names))
    before = digest(info)
    out = tmp_path / "sub.csv"
    args = ["batch", str(photo_dir), "--out", str(tmp_path / "r.csv"), "--model", str(random_classifier),
            "--submission", str(info), "--submission-out", str(out), "--fallback-class", "7"]
    assert main(args) == 0
    assert digest(info) == before
    rows = read_rows(out)
    assert [r["ImageID"] for r in rows] == names
    answers = {r["ImageID"]: int(r["ans"]) for r in rows}
    assert all(0 <= a < NUM_CLASSES for a in answers.values())
    assert answers["notes.jpg"] == 7 and answers["missing.jpg"] == 7
    faces = [r for r in read_rows(tmp_path / "r.csv") if r["file"].endswith("scene_mixed.jpg")]
    largest = max(faces, key=lambda r: (float(r["x2"]) - float(r["x1"])) * (float(r["y2"]) - float(r["y1"])))
    assert answers["scene_mixed.jpg"] == int(largest["class_id"])


def test_submission_refuses_to_overwrite_info_csv(photo_dir, tmp_path, random_classifier):
    info = tmp_path / "info.csv"
    info.write_text("ImageID,ans\nsingle.jpg,0\n")
    args = ["batch", str(photo_dir), "--model", str(random_classifier), "--out", str(tmp_path / "r.csv"),
            "--submission", str(info), "--submission-out", str(info)]
    assert main(args) == 2
    assert info.read_text() == "ImageID,ans\nsingle.jpg,0\n"


def test_annotate_into_the_input_folder_never_overwrites_an_input(photo_dir, tmp_path, random_classifier):
    before = {p.name: digest(p) for p in photo_dir.iterdir()}
    args = ["batch", str(photo_dir), "--out", str(tmp_path / "r.csv"), "--model", str(random_classifier),
            "--annotate", str(photo_dir)]
    assert main(args) == 0
    for name, sha in before.items():
        assert digest(photo_dir / name) == sha, f"{name} was overwritten"
    annotated = photo_dir / "scene_mixed_annotated.jpg"
    image = cv2.imread(str(annotated))
    original = cv2.imread(str(photo_dir / "scene_mixed.jpg"))
    assert image.shape == original.shape and not np.array_equal(image, original)


def test_interrupt_leaves_a_valid_file_with_the_work_done(photo_dir, tmp_path, random_classifier):
    out = tmp_path / "results.csv"
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=random_classifier))
    seen = []

    def progress(result, summary):
        seen.append(result.path.name)
        if len(seen) == 2:
            raise KeyboardInterrupt

    summary = BatchJob(paths=[photo_dir], out=out).run(analyzer, progress=progress)
    assert summary.interrupted and summary.done == 2
    rows = read_rows(out)
    assert {Path(r["file"]).name for r in rows} == set(seen)
    assert not list(tmp_path.glob(".results.csv*")), "temporary file left behind"


def test_unknown_output_format_writes_nothing(photo_dir, tmp_path, random_classifier):
    out = tmp_path / "results.xlsx"
    assert main(["batch", str(photo_dir), "--out", str(out), "--model", str(random_classifier)]) == 2
    assert not out.exists()


def test_bad_model_file_is_a_clear_error(photo_dir, tmp_path, caplog):
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"\x00" * 64)
    out = tmp_path / "results.csv"
    assert main(["batch", str(photo_dir), "--out", str(out), "--model", str(model)]) == 2
    assert "broken.onnx" in caplog.text and not out.exists()


def test_empty_folder_gives_a_header_only_file(tmp_path, random_classifier, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "results.csv"
    assert main(["batch", str(empty), "--out", str(out), "--model", str(random_classifier)]) == 0
    assert read_rows(out) == [] and "no images found" in caplog.text


def make_hostile_folder(root: Path, photo: Path) -> dict[str, str]:
    """Every awkward input the batch must survive; returns name → expected status kind."""
    from PIL import Image

    root.mkdir()
    expected: dict[str, str] = {}
    rgb = Image.open(photo).convert("RGB")

    def put(name: str, kind: str, data: bytes | None = None, image: Image.Image | None = None, **save) -> None:
        path = root / name
        if image is not None:
            image.save(path, **save)
        else:
            path.write_bytes(data or b"")
        expected[name] = kind

    put("zero.jpg", "error", b"")
    put("truncated.jpg", "ok", photo.read_bytes()[: len(photo.read_bytes()) // 2])
    put("text.jpg", "error", b"hello, I am not a photo\n")
    put("one_pixel.png", "ok", image=Image.new("RGB", (1, 1), (9, 9, 9)))
    sixteen = np.full((64, 64), 40000, np.uint16)
    ok, encoded = cv2.imencode(".png", sixteen)
    put("sixteen_bit.png", "ok", encoded.tobytes())
    put("cmyk.jpg", "ok", image=rgb.convert("CMYK"), format="JPEG")
    put("rgba.png", "ok", image=rgb.convert("RGBA"))
    exif = Image.Exif()
    exif[0x0112] = 6
    put("rotated.jpg", "ok", image=rgb.rotate(90, expand=True), format="JPEG", exif=exif.tobytes())
    put("huge.png", "error", image=Image.new("L", (3000, 2000)))  # 6 Mpx, over the 5 Mpx limit used below
    put("фото 日本.jpg", "ok", photo.read_bytes())
    (root / "loop").symlink_to(root, target_is_directory=True)
    expected["loop"] = "error"
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    expected["dangling.jpg"] = "error"
    (root / "folder.jpg").mkdir()
    (root / "empty_sub").mkdir()
    return expected


def test_hostile_files_never_stop_the_batch_and_none_is_lost(tmp_path, shared_data, random_classifier):
    photo = sorted((shared_data / "mask_web" / "without_mask").iterdir())[0]
    folder = tmp_path / "hostile"
    expected = make_hostile_folder(folder, photo)
    out = tmp_path / "results.csv"
    args = ["batch", str(folder), "-r", "--max-mpx", "5", "--out", str(out), "--model", str(random_classifier)]
    assert main(args) == 0
    rows = read_rows(out)
    status = {}
    for row in rows:
        status.setdefault(Path(row["file"]).name, set()).add(row["status"])
    for name, kind in expected.items():
        assert name in status, f"{name} has no row"
        if kind == "error":
            assert status[name] == {"error"}, name
        else:
            assert status[name] <= {"face", "no_face"}, (name, status[name])
    reasons = {Path(r["file"]).name: r["message"] for r in rows if r["status"] == "error"}
    assert "limit" in reasons["huge.png"] and "empty" in reasons["zero.jpg"]
    assert "truncated" in next(r["message"] for r in rows if r["file"].endswith("truncated.jpg"))
    assert status["фото 日本.jpg"] == {"face"} and status["rotated.jpg"] == {"face"}


def test_outputs_never_land_on_an_input_or_on_each_other(photo_dir, tmp_path, random_classifier):
    info = tmp_path / "info.csv"
    info.write_text("ImageID,ans\nsingle.jpg,0\n")
    before = digest(info)
    model = ["--model", str(random_classifier)]
    assert main(["batch", str(photo_dir), "--out", str(info), "--submission", str(info), *model]) == 2
    assert main(["batch", str(photo_dir), "--out", str(photo_dir / "single.jpg"), *model]) == 2
    same = tmp_path / "same.csv"
    assert main(["batch", str(photo_dir), "--out", str(same), "--submission", str(info), "--submission-out", str(same), *model]) == 2
    assert digest(info) == before and not same.exists()


def test_a_failing_run_keeps_the_previous_results_file(photo_dir, tmp_path, random_classifier):
    out = tmp_path / "results.csv"
    out.write_text("previous good results\n")
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=random_classifier))

    def crash(result, summary):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        BatchJob(paths=[photo_dir], out=out).run(analyzer, progress=crash)
    assert out.read_text() == "previous good results\n"
    assert not list(tmp_path.glob(".results.csv*"))


def test_a_stopped_run_writes_no_submission_of_guesses(photo_dir, tmp_path, random_classifier):
    info = tmp_path / "info.csv"
    info.write_text("ImageID,ans\nsingle.jpg,0\nscene_mixed.jpg,0\n")
    sub = tmp_path / "submission.csv"
    analyzer = FaceAnalyzer(AnalyzerConfig(classifier_path=random_classifier))
    summary = BatchJob(paths=[photo_dir], out=tmp_path / "r.csv", submission_info=info, submission_out=sub).run(
        analyzer, should_stop=lambda: True
    )
    assert summary.interrupted and not sub.exists() and (tmp_path / "r.csv").exists()


def test_annotated_copies_of_same_named_photos_do_not_overwrite_each_other(tmp_path, samples_dir, random_classifier):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(samples_dir / "scene_mixed.jpg", a / "x.jpg")
    shutil.copy(samples_dir / "scene_incorrect.jpg", b / "x.jpg")
    out = tmp_path / "annotated"
    assert main(["batch", str(a / "x.jpg"), str(b / "x.jpg"), "--annotate", str(out), "--model", str(random_classifier)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg", "x_annotated.jpg"]


def test_a_decoder_crash_on_one_file_is_an_error_row(photo_dir, tmp_path, random_classifier, monkeypatch):
    import core.batch

    real = core.batch.load_image

    def flaky(path, **options):
        if path.name == "single.jpg":
            raise MemoryError("cannot allocate")
        return real(path, **options)

    monkeypatch.setattr(core.batch, "load_image", flaky)
    out = tmp_path / "results.csv"
    assert main(["batch", str(photo_dir), "--out", str(out), "--model", str(random_classifier)]) == 0
    rows = {Path(r["file"]).name: r for r in read_rows(out)}
    assert rows["single.jpg"]["status"] == "error" and "cannot allocate" in rows["single.jpg"]["message"]
    assert len({Path(r["file"]).name for r in read_rows(out)}) == 6
