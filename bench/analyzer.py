"""Frames/s of FaceAnalyzer against the reference pipeline, same frames, same run.

Reference (baseline): facenet_pytorch.MTCNN (keep_all=True) + the same classifier network run in
torch on crops made by core's crop. Ours: FaceAnalyzer (MTCNN on onnxruntime + the exported ONNX
classifier). The classifier has random weights: speed does not depend on what it learned.

    .venv/bin/python bench/analyzer.py [--frames 40] [--model mobilenetv3_large_100] [--size 128]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from facenet_pytorch import MTCNN as TorchMTCNN  # noqa: E402

from bench.frames import scene_frames  # noqa: E402
from core.analyzer import FaceAnalyzer  # noqa: E402
from core.config import AnalyzerConfig, DetectorConfig  # noqa: E402
from core.crop import to_input  # noqa: E402
from core.labels import LABEL_NAMES  # noqa: E402
from core.metadata import ModelMetadata  # noqa: E402
from core.ort import session_policy  # noqa: E402
from training.export.onnx import export_classifier  # noqa: E402
from training.classifier.model import MaskClassifier  # noqa: E402


def timed(run, frames) -> list[float]:
    run(frames[0])  # warm-up
    times = []
    for frame in frames:
        start = time.perf_counter()
        run(frame)
        times.append(time.perf_counter() - start)
    return times


def p95(times: list[float]) -> float:
    return sorted(times)[int(0.95 * (len(times) - 1))]


def describe(name: str, times: list[float]) -> str:
    p50 = statistics.median(times) * 1000
    return f"{name:<44} {len(times) / sum(times):6.1f} frames/s   p50 {p50:6.1f} ms   p95 {p95(times) * 1000:6.1f} ms"


def bench_classifier(model: str, size: int, directory: Path) -> tuple[MaskClassifier, ModelMetadata, Path]:
    """A randomly initialised classifier in torch and exported to ONNX: speed does not depend on the weights."""
    network = MaskClassifier(model).eval()
    config = network.data_config()
    metadata = ModelMetadata(
        heads=dict(LABEL_NAMES), input_size=size, mean=config["mean"], std=config["std"], crop_margin=0.2,
        model_version="bench-random", training_data="none", architecture=model,
    )
    return network, metadata, export_classifier(network, metadata, directory / "bench.onnx")


class ReferencePipeline:
    """The named baseline: facenet_pytorch.MTCNN (keep_all=True) + the classifier network in torch
    on crops made by core's crop, every face of every frame."""

    def __init__(self, network: MaskClassifier, metadata: ModelMetadata, detector: DetectorConfig) -> None:
        self.network, self.metadata = network, metadata
        self.mtcnn = TorchMTCNN(
            keep_all=True, post_process=False, min_face_size=detector.min_face_size,
            thresholds=list(detector.thresholds), factor=detector.scale_factor, device="cpu",
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The face boxes (N, 4) of a BGR frame, after classifying them."""
        boxes, _ = self.mtcnn.detect(frame[..., ::-1].copy())
        if boxes is None:
            return np.zeros((0, 4), np.float32)
        crops = self.metadata.crop_spec.cut_all(frame, boxes)
        with torch.no_grad():
            outputs = self.network(torch.from_numpy(to_input(crops, self.metadata.mean, self.metadata.std)))
            [torch.softmax(o, 1) for o in outputs.values()]
        return boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--model", default="mobilenetv3_large_100")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--min-face", type=int, default=40)
    args = parser.parse_args()

    torch.set_num_threads(session_policy().intra_op_threads)
    frames = scene_frames(args.frames)
    network, metadata, model_path = bench_classifier(args.model, args.size, Path(tempfile.mkdtemp()))
    detector = DetectorConfig(min_face_size=args.min_face)
    reference = ReferencePipeline(network, metadata, detector)

    analyzer = FaceAnalyzer(AnalyzerConfig(detector=detector, classifier_path=model_path))
    faces = sum(len(analyzer.analyze(f)) for f in frames)
    reference_times = timed(reference, frames)
    ours_times = timed(analyzer.analyze, frames)
    print(f"{len(frames)} frames 640x480 from face_mask_853, {faces} faces, min face {args.min_face} px, "
          f"classifier {args.model} @ {args.size} px, {session_policy().intra_op_threads} threads")
    print(describe("(a) reference: facenet-pytorch MTCNN + torch", reference_times))
    print(describe("(b) FaceAnalyzer: ORT MTCNN + ORT classifier", ours_times))
    print(f"speed-up (b)/(a): {sum(reference_times) / sum(ours_times):.2f}x")


if __name__ == "__main__":
    main()
