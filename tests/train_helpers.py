"""Tiny training datasets laid out from the real photos in ../shared/data (plumbing, not accuracy)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

#: UTKFace files chosen to cover both genders and the three age groups.
UTK_PEOPLE = (
    "23_0_0_20170104004006925.jpg.chip.jpg",
    "25_1_0_20170103175619551.jpg.chip.jpg",
    "35_0_1_20170108224707492.jpg.chip.jpg",
    "40_1_2_20170109003053046.jpg.chip.jpg",
    "45_0_0_20170104000913421.jpg.chip.jpg",
    "52_1_0_20170103163625630.jpg.chip.jpg",
    "65_0_0_20170103183632050.jpg.chip.jpg",
    "70_1_0_20170109150852960.jpg.chip.jpg",
)


def utk_faces(shared_data: Path, count: int) -> list[Path]:
    """`count` UTKFace photos spread over genders and ages (the names above when present)."""
    folder = shared_data / "utkface" / "images"
    chosen = [folder / name for name in UTK_PEOPLE if (folder / name).exists()]
    if len(chosen) < count:
        every = sorted(folder.iterdir())
        step = max(1, len(every) // (count * 3))
        chosen += [p for p in every[::step] if p not in chosen]
    return chosen[:count]


def layout_competition(root: Path, shared_data: Path, people: int = 8) -> Path:
    """The competition layout: train.csv + images/<path>/{mask1..5,incorrect_mask,normal}.jpg.

    Each "person" is a UTKFace face as `normal` and six mask_web with_mask photos as mask1..5 and
    incorrect_mask (other people's faces: the labels are what they are, the test checks plumbing).
    """
    masked = sorted((shared_data / "mask_web" / "with_mask").iterdir())
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, face in enumerate(utk_faces(shared_data, people)):
        age, gender = face.name.split("_")[:2]
        person_id = f"{i + 1:06d}"
        gender_name = "male" if gender == "0" else "female"
        folder = f"{person_id}_{gender_name}_Asian_{age}"
        target = root / "images" / folder
        target.mkdir(exist_ok=True)
        shutil.copy(face, target / "normal.jpg")
        for j, stem in enumerate(["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask"]):
            source = masked[(i * 6 + j) * 7 % len(masked)]
            shutil.copy(source, target / f"{stem}{source.suffix}")
        (target / "._mask1.jpg").write_bytes(b"AppleDouble junk")  # hidden: must be skipped
        rows.append({"id": person_id, "gender": gender_name, "race": "Asian", "age": age, "path": folder})
    with open(root / "train.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "gender", "race", "age", "path"])
        writer.writeheader()
        writer.writerows(rows)
    return root
