"""prepare: resumable, honest about every photo, and the face policy it states."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.data.cache import Cache
from training.config import ConfigError, PrepareConfig
from training.data.prepare import choose_face, prepare
from tests.train_helpers import utk_faces


@pytest.fixture
def photos(tmp_path, shared_data) -> Path:
    """A CSV manifest over 4 UTKFace faces, 2 masked web photos, a broken file and a missing one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    names = []
    for face in utk_faces(shared_data, 4):
        shutil.copy(face, folder / face.name)
        names.append((face.name, "", face.name.split("_")[1] == "0" and "male" or "female", face.name.split("_")[0]))
    for web in sorted((shared_data / "mask_web" / "with_mask").iterdir())[:2]:
        shutil.copy(web, folder / f"web_{web.name}")
        names.append((f"web_{web.name}", "wear", "", ""))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    names.append(("broken.jpg", "wear", "", ""))
    table = tmp_path / "list.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "mask", "gender", "age"])
        writer.writerows([f"photos/{n}", m, g, a] for n, m, g, a in names)
        writer.writerow(["photos/missing.jpg", "wear", "", ""])
    return table


def config(table: Path, cache: Path, **changes) -> PrepareConfig:
    return PrepareConfig(data=(f"csv={table}",), cache=cache, input_size=48, **changes)


def manifest(cache: Cache) -> list[dict[str, str]]:
    with open(cache.manifest_path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_interrupted_prepare_resumes_where_it_stopped(photos, tmp_path):
    cache = Cache(tmp_path / "cache")
    calls = []
    first = prepare(config(photos, cache.root), progress=False, should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert first.interrupted and first.processed == 3
    rows = manifest(cache)
    assert len(rows) == 7  # the missing file is a problem, not a row
    assert sum(r["status"] == "pending" for r in rows) == 4  # valid file, not done yet
    assert len(cache.journal_path.read_text().splitlines()) == 3

    second = prepare(config(photos, cache.root), progress=False)
    assert (second.reused, second.processed) == (3, 4) and not second.interrupted
    assert second.status["error"] == 1 and second.status["ok"] + second.status["no_face"] == 6
    rows = {Path(r["path"]).name: r for r in manifest(cache)}
    assert rows["broken.jpg"]["status"] == "error" and rows["broken.jpg"]["message"]
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) >= 4
    for r in ok:
        assert (cache.root / r["crop"]).is_file() and r["how"] in ("detected", "padded")

    # problems.csv names the missing file with its line
    problems = list(csv.DictReader(open(cache.problems_path)))
    assert [(p["line"], "file not found" in p["message"]) for p in problems] == [("9", True)]
    assert "prepare" in cache.log_path.read_text()


    # A changed photo is done again; the others are not.
    changed = photos.parent / "photos" / Path(ok[0]["path"]).name
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = prepare(config(photos, cache.root), progress=False)
    assert (third.reused, third.processed) == (6, 1)

    # A torn last journal line (killed mid-write) is ignored, and the next record starts on a new line.
    with open(cache.journal_path, "a") as handle:
        handle.write('{"key": "half')
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert prepare(config(photos, cache.root), progress=False).processed == 1
    assert prepare(config(photos, cache.root), progress=False).processed == 0


def test_a_cache_keeps_one_geometry(photos, tmp_path):
    prepare(config(photos, tmp_path / "cache"), progress=False)
    with pytest.raises(ConfigError, match="prepared with other settings"):
        prepare(config(photos, tmp_path / "cache", crop_margin=0.3), progress=False)


def test_strict_refuses_datasets_with_errors(photos, tmp_path):
    with pytest.raises(ConfigError, match="strict"):
        prepare(config(photos, tmp_path / "cache", strict=True), progress=False)


def test_skip_policy_finds_fewer_faces_than_pad(photos, tmp_path):
    pad = prepare(config(photos, tmp_path / "pad"), progress=False)
    skip = prepare(config(photos, tmp_path / "skip", no_face="skip"), progress=False)
    assert skip.how["padded"] == 0
    assert skip.status["ok"] == pad.status["ok"] - pad.how["padded"]


def test_choose_face_takes_the_largest_or_among_similar_the_most_central():
    big_corner = np.array([0, 0, 50, 50.0])
    small_centre = np.array([90, 90, 110, 110.0])
    assert choose_face([small_centre, big_corner], 200, 200) == 1
    similar_centre = np.array([75, 75, 123, 123.0])  # 48 px: within 80 % of the 50 px face's area
    assert choose_face([big_corner, similar_centre], 200, 200) == 1


def test_a_photo_listed_for_two_people_is_a_warning(photos, tmp_path):
    twice = tmp_path / "twice.csv"
    first_photo = photos.read_text().splitlines()[1].split(",")[0]
    twice.write_text(f"path,person_id,mask\n{first_photo},a,wear\n{first_photo},b,wear\n")
    summary = prepare(PrepareConfig(data=(f"csv={twice}",), cache=tmp_path / "c2", input_size=48), progress=False)
    assert summary.reader_warnings == 1 and summary.images == 1
    problems = list(csv.DictReader(open(tmp_path / "c2" / "problems.csv")))
    assert "listed for two people" in problems[0]["message"]


def test_a_file_name_that_is_not_utf8_is_a_problem_row_not_a_crash(tmp_path, samples_dir):
    """The manifest is UTF-8: such a photo cannot be named in it, so it is reported (escaped) and
    left out, and the run (and every rerun) finishes with the other photos."""
    folder = tmp_path / "folders" / "with_mask"
    folder.mkdir(parents=True)
    shutil.copy(samples_dir / "scene_incorrect.jpg", folder / "ok.jpg")
    shutil.copy(samples_dir / "scene_mixed.jpg", os.fsdecode(os.fsencode(folder) + b"/bad\xffname.jpg"))
    config = PrepareConfig(data=(f"folders={tmp_path / 'folders'}",), cache=tmp_path / "cache")
    for _ in range(2):
        summary = prepare(config, progress=False)
        assert summary.status["ok"] == 1
        with open(Cache(tmp_path / "cache").problems_path, newline="", encoding="utf-8") as handle:
            problems = list(csv.DictReader(handle))
        assert [p["file"].endswith("bad\\xffname.jpg") for p in problems] == [True]
        assert "not valid UTF-8" in problems[0]["message"]
