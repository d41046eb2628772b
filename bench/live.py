"""Live video at camera rate: the tracking pipeline against full detection every frame, same run.

Writes a 640x480 clip at 30 fps from the photos in ../shared/data (bench/frames.py's
moving_faces_clip: a pan and zoom over a real scene, four faces gliding and crossing, one face
coming closer; 1-4 faces per frame) to a temporary video file, reads it back, then feeds every
frame to three pipelines in turn, so that whatever else runs on the machine slows all three alike:

  (a) reference (the baseline): facenet-pytorch MTCNN + the classifier in torch, every frame;
  (b) core's FaceAnalyzer: MTCNN on onnxruntime + the ONNX classifier, every frame;
  (c) core's LiveAnalyzer: full detection every k frames, tracked faces re-found in between,
      each track classified every n frames with smoothed labels (what the desktop app runs).

The classifier is the shipped model's trunk with random weights, the same network in all three
(speed does not depend on what it learned). Prints frames/s and p50/p95 time per frame with the
ratios against (a), and the recall of (c) against (b)'s faces (IoU >= 0.5, over the whole clip);
exits 1 when that recall is below --min-recall.

Then the idle cost, on a second clip (bench/frames.py's entering_clip: a real street scene with
its faces painted out, from a still camera with sensor noise, until a person walks in from the
left): (c) as it runs now against (c) with idle_skip=False (a full search on every frame while
nobody is in view, the pipeline before idle_skip), frame by frame in the same run. Prints the CPU
time per empty frame of each (process time: every thread onnxruntime uses) and the frames from
the person's first step in until their first confirmed box; exits 1 when the idle CPU is above
--max-idle-ratio of the baseline's or the box comes later.

    .venv/bin/python bench/live.py [--seconds 10] [--threads 2] [--detect-every 10] [--classify-every 5]
    .venv/bin/python bench/live.py --idle-only
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.frames import entering_clip, entering_full_frame, moving_faces_clip  # noqa: E402
from core.ort import SessionPolicy, set_session_policy, session_policy  # noqa: E402
from core.tracker import associate  # noqa: E402

SIZE = (640, 480)


@dataclass
class Run:
    """One pipeline's time per frame and the boxes it reported."""

    name: str
    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)


def write_clip(path: Path, frames: int, fps: float, seed: int, clip=None) -> Path:
    """The bench clip (or `clip`, an iterator of `frames` frames) as an MJPG .avi (what a camera
    or a file source hands the app)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write an MJPG video here")
    clip = clip if clip is not None else moving_faces_clip(frames, SIZE, seed)
    try:
        for frame in tqdm(clip, total=frames, desc=f"writing {path.name}", unit="frame"):
            writer.write(frame)
    finally:
        writer.release()
    return path


def read_clip(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"no frame could be read back from {path}")
    return frames


def recall(truth: list[np.ndarray], found: list[np.ndarray], min_iou: float = 0.5) -> tuple[int, int, int]:
    """(faces of `truth` matched, faces of `truth`, faces of `found` unmatched) over all frames;
    one-to-one, greedy on IoU."""
    matched = total = extra = 0
    for a, b in zip(truth, found):
        pairs = len(associate(a, b, min_iou, 0.0))
        matched, total, extra = matched + pairs, total + len(a), extra + len(b) - pairs
    return matched, total, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--fps", type=float, default=30.0, help="clip frame rate, the rate to keep up with (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="which photos the clip is made of")
    parser.add_argument("--threads", type=int, default=session_policy().intra_op_threads,
                        help="onnxruntime and torch threads, one policy for the whole process (default %(default)s)")
    parser.add_argument("--model", default="mobilenetv3_small_100", help="classifier trunk (default: the shipped model's)")
    parser.add_argument("--size", type=int, default=128, help="classifier input size (default 128)")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="(b) and (c) run this ONNX classifier (e.g. the shipped ensemble) instead of --model's "
                             "random-weight export; (a) keeps the single --model network")
    parser.add_argument("--min-face", type=int, default=40, help="detector's minimum face size in px (default 40)")
    parser.add_argument("--detect-every", type=int, default=None, help="(c): full detection every k frames")
    parser.add_argument("--classify-every", type=int, default=None, help="(c): classify each track every n frames")
    parser.add_argument("--min-recall", type=float, default=0.95, help="fail below this recall of (c) against (b)")
    parser.add_argument("--keep-video", type=Path, default=None, help="also keep the generated clip at this path")
    parser.add_argument("--empty-seconds", type=float, default=4.0, help="idle clip: seconds before the person walks in (default 4)")
    parser.add_argument("--max-idle-ratio", type=float, default=1 / 3,
                        help="fail when idle CPU per frame is above this share of the baseline's (default 1/3)")
    parser.add_argument("--idle-only", action="store_true", help="only the idle-cost comparison (no torch needed)")
    args = parser.parse_args(argv)

    # One thread policy for the process, set before any session or torch op exists. Torch's
    # OpenMP threads wait without spinning, as onnxruntime's do (core/ort.py): on a shared 2-core
    # machine spinning threads made the reference several times slower at 2 threads.
    set_session_policy(SessionPolicy(intra_op_threads=args.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    workdir = Path(tempfile.mkdtemp(prefix="bench_live_"))
    if args.idle_only:
        return idle_bench(args, workdir)
    import torch

    from bench.analyzer import ReferencePipeline, bench_classifier, describe, p95
    from core.analyzer import FaceAnalyzer
    from core.config import AnalyzerConfig, DetectorConfig, LiveConfig
    from core.live import LiveAnalyzer

    torch.set_num_threads(args.threads)
    count = max(3, round(args.seconds * args.fps))
    video = write_clip(args.keep_video or workdir / "clip.avi", count, args.fps, args.seed)
    frames = read_clip(video)

    network, metadata, model_path = bench_classifier(args.model, args.size, workdir)
    if args.onnx is not None:
        model_path = args.onnx
    detector = DetectorConfig(min_face_size=args.min_face)
    knobs = {k: v for k, v in (("detect_every", args.detect_every), ("classify_every", args.classify_every)) if v}
    live_config = LiveConfig(**knobs)
    reference = ReferencePipeline(network, metadata, detector)
    analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=model_path))
    live = LiveAnalyzer(analyzer, live_config)

    def full(frame: np.ndarray) -> np.ndarray:
        return np.array([f.box for f in analyzer.analyze(frame)], np.float32).reshape(-1, 4)

    def tracked(frame: np.ndarray) -> np.ndarray:
        return np.array([f.box for f in live.process(frame)], np.float32).reshape(-1, 4)

    runs = [Run("(a) reference: facenet-pytorch MTCNN + torch"), Run("(b) ORT MTCNN + classifier, every frame"),
            Run("(c) tracking pipeline (LiveAnalyzer)")]
    pipelines = [reference, full, tracked]
    for pipeline in pipelines:  # warm-up (first calls allocate)
        pipeline(frames[0])
    live.reset()
    for frame in tqdm(frames, desc="(a), (b), (c) per frame", unit="frame"):
        for run, pipeline in zip(runs, pipelines):
            start = time.perf_counter()
            boxes = pipeline(frame)
            run.times.append(time.perf_counter() - start)
            run.boxes.append(boxes)

    a, b, c = runs
    matched, total, extra = recall(b.boxes, c.boxes)
    counters = live.counters
    period = 1.0 / args.fps
    print(f"{len(frames)} frames {SIZE[0]}x{SIZE[1]} at {args.fps:g} fps ({len(frames) / args.fps:.1f} s) made from "
          f"../shared/data; {total} faces found by (b), 1-{max(len(x) for x in b.boxes)} per frame")
    what = (f"classifier {args.model} @ {args.size} px (random weights, same network in all three)" if args.onnx is None
            else f"classifier (a) {args.model} @ {args.size} px in torch, (b) and (c) {args.onnx}")
    print(f"{what}; min face {args.min_face} px; onnxruntime and torch {args.threads} threads; (c) {live_config}")
    for run in runs:
        print(f"{describe(run.name, run.times)}   {a.mean / run.mean:5.2f}x (a)")
    print(f"(c) did {counters.full_detections} full detections in {counters.frames} frames, re-found "
          f"{counters.refined} faces with O-Net alone, searched {counters.region_searches} regions, "
          f"kept {counters.recovered} faces a full detection missed, classified {counters.faces_classified} faces (b: {total})")
    rate = matched / total if total else 1.0
    print(f"(c) recall against (b): {rate:.3f} ({matched} of {total} faces at IoU >= 0.5); "
          f"faces (c) shows that (b) does not: {extra}")
    keeps_up = c.mean < period
    print(f"(c) keeps up with {args.fps:g} fps: {'yes' if keeps_up else 'no'} (mean {c.mean * 1000:.1f} ms per frame, "
          f"a frame every {period * 1000:.1f} ms; p95 {p95(c.times) * 1000:.1f} ms)")
    status = idle_bench(args, workdir, analyzer)
    if rate < args.min_recall:
        print(f"FAIL: recall {rate:.3f} < {args.min_recall}")
        return 1
    return status


def idle_bench(args: argparse.Namespace, workdir: Path, analyzer=None) -> int:
    """Idle CPU per frame and frames until a person walking in is boxed: now against the
    baseline (idle_skip=False), interleaved frame by frame."""
    from dataclasses import replace

    from core.analyzer import FaceAnalyzer
    from core.config import AnalyzerConfig, DetectorConfig, LiveConfig
    from core.live import LiveAnalyzer

    if analyzer is None:
        analyzer = FaceAnalyzer(AnalyzerConfig(detector=DetectorConfig(min_face_size=args.min_face)))
    enter_at = max(10, round(args.empty_seconds * args.fps))
    count = enter_at + round(2.0 * args.fps)
    video = write_clip(workdir / "entering.avi", count, args.fps, args.seed, entering_clip(count, enter_at, SIZE, args.seed))
    frames = read_clip(video)
    now = LiveConfig()
    pipelines = {"baseline (idle_skip=False)": LiveAnalyzer(analyzer, replace(now, idle_skip=False)),
                 "now": LiveAnalyzer(analyzer, now)}
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    wall: dict[str, list[float]] = {name: [] for name in pipelines}
    first: dict[str, int | None] = {name: None for name in pipelines}
    for live in pipelines.values():  # warm-up, then start afresh
        live.process(frames[0])
        live.reset()
    for i, frame in enumerate(tqdm(frames, desc="idle: baseline, now per frame", unit="frame")):
        for name, live in pipelines.items():
            start_cpu, start = time.process_time(), time.perf_counter()
            faces = live.process(frame)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
            if i >= enter_at and first[name] is None and any(f.confirmed for f in faces):
                first[name] = i - enter_at
    print(f"idle: {enter_at} frames of an empty street (faces painted out, still camera, sensor noise), then a "
          f"person walks in from the left (wholly in view {entering_full_frame(enter_at) - enter_at} frames later)")
    empty = slice(1, enter_at)
    for name in pipelines:
        print(f"  {name:28s} CPU {statistics.fmean(cpu[name][empty]) * 1000:6.2f} ms per empty frame "
              f"(wall {statistics.fmean(wall[name][empty]) * 1000:6.2f} ms); first box "
              f"{first[name] if first[name] is not None else 'never'} frames after the first step in; "
              f"{pipelines[name].counters.full_detections} full searches in {len(frames)} frames")
    base, new = (statistics.fmean(cpu[name][empty]) for name in pipelines)
    ratio = new / base if base > 0 else 0.0
    print(f"  idle CPU now / baseline: {ratio:.3f} (must be <= {args.max_idle_ratio:.3f})")
    b_first, n_first = first.values()
    if ratio > args.max_idle_ratio:
        print(f"FAIL: idle CPU ratio {ratio:.3f} > {args.max_idle_ratio:.3f}")
        return 1
    if n_first is None or (b_first is not None and n_first > b_first):
        print(f"FAIL: the person is boxed later than by the baseline ({n_first} vs {b_first} frames)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
