"""Hard negatives mined by the fine-tuned stages themselves.

After a first round of fine-tuning, its own cascade runs on the training scenes; every box a
stage passes that overlaps no labelled face (raw or in MTCNN's style) is a negative for that
stage's net and the next one: the mistakes this detector makes, not stock's. A box stock itself
calls a face with score >= UNLABELLED_SCORE is left out: face_mask_853 leaves some background
faces unlabelled, and teaching that they are not faces would cost recall.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.config import DetectorConfig
from core.imageio import ImageReadError, load_image
from core.mtcnn import MTCNN, integral_image, to_network_image
from core.tracker import iou_matrix
from training.detector.crops import NEG_IOU, SIZES, BoxStyle, CropSet, add_negatives
from training.detector.scenes import Scene
from training.detector.stages import STAGES, stage_outputs

log = logging.getLogger(__name__)

UNLABELLED_SCORE = 0.95
#: Which nets learn from a stage's mistakes: the next one's, and R-Net and O-Net their own. Not
#: P-Net: its job is recall (R-Net and O-Net clean up after it); taught its own false positives in
#: a first run, it dropped 3 more masked and 2 bare held-out faces.
LEARNERS = {"pnet": ("rnet",), "rnet": ("rnet", "onet"), "onet": ("onet",)}


def false_boxes(boxes: np.ndarray, labelled: np.ndarray, stock_faces: np.ndarray) -> np.ndarray:
    """Boxes overlapping no labelled face (IoU < NEG_IOU) and no face stock is sure of (IoU < 0.5)."""
    keep = np.ones(len(boxes), bool)
    if len(boxes) and len(labelled):
        keep &= iou_matrix(boxes, labelled).max(axis=1) < NEG_IOU
    if len(boxes) and len(stock_faces):
        keep &= iou_matrix(boxes, stock_faces).max(axis=1) < 0.5
    return boxes[keep]


def mine_negatives(detector_dir: Path, scenes: Sequence[Scene], style: BoxStyle, reference: MTCNN, nets: Sequence[str],
                   rng: np.random.Generator, per_scene: int = 30, progress: bool = True) -> tuple[dict[str, CropSet], dict[str, int]]:
    """Negatives (per net) from the false positives of the detector in detector_dir on `scenes`."""
    detector = MTCNN(detector_dir, DetectorConfig(min_face_size=20))
    stock = reference.with_config(DetectorConfig(min_face_size=20))
    crops = {net: CropSet(size=SIZES[net]) for net in nets}
    found = {stage: 0 for stage in STAGES}
    for scene in tqdm(scenes, desc="mining", unit="img", disable=not progress):
        try:
            image = load_image(scene.path).image
        except ImageReadError:
            continue
        labelled = np.concatenate([scene.boxes, style.apply(scene.boxes)])
        stock_faces = np.array([d.box for d in stock.detect(image) if d.score >= UNLABELLED_SCORE], np.float32).reshape(-1, 4)
        table = integral_image(to_network_image(image))
        for stage, boxes in zip(STAGES, stage_outputs(detector, image)):
            wrong = false_boxes(boxes, labelled, stock_faces)
            wrong = wrong[rng.permutation(len(wrong))[:per_scene]]
            found[stage] += len(wrong)
            for net in LEARNERS[stage]:
                if net in crops:
                    add_negatives(crops[net], net, table, wrong)
    log.info("mined false positives per stage: %s", found)
    return crops, found
