"""UTKFace's race field reaches the cache rows (new and old manifests), the fair sampler draws each
(gender, race) group about equally while mask-only photos keep their share, and evaluate's fairness
figures (gender accuracy, mask false alarms per race group and gender, gap) worked out by hand."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from core.labels import Gender, Mask
from training.classifier.dataset import fair_weights, target_matrix, weigh_real_incorrect
from training.classifier.fairness import fairness
from training.config import ConfigError, TrainConfig
from training.data.cache import Cache, CachedFace
from training.data.readers import read_csv_manifest, read_utkface
from training.data.records import ManifestRow
from training.data.utkface import RACE_NAMES, race_of_person, utkface_race

UTK = ("23_0_0_20170104004006925.jpg.chip.jpg", "40_1_2_20170109003053046.jpg.chip.jpg",
       "35_0_1_20170108224707492.jpg.chip.jpg", "61_1_20170109142408075.jpg.chip.jpg")


def test_race_from_utkface_names_only():
    assert [utkface_race(n) for n in UTK] == [0, 2, 1, None]  # the last has no race field
    assert race_of_person("synth:utkface/40_1_2_20170109003053046.jpg.chip.jpg") == 2
    # mask_web's names look alike but are not UTKFace's: no race from them
    assert utkface_race("1_0_2_0001.jpg") is None and utkface_race("0_0_0 copy 3.jpg") is None
    assert utkface_race("1_0_anhu_0001.jpg") is None and utkface_race("30_0_7_20170109003053046.jpg") is None


def test_the_readers_give_the_race(tmp_path, shared_data):
    folder = tmp_path / "utk"
    folder.mkdir()
    for name in UTK:
        shutil.copy(shared_data / "utkface" / "images" / name, folder / name)
    rows = {r.path.name: r.race for r in read_utkface(folder).rows}
    assert rows == dict(zip(UTK, [0, 2, 1, None]))

    # a csv manifest: a race column (names or numbers) wins; without one, a UTKFace-named person_id
    # (what `mask-train synth` writes) gives it
    (tmp_path / "list.csv").write_text(
        "path,person_id,mask,gender,age,race\n"
        f"utk/{UTK[0]},{UTK[0]},0,0,23,Indian\n"
        f"utk/{UTK[1]},{UTK[1]},2,1,40,\n"
        f"utk/{UTK[2]},p3,1,0,35,4\n"
        f"utk/{UTK[3]},{UTK[3]},0,1,61,martian\n"
    )
    result = read_csv_manifest(tmp_path / "list.csv")
    assert [r.race for r in result.rows] == [3, 2, 4]
    assert len(result.errors) == 1 and "unknown race 'martian'" in result.errors[0].message


def _face(root: Path, i: int, gender: Gender | None, race: int | None, mask: Mask | None = None, age: float | None = 30.0,
          person: str | None = None) -> CachedFace:
    row = ManifestRow(Path(f"{i}.jpg"), person or f"p{i}", mask, gender, age if gender is not None else None, None, "s", race=race)
    return CachedFace(row, root / f"crops/{i}.png")


def test_the_cache_keeps_the_race_and_old_manifests_still_read(tmp_path):
    cache = Cache(tmp_path)
    faces = [_face(tmp_path, 0, Gender.MALE, 3), _face(tmp_path, 1, Gender.FEMALE, None), _face(tmp_path, 2, None, None, Mask.WEAR)]
    cache.write_manifest([(f.row, None) for f in faces])
    with open(cache.manifest_path, newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["race"] for r in records] == ["Indian", "", ""]
    for r in records:
        r.update(status="ok", crop=f"crops/{r['path']}.png")
    # a manifest written before the race column: the race comes from UTKFace-named person ids
    old_columns = [c for c in records[0] if c != "race"]
    records[1]["person_id"] = f"synth:utkface/{UTK[1]}"
    with open(cache.manifest_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    assert [f.row.race for f in cache.read_faces()] == [None, 2, None]


def test_fair_weights_balance_gender_race_groups_and_keep_the_others_share(tmp_path):
    groups = [(Gender.MALE, 0)] * 6 + [(Gender.FEMALE, 0)] * 2 + [(Gender.MALE, 1)] * 1 + [(Gender.FEMALE, None)] * 3
    faces = [_face(tmp_path, i, g, r) for i, (g, r) in enumerate(groups)]
    faces += [_face(tmp_path, 100 + i, None, None, Mask.WEAR) for i in range(4)]
    weights = fair_weights(faces)
    assert weights.shape == (16,)
    assert np.allclose(weights[9:], 1.0)  # race unknown, and mask-only photos: as under random sampling
    assert weights[:9].sum() == pytest.approx(9.0)  # the faces with gender and race, together, too
    keys = [(int(f.row.gender), f.row.race) for f in faces[:9]]
    per_group = {k: sum(w for kk, w in zip(keys, weights[:9]) if kk == k) for k in set(keys)}
    assert len(per_group) == 3 and all(v == pytest.approx(3.0) for v in per_group.values())  # 3 groups share 9 equally
    draws = list(WeightedRandomSampler(weights.tolist(), 40000, replacement=True, generator=torch.Generator().manual_seed(0)))
    counts = np.bincount(draws, minlength=16)
    assert counts[12:].sum() / 40000 == pytest.approx(4 / 16, abs=0.01)
    assert counts[9:12].sum() / 40000 == pytest.approx(3 / 16, abs=0.01)
    for key in per_group:
        drawn = sum(counts[i] for i, k in enumerate(keys) if k == key)
        assert drawn / 40000 == pytest.approx(3 / 16, abs=0.01)


def test_a_few_faces_without_a_race_are_not_drawn_hundreds_of_times(tmp_path):
    """UTKFace has files without a race field: as a group of their own, two of them were each drawn
    ~500 times an epoch, about 6 % of every batch."""
    groups = [(Gender.MALE, r) for r in range(5) for _ in range(200)] + [(Gender.FEMALE, None)] * 2
    weights = fair_weights([_face(tmp_path, i, g, r) for i, (g, r) in enumerate(groups)])
    assert weights.max() == pytest.approx(1.0) and np.allclose(weights[-2:], 1.0)


def test_fairness_figures_by_hand(tmp_path):
    W, B = 0, 1  # White, Black
    spec = [  # (gender, race, mask truth, gender predicted, mask predicted)
        (Gender.MALE, W, Mask.NOT_WEAR, 0, Mask.NOT_WEAR),
        (Gender.MALE, W, Mask.NOT_WEAR, 1, Mask.WEAR),  # gender wrong, false alarm
        (Gender.FEMALE, W, Mask.WEAR, 1, Mask.WEAR),
        (Gender.FEMALE, B, Mask.NOT_WEAR, 0, Mask.INCORRECT),  # gender wrong, false alarm
        (Gender.MALE, B, Mask.NOT_WEAR, 0, Mask.NOT_WEAR),
        (None, None, Mask.NOT_WEAR, 0, Mask.WEAR),  # mask-only: neither race nor gender groups
    ]
    faces = [_face(tmp_path, i, g, r, m) for i, (g, r, m, _, _) in enumerate(spec)]
    labels = target_matrix(faces, 60, False)
    probs = {"gender": np.eye(2)[[s[3] for s in spec]], "mask": np.eye(3)[[int(s[4]) for s in spec]], "age": np.full((6, 3), 1 / 3)}
    result = fairness(faces, probs, labels, min_group=1)
    got = {(g.by, g.group): (g.gender_n, g.gender_acc, g.bare_n, g.false_alarm) for g in result.groups}
    assert got[("race", "White")] == (3, pytest.approx(2 / 3), 2, pytest.approx(1 / 2))
    assert got[("race", "Black")] == (2, pytest.approx(1 / 2), 2, pytest.approx(1 / 2))
    assert got[("gender", "male")] == (3, pytest.approx(2 / 3), 3, pytest.approx(1 / 3))
    assert got[("gender", "female")] == (2, pytest.approx(1 / 2), 1, pytest.approx(1.0))
    assert not any(g.group in RACE_NAMES[2:] for g in result.groups)  # groups without faces are left out
    gaps = {(g.by, g.figure): g for g in result.gaps}
    assert gaps[("race", "gender accuracy")].worst_group == "Black" and gaps[("race", "gender accuracy")].gap == pytest.approx(1 / 6)
    alarm = gaps[("gender", "false alarm rate")]
    assert (alarm.worst_group, alarm.best_group, alarm.gap) == ("female", "male", pytest.approx(2 / 3))
    # with the default minimum group size none of these tiny groups enters a gap, but all are listed
    strict = fairness(faces, probs, labels)
    assert strict.gaps == [] and len(strict.groups) == 4
    assert "| race | White | 0.6667 (3) | 0.5000 (2) |" in "\n".join(result.report_lines())


def test_real_wrongly_worn_photos_can_be_drawn_more_often(tmp_path):
    faces = [_face(tmp_path, i, Gender.MALE, 0, Mask.WEAR) for i in range(4)]
    real = [CachedFace(ManifestRow(Path(f"r{i}.jpg"), f"r{i}", mask, None, None, None, "boxes:face_mask_853"), tmp_path / f"r{i}.png")
            for i, mask in enumerate((Mask.INCORRECT, Mask.INCORRECT, Mask.WEAR))]
    synth = [CachedFace(ManifestRow(Path("s.jpg"), "s", Mask.INCORRECT, Gender.FEMALE, 30.0, None, "synth:utkface"), tmp_path / "s.png")]
    faces += real + synth
    assert weigh_real_incorrect(faces, None, 1.0) is None  # plain random sampling stays plain
    fair = fair_weights(faces)
    assert weigh_real_incorrect(faces, fair, 1.0) is fair
    weighted = weigh_real_incorrect(faces, fair, 5.0)
    assert np.allclose(weighted[4:6], 5.0 * fair[4:6])  # the two real wrongly worn photos
    assert np.allclose(weighted[6:], fair[6:]) and np.allclose(weighted[:4], fair[:4])  # a real worn mask, the synthetic one
    assert np.allclose(weigh_real_incorrect(faces, None, 3.0), [1, 1, 1, 1, 3, 3, 1, 1])
    with pytest.raises(ConfigError, match="real_incorrect_weight"):
        TrainConfig(cache=tmp_path, real_incorrect_weight=0.0)
