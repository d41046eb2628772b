"""The detector fine-tune's training crops (`mask-train finetune-detector`, training.detector.finetune).

Square crops labelled by IoU with a face: positive (IoU >= POS_IOU: face score, box regression,
landmarks when known), part (PART_IOU..POS_IOU: box regression only), negative (< NEG_IOU: face
score only), from face_mask_853's training scenes (boxes mapped to MTCNN's style by `BoxStyle`,
hard negatives from the reference detector's own proposals) and from synthetic masks on UTKFace
(box and landmarks: the reference detector's on the bare chip). Crops are cut by core's own
functions (integral image, torch-exact area resize, crop windows) so the nets see at training
what they see at runtime; targets use the runtime's conventions (core.mtcnn.regress, run_onet).
"""
from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_open
from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.labels import Mask
from core.mtcnn import (
    MTCNN,
    area_resize,
    crop_windows,
    integral_image,
    pyramid_scales,
    run_pnet,
    run_rnet,
    to_nchw,
    to_network_image,
)
from core.tracker import iou_matrix
from training.detector.box_style import BoxStyle, fit_box_style  # noqa: F401  (re-exported)
from training.detector.crop_cache import load_part, merge, save_part
from training.detector.evaluate import match_pairs
from training.detector.incontext import FaceSample, dressed_scenes, dressed_web, pseudo_labelled_web, web_photos
from training.detector.reference import reference_detector
from training.detector.scenes import Scene, boxes_table, load_scenes
from training.detector.synth_check import bare_landmarks, synth_pad_fraction, synth_rows

log = logging.getLogger(__name__)

SIZES = {"pnet": 12, "rnet": 24, "onet": 48}
POS_IOU, PART_IOU, NEG_IOU = 0.65, 0.4, 0.3
LABEL_POS, LABEL_PART, LABEL_NEG = 1, 2, 0
KEYS = ("images", "labels", "boxes", "landmarks", "has_landmarks", "bare")
MIN_TRAIN_BOX = 16  # labelled boxes narrower than this give no positive crops (too few pixels)


@dataclass
class CropSet:
    """Training crops of one net: images (N, 3, S, S) float16 in the nets' normalisation, label
    (LABEL_POS / LABEL_PART / LABEL_NEG), box regression targets (N, 4), landmark targets (N, 10:
    x1..x5, y1..y5 as fractions of the box) with a flag saying which crops have them, and a flag
    for crops around a bare face (where the fine-tune is held to stock's scores: distillation)."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    has_landmarks: list[np.ndarray] = field(default_factory=list)
    bare: list[np.ndarray] = field(default_factory=list)
    size: int = 0  # the net's input side (for the empty arrays of a set nothing was added to)

    def add(self, images, labels, boxes, landmarks, has_landmarks, bare: bool | np.ndarray = False) -> None:
        if len(images):
            self.images.append(images.astype(np.float16))
            self.labels.append(labels.astype(np.int64))
            self.boxes.append(boxes.astype(np.float32))
            self.landmarks.append(landmarks.astype(np.float32))
            self.has_landmarks.append(has_landmarks.astype(bool))
            self.bare.append(np.broadcast_to(np.asarray(bare, bool), (len(images),)).copy())

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.images:
            return empty_arrays(self.size)
        return {k: np.concatenate(getattr(self, k)) for k in KEYS}



def empty_arrays(size: int) -> dict[str, np.ndarray]:
    return {"images": np.zeros((0, 3, size, size), np.float16), "labels": np.zeros(0, np.int64), "boxes": np.zeros((0, 4), np.float32),
            "landmarks": np.zeros((0, 10), np.float32), "has_landmarks": np.zeros(0, bool), "bare": np.zeros(0, bool)}


def square_candidates(box: np.ndarray, n: int, shift: float, scale: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """n square windows around a box: side = the box's geometric mean side × U(scale), centre
    moved by U(-shift, shift) × side."""
    w, h = box[2] - box[0], box[3] - box[1]
    side = np.sqrt(w * h) * rng.uniform(*scale, size=n)
    cx = (box[0] + box[2]) / 2 + rng.uniform(-shift, shift, size=n) * side
    cy = (box[1] + box[3]) / 2 + rng.uniform(-shift, shift, size=n) * side
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1).astype(np.float32)


def targets(net: str, cands: np.ndarray, truth: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Regression (K, 4) and landmark (K, 10) targets of candidates towards one face, in the
    runtime's conventions: P-Net regresses by the width x2-x1, R-Net and O-Net by x2-x1+1, and
    O-Net's landmark x is (x - x1 + 1) / (x2 - x1 + 1)."""
    one = 0.0 if net == "pnet" else 1.0
    w = (cands[:, 2] - cands[:, 0] + one)[:, None]
    h = (cands[:, 3] - cands[:, 1] + one)[:, None]
    reg = (truth[None, :4] - cands[:, :4]) / np.concatenate([w, h, w, h], axis=1)
    marks = np.zeros((len(cands), 10), np.float32)
    if landmarks is not None:
        wi, hi = cands[:, 2:3] - cands[:, 0:1] + 1, cands[:, 3:4] - cands[:, 1:2] + 1
        marks[:, :5] = (landmarks[None, :, 0] - cands[:, 0:1] + 1) / wi
        marks[:, 5:] = (landmarks[None, :, 1] - cands[:, 1:2] + 1) / hi
    return reg.astype(np.float32), marks


def cut(table: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, 3, size, size) exactly as core cuts candidates, and which boxes kept pixels."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    windows, valid = crop_windows(boxes, width, height)
    if not valid.any():
        return np.zeros((0, 3, size, size), np.float32), valid
    return to_nchw(area_resize(table, windows[valid], size, size)), valid


def add_face_crops(crops: dict[str, CropSet], table: np.ndarray, face: np.ndarray, landmarks: np.ndarray | None,
                   others: np.ndarray, rng: np.random.Generator, n_pos: int, n_part: int, bare: bool = False) -> None:
    """Positive and part crops around one face (MTCNN-style box) for every net; candidates that
    land in neither band are dropped (and those under NEG_IOU with every face become negatives)."""
    cands = np.concatenate([square_candidates(face, 3 * n_pos, 0.08, (0.9, 1.12), rng),
                            square_candidates(face, 3 * n_part, 0.3, (0.75, 1.3), rng)])
    iou = iou_matrix(cands, face[None])[:, 0]
    worst_other = iou_matrix(cands, others).max(axis=1) if len(others) else np.zeros(len(cands))
    pos = np.nonzero(iou >= POS_IOU)[0][:n_pos]
    part = np.nonzero((iou >= PART_IOU) & (iou < POS_IOU) & (worst_other < PART_IOU))[0][:n_part]
    near = np.nonzero((iou < NEG_IOU) & (worst_other < NEG_IOU))[0][:n_part]  # negatives next to a face
    keep = np.concatenate([pos, part, near])
    labels = np.array([LABEL_POS] * len(pos) + [LABEL_PART] * len(part) + [LABEL_NEG] * len(near), dtype=np.int64)
    for net, crop_set in crops.items():
        images, valid = cut(table, cands[keep], SIZES[net])
        reg, marks = targets(net, cands[keep][valid], face, landmarks)
        reg[labels[valid] == LABEL_NEG] = 0.0
        flags = (labels[valid] == LABEL_POS) & (landmarks is not None)
        crop_set.add(images, labels[valid], reg, marks, flags, bare)


def add_negatives(crops: CropSet, net: str, table: np.ndarray, cands: np.ndarray) -> None:
    if len(cands) == 0:
        return
    images, valid = cut(table, cands, SIZES[net])
    k = int(valid.sum())
    crops.add(images, np.full(k, LABEL_NEG), np.zeros((k, 4)), np.zeros((k, 10)), np.zeros(k, bool))


def random_windows(width: int, height: int, n: int, rng: np.random.Generator) -> np.ndarray:
    side = rng.uniform(16, max(17, min(width, height) / 2), size=n)
    x = rng.uniform(0, np.maximum(1, width - side))
    y = rng.uniform(0, np.maximum(1, height - side))
    return np.stack([x, y, x + side, y + side], axis=1).astype(np.float32)


def stock_proposals(detector: MTCNN, table: np.ndarray, threshold: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """What stock P-Net hands R-Net, and what R-Net hands O-Net (square boxes, K × 5), at lenient
    thresholds: the windows the fine-tuned nets will be shown at runtime."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    pnet, rnet, _ = detector._sessions
    scales = pyramid_scales(height, width, detector.config.min_face_size, detector.config.scale_factor)
    if not scales:
        return np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32)
    first = run_pnet(pnet, table, scales, threshold[0])
    second = run_rnet(rnet, table, first, threshold[1]) if len(first) else first
    return first, second


@dataclass
class BuildSummary:
    scenes: int = 0
    scene_faces: int = 0
    synth_faces: int = 0
    synth_skipped: int = 0
    box_style: BoxStyle = field(default_factory=BoxStyle)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    in_context: dict[str, dict[str, int]] = field(default_factory=dict)  # part -> pictures, faces, bare


def scene_crops(crops: dict[str, CropSet], scenes: list[Scene], detector: MTCNN,
                rng: np.random.Generator, summary: BuildSummary, progress: bool) -> BoxStyle:
    """Crops from face_mask_853 training scenes, after fitting the box style on them."""
    tables, proposals, found = [], [], []
    for scene in tqdm(scenes, desc="scenes: proposals", unit="img", disable=not progress):
        try:
            image = load_image(scene.path).image
        except ImageReadError as exc:
            log.warning("%s: %s (skipped)", scene.path, exc)
            continue
        table = integral_image(to_network_image(image))
        tables.append((scene, table))
        proposals.append(stock_proposals(detector, table, (0.5, 0.5)))
        found.append(np.array([d.box for d in detector.detect(image)]).reshape(-1, 4))
    style = fit_box_style([s.boxes for s, _ in tables], found)
    log.info("face_mask_853 boxes -> MTCNN style: %s", style)
    for (scene, table), (first, second) in tqdm(list(zip(tables, proposals)), desc="scenes: crops", unit="img",
                                                disable=not progress):
        height, width = table.shape[0] - 1, table.shape[1] - 1
        mapped = style.apply(scene.boxes)
        every = np.concatenate([scene.boxes, mapped])
        for i, (face, state) in enumerate(zip(mapped, scene.states)):
            if scene.boxes[i, 2] - scene.boxes[i, 0] < MIN_TRAIN_BOX:
                continue
            weight = 4 if state is Mask.INCORRECT else 1  # the rare state: more crops
            add_face_crops(crops, table, face, None, np.delete(mapped, i, axis=0), rng, 3 * weight, 2 * weight,
                           bare=state is Mask.NOT_WEAR)
            summary.scene_faces += 1
        # Stage proposals: a positive / part when over a face, a hard negative when over nothing.
        for net, cands in (("rnet", first), ("onet", second)):
            if net not in crops or len(cands) == 0:
                continue
            overlap = iou_matrix(cands[:, :4], mapped)
            best, which = overlap.max(axis=1), overlap.argmax(axis=1)
            for label, chosen in ((LABEL_POS, best >= POS_IOU), (LABEL_PART, (best >= PART_IOU) & (best < POS_IOU))):
                idx = np.nonzero(chosen)[0]
                images, valid = cut(table, cands[idx, :4], SIZES[net])
                reg = np.concatenate([targets(net, cands[j:j + 1, :4], mapped[which[j]], None)[0] for j in idx[valid]] or [np.zeros((0, 4))])
                crops[net].add(images, np.full(len(reg), label), reg, np.zeros((len(reg), 10)), np.zeros(len(reg), bool))
            far = np.nonzero(iou_matrix(cands[:, :4], every).max(axis=1) < NEG_IOU)[0] if len(every) else np.arange(len(cands))
            add_negatives(crops[net], net, table, cands[rng.permutation(far)[:40], :4])
        for net, crop_set in crops.items():
            windows = random_windows(width, height, 60, rng)
            far = iou_matrix(windows, every).max(axis=1) < NEG_IOU if len(every) else np.ones(len(windows), bool)
            add_negatives(crop_set, net, table, windows[far][: 30 if net == "pnet" else 15])
        summary.scenes += 1
    return style


def synth_faces(synth_dir: Path, utk_dir: Path, limit: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """Rows of synth's manifest whose UTKFace chip is not held out, `limit` of them at random."""
    rows = synth_rows(synth_dir, heldout=False)
    rows = [rows[i] for i in sorted(rng.permutation(len(rows))[:limit])]
    log.info("synth: %d faces from %s (chips in %s)", len(rows), synth_dir, utk_dir)
    return rows


def synth_crops(crops: dict[str, CropSet], rows: list[dict[str, str]], synth_dir: Path, utk_dir: Path, detector: MTCNN,
                rng: np.random.Generator, summary: BuildSummary, progress: bool) -> None:
    pad = synth_pad_fraction(synth_dir)
    for row in tqdm(rows, desc="synth crops", unit="face", disable=not progress):
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")], np.float32)
        marks = bare_landmarks(detector, utk_dir / row["person_id"], pad, box)
        try:
            image = load_image(synth_dir / row["path"]).image
        except ImageReadError:
            marks = None
        if marks is None:
            summary.synth_skipped += 1
            continue
        table = integral_image(to_network_image(image))
        add_face_crops(crops, table, box, marks, np.zeros((0, 4), np.float32), rng, 2, 1, bare=row["placement"] == "none")
        summary.synth_faces += 1


def sample_crops(crops: dict[str, CropSet], sample: FaceSample, rng: np.random.Generator,
                 n_pos: int = 2, n_part: int = 1, n_neg: int = 6) -> None:
    """Crops of an in-context picture: positives and parts round its faces, random negatives
    away from every face in it."""
    table = integral_image(to_network_image(sample.image))
    height, width = sample.image.shape[:2]
    every = np.concatenate([sample.boxes, sample.others])
    for i, (face, marks, bare) in enumerate(zip(sample.boxes, sample.landmarks, sample.bare)):
        others = np.concatenate([np.delete(sample.boxes, i, axis=0), sample.others])
        add_face_crops(crops, table, face, marks, others, rng, n_pos, n_part, bare=bare)
    windows = random_windows(width, height, 4 * n_neg, rng)
    far = iou_matrix(windows, every).max(axis=1) < NEG_IOU
    for net, crop_set in crops.items():
        add_negatives(crop_set, net, table, windows[far][:n_neg])


def _in_context(crops: dict[str, CropSet], samples, counter: dict[str, int], total: int, desc: str,
                rng: np.random.Generator, progress: bool) -> None:
    for sample in tqdm(samples, desc=desc, unit="img", total=total, disable=not progress):
        sample_crops(crops, sample, rng)
        counter["faces"] = counter.get("faces", 0) + len(sample.boxes)
        counter["bare"] = counter.get("bare", 0) + int(sum(sample.bare))
        counter["pictures"] = counter.get("pictures", 0) + 1


def _part(config, name: str, extra: dict, build, progress: bool) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """A crop part from the run folder's cache, or built by `build(crops, rng) -> info` and cached."""
    settings = {"data": str(Path(config.data_dir).resolve()), "seed": config.seed, "nets": list(config.nets),
                "reference": str(config.reference or "stock"), "version": CROPS_VERSION, **extra}
    cached = load_part(config.run_dir, name, settings)
    if cached is not None:
        return cached
    crops = {net: CropSet(size=SIZES[net]) for net in config.nets}
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
    info = build(crops, rng)
    arrays = {net: crop_set.arrays() for net, crop_set in crops.items()}
    save_part(config.run_dir, name, settings, arrays, info)
    log.info("crops part %s: %s; %s", name, info, {net: len(a["labels"]) for net, a in arrays.items()})
    return arrays, info


#: Bump when the crops a part builds change, so cached parts are rebuilt.
CROPS_VERSION = 2


def build_crops(config, progress: bool = True) -> tuple[dict[str, dict[str, np.ndarray]], BuildSummary]:
    """Every net's crops, built part by part (each cached in <run>/parts, so an interrupted build
    resumes), merged with stock's scores (the distillation teacher) into crops_<net>.npz."""
    from training.detector.distill import teacher_scores
    from training.detector.distill import load_nets

    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cached = {net: run_dir / f"crops_{net}.npz" for net in config.nets}
    summary_path = run_dir / "crops.json"
    settings = {"data": str(Path(config.data_dir).resolve()), "synth": str(Path(config.synth_dir).resolve()),
                "synth_faces": config.synth_faces, "scenes": config.scenes, "seed": config.seed,
                "reference": str(config.reference or "stock"), "scene_variants": config.scene_variants,
                "web_photos": config.web_photos, "version": CROPS_VERSION}
    if all(p.is_file() for p in cached.values()) and summary_path.is_file():
        info = json.loads(summary_path.read_text(encoding="utf-8"))
        if info.pop("settings", None) == settings:
            log.info("reusing the crops in %s", run_dir)
            summary = BuildSummary(**{k: v for k, v in info.items() if k != "box_style"}, box_style=BoxStyle(**info["box_style"]))
            return {net: dict(np.load(p)) for net, p in cached.items()}, summary
        log.warning("the crops in %s were built with other settings: building them again", run_dir)
    detector = reference_detector(config.reference, min_face=20)
    close_up = detector.with_config(DetectorConfig(min_face_size=40))
    summary = BuildSummary()
    scenes = load_scenes(boxes_table(config.data_dir), "train")
    if config.scenes:
        scenes = scenes[: config.scenes]
    data_dir = Path(config.data_dir)

    def scene_part(crops, rng):
        part = BuildSummary()
        style = scene_crops(crops, scenes, detector, rng, part, progress)
        return {"scenes": part.scenes, "scene_faces": part.scene_faces, "box_style": vars(style)}

    arrays, info = _part(config, "scenes", {"scenes": config.scenes}, scene_part, progress)
    parts = [arrays]
    summary.scenes, summary.scene_faces = info["scenes"], info["scene_faces"]
    summary.box_style = style = BoxStyle(**info["box_style"])

    synth_dir = Path(config.synth_dir)
    if config.synth_faces and synth_dir.is_dir():
        def synth_part(crops, rng):
            part = BuildSummary()
            rows = synth_faces(synth_dir, data_dir / "utkface" / "images", config.synth_faces, rng)
            synth_crops(crops, rows, synth_dir, data_dir / "utkface" / "images", close_up, rng, part, progress)
            return {"synth_faces": part.synth_faces, "synth_skipped": part.synth_skipped}

        arrays, info = _part(config, "synth", {"synth": str(synth_dir.resolve()), "synth_faces": config.synth_faces}, synth_part, progress)
        parts.append(arrays)
        summary.synth_faces, summary.synth_skipped = info["synth_faces"], info["synth_skipped"]
    else:
        log.warning("no synthetic faces used (synth folder %s missing or synth_faces 0)", synth_dir)

    if config.scene_variants:
        def dressed_part(crops, rng):
            counter: dict[str, int] = {}
            samples = dressed_scenes(scenes, detector, config.scene_variants, rng, [style.apply(s.boxes) for s in scenes])
            _in_context(crops, samples, counter, config.scene_variants * len(scenes), "dressed scenes", rng, progress)
            return counter

        arrays, info = _part(config, "dressed_scenes", {"scenes": config.scenes, "variants": config.scene_variants,
                                                         "box_style": vars(style)}, dressed_part, progress)
        parts.append(arrays)
        summary.in_context["dressed_scenes"] = info
    if config.web_photos >= 0:
        for name, folder, make in (("web_bare", "without_mask", dressed_web), ("web_masked", "with_mask", pseudo_labelled_web)):
            photos = web_photos(data_dir, folder)
            photos = photos[: config.web_photos] if config.web_photos else photos

            def web_part(crops, rng, photos=photos, make=make, name=name):
                counter: dict[str, int] = {"photos": len(photos)}
                _in_context(crops, make(photos, close_up, rng), counter, len(photos), name, rng, progress)
                return counter

            arrays, info = _part(config, name, {"web_photos": config.web_photos}, web_part, progress)
            parts.append(arrays)
            summary.in_context[name] = info

    merged = merge(parts, tuple(config.nets))
    teachers = load_nets(tuple(config.nets))
    for net, data in merged.items():
        data["teacher"] = teacher_scores(teachers[net], net, data["images"])
        labels = data["labels"]
        summary.counts[net] = {"pos": int((labels == LABEL_POS).sum()), "part": int((labels == LABEL_PART).sum()),
                               "neg": int((labels == LABEL_NEG).sum()), "landmarks": int(data["has_landmarks"].sum()),
                               "bare": int(data["bare"].sum())}
        with atomic_open(cached[net], "wb") as handle:
            np.savez(handle, **data)
    info = {k: v for k, v in vars(summary).items() if k != "box_style"} | {"box_style": vars(summary.box_style), "settings": settings}
    with atomic_open(summary_path, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    log.info("crops: %s", summary.counts)
    return merged, summary
