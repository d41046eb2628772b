"""Per-face cost of classifier ONNX files against a baseline classifier, same crops, same run.

Each model classifies the same real face crops (face_mask_853's labelled boxes, cropped by core's
`crop_face` at that model's own input size and margin, as the app does) through core's
`Classifier.predict`, one face per call (the live view classifies a track at a time) and in
batches of --batch faces (a crowded frame, a batch of photos). The models take turns, round after
round, so whatever else the machine does slows them all alike. Prints ms per face (median over
rounds) and the ratio to the first model (the baseline: by default the shipped classifier).

    .venv/bin/python bench/classifier_cost.py --model assets/models/classifier.onnx --model NEW.onnx \
        [--faces 64] [--rounds 7] [--batch 8] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.frames import DATA  # noqa: E402
from core.classifier import Classifier  # noqa: E402
from core.imageio import load_image  # noqa: E402
from core.ort import SessionPolicy, set_session_policy  # noqa: E402
from training.detector.scenes import boxes_table, load_scenes  # noqa: E402


def face_boxes(data: Path, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` face boxes of at least 40 px in face_mask_853, with their photos."""
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for scene in load_scenes(boxes_table(data)):
        large = [box for box in scene.boxes if min(box[2] - box[0], box[3] - box[1]) >= 40]
        if large:
            image = load_image(scene.path).image
            found += [(image, box) for box in large[: count - len(found)]]
        if len(found) == count:
            break
    return found


def crops_for(model: Classifier, faces) -> np.ndarray:
    crop = model.metadata.crop_spec
    return np.stack([crop.cut(image, box) for image, box in faces])


def ms_per_face(model: Classifier, crops: np.ndarray, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(crops), batch):
        model.predict(crops[i : i + batch])
    return (time.perf_counter() - start) * 1000.0 / len(crops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="ONNX classifier (repeatable; the first is the baseline)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default ../shared/data or $MASK_CHECKER_DATA)")
    parser.add_argument("--faces", type=int, default=64, help="face crops per round (default 64)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is reported (default 7)")
    parser.add_argument("--batch", type=int, default=8, help="faces per call in the batched runs (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    args = parser.parse_args(argv)
    paths = args.model or [Path(__file__).resolve().parents[1] / "assets" / "models" / "classifier.onnx"]

    set_session_policy(SessionPolicy(intra_op_threads=args.threads))
    models = [Classifier(p) for p in paths]
    faces = face_boxes(args.data, args.faces)
    crops = [crops_for(m, faces) for m in models]
    for m, c in zip(models, crops):  # warm-up: the first runs allocate
        ms_per_face(m, c[:8], 1)
        ms_per_face(m, c[:8], args.batch)
    times = {(i, b): [] for i in range(len(models)) for b in (1, args.batch)}
    for _ in range(args.rounds):
        for i, (m, c) in enumerate(zip(models, crops)):
            for b in (1, args.batch):
                times[(i, b)].append(ms_per_face(m, c, b))

    print(f"{len(faces)} faces x {args.rounds} rounds, {args.threads} threads; baseline = {paths[0].name} ({models[0].metadata.model_version})")
    print(f"{'model':<44} {'input':>5} {'ms/face (1 per call)':>21} {'ratio':>6} {f'ms/face ({args.batch} per call)':>21} {'ratio':>6}")
    base = {b: statistics.median(times[(0, b)]) for b in (1, args.batch)}
    for i, (path, m) in enumerate(zip(paths, models)):
        one, many = statistics.median(times[(i, 1)]), statistics.median(times[(i, args.batch)])
        label = f"{path.name} ({m.metadata.model_version})"
        print(f"{label:<44} {m.input_size:>5} {one:>21.2f} {one / base[1]:>6.2f} {many:>21.2f} {many / base[args.batch]:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
