"""`mask-train eda` on a tiny competition-layout set: one self-contained HTML page with every
section, and counts that match the dataset's own train.csv."""
from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("seaborn")

from core.labels import LABEL_NAMES, age_group, encode_class  # noqa: E402
from training.cli import main  # noqa: E402
from training.config import PrepareConfig  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

SECTIONS = ("overview", "heads", "classes", "ages", "gender-age", "people", "sizes", "detection", "samples")
PHOTOS_PER_PERSON = 7  # mask1..5, incorrect_mask, normal


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eda")
    data = layout_competition(root / "competition", shared_data, people=8)
    cache = root / "cache"
    prepare(PrepareConfig(data=(f"competition={data}",), cache=cache, input_size=64), progress=False)
    return data, cache


def table(page: str, table_id: str) -> list[list[str]]:
    """The data rows of one table of the report, as text."""
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.DOTALL)
    assert match, f"no table {table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", match.group(1), re.DOTALL)
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in rows if "<td>" in row]


def expected_counts(data: Path) -> dict[str, Counter]:
    """Per head and per class, from train.csv: every person has 5 worn, 1 incorrect, 1 bare photo."""
    counts: dict[str, Counter] = {h: Counter() for h in ("mask", "gender", "age", "class")}
    with open(data / "train.csv", newline="") as handle:
        for person in csv.DictReader(handle):
            gender = LABEL_NAMES["gender"].index(person["gender"])
            age = int(age_group(float(person["age"])))
            for mask, n in ((0, 5), (1, 1), (2, 1)):
                counts["mask"][LABEL_NAMES["mask"][mask]] += n
                counts["gender"][person["gender"]] += n
                counts["age"][LABEL_NAMES["age"][age]] += n
                counts["class"][encode_class(mask, gender, age)] += n
    return counts


def test_report_has_every_section_and_the_dataset_counts(dataset, tmp_path):
    data, cache = dataset
    out = tmp_path / "eda"
    assert main(["eda", "--data", f"competition={data}", "--cache", str(cache), "--out", str(out), "--samples", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["eda.json", "report.html"]  # plots inlined, no temp files left
    page = (out / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert page.count('src="data:image/png;base64,') == 9  # heads, classes, ages, gender×age, people, sizes, detection, 2 grids

    want = expected_counts(data)
    people = len((data / "train.csv").read_text().splitlines()) - 1
    assert table(page, "t-sources") == [["competition:competition", str(people * 7), str(people)], ["all", str(people * 7), str(people)]]
    for head in ("mask", "gender", "age"):
        rows = {r[0]: int(r[1]) for r in table(page, f"t-{head}")}
        assert rows == {**{k: want[head][k] for k in LABEL_NAMES[head]}, "unknown": 0}, head
    assert [int(r[2]) for r in table(page, "t-classes")] == [want["class"][c] for c in range(18)]
    genders = {r[0]: [int(v) for v in r[1:]] for r in table(page, "t-gender-age")}
    assert sum(map(sum, genders.values())) == people * PHOTOS_PER_PERSON
    assert table(page, "t-people") == [[str(PHOTOS_PER_PERSON), str(people)]]

    # Detection outcome as the cache's manifest has it.
    with open(cache / "manifest.csv", newline="") as handle:
        statuses = Counter(r["status"] for r in csv.DictReader(handle))
    detection = table(page, "t-detection")[0]
    assert detection[:4] == ["competition:competition", str(people * 7), str(statuses["ok"]), str(statuses["no_face"])]
    assert detection[7] == f"{statuses['ok'] / (people * 7):.1%}"

    numbers = json.loads((out / "eda.json").read_text())
    assert numbers["photos"] == people * PHOTOS_PER_PERSON and numbers["people"] == people
    assert numbers["heads"]["mask"]["wear"] == 5 * people
    assert numbers["sizes"]["read"] == people * PHOTOS_PER_PERSON and numbers["sizes"]["unreadable"] == 0
    assert "the cached face crops" in page


def test_cache_alone_gives_the_same_counts_and_bad_input_a_message(dataset, tmp_path):
    data, cache = dataset
    assert main(["eda", "--cache", str(cache), "--out", str(tmp_path / "eda"), "--samples", "0", "--age-boundary", "40"]) == 0
    numbers = json.loads((tmp_path / "eda" / "eda.json").read_text())
    assert numbers["heads"]["mask"] == {**expected_counts(data)["mask"], "unknown": 0}
    with open(data / "train.csv", newline="") as handle:
        old = sum(PHOTOS_PER_PERSON for p in csv.DictReader(handle) if float(p["age"]) >= 40)
    assert numbers["heads"]["age"]["60+"] == old  # the oldest group starts at --age-boundary
    page = (tmp_path / "eda" / "report.html").read_text(encoding="utf-8")
    assert "--samples 0: none drawn" in page and "dashed lines" in page

    assert main(["eda", "--out", str(tmp_path / "none")]) == 2  # neither --data nor --cache
    assert not (tmp_path / "none").exists()
