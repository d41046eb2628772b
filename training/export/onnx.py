"""Export a trained classifier to the self-describing ONNX file that core loads."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from core.atomic import atomic_path
from core.classifier import Classifier
from core.crop import to_input
from core.metadata import ModelMetadata
from core.ort import create_session
from training.export.half import store_half

log = logging.getLogger(__name__)

#: The largest difference in any probability between onnxruntime and torch that export accepts.
PARITY_TOLERANCE = 1e-4
#: The same with float16 weights (training.export.half): their rounding moves probabilities by up to ~7e-4.
HALF_PARITY_TOLERANCE = 2e-3


class ExportError(RuntimeError):
    """The exported graph does not behave like the torch model; nothing was written."""


class _Probabilities(nn.Module):
    """Softmax on each head, outputs in metadata order: the ONNX file gives probabilities."""

    def __init__(self, model: nn.Module, heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.head_names = heads

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(image)
        return tuple(torch.softmax(logits[name], dim=1) for name in self.head_names)


def onnx_difference(path: str | Path, heads: list[str], batch: np.ndarray, expected: list[np.ndarray]) -> float:
    """The largest difference in any output between onnxruntime running `path` on `batch` and `expected`."""
    got = create_session(path).run(heads, {"image": batch})
    return max(float(np.abs(g - want).max()) for g, want in zip(got, expected))


def export_classifier(
    model: nn.Module,
    metadata: ModelMetadata,
    path: str | Path,
    check_crops_bgr: np.ndarray | None = None,
    probabilities: bool = False,
    half_weights: bool = False,
) -> Path:
    """Write `model` to `path` with `metadata`, after checking onnxruntime agrees with torch.

    `model` returns a dict of logits per head; with `probabilities` it already returns the
    probability tuple in metadata head order (an ensemble that averages them, training.export.ensemble).
    `check_crops_bgr` are real face crops (N×S×S×3 BGR uint8, made by core.crop.crop_face) to
    compare on; random crops are used when none are given. `half_weights` stores the large weights
    as float16 (half the file; arithmetic stays float32). An existing file at `path` is only
    replaced once the new one has passed, so a failed export never breaks a working model.
    """
    if Path(path).is_dir():
        raise ExportError(f"{path} is a folder: give the .onnx file to write")
    size = metadata.input_size
    if check_crops_bgr is None:
        check_crops_bgr = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    batch = torch.from_numpy(to_input(check_crops_bgr, metadata.mean, metadata.std))
    heads = list(metadata.heads)
    wrapper = (model if probabilities else _Probabilities(model, heads)).eval()

    with atomic_path(path) as tmp, torch.no_grad():
        expected = [t.numpy() for t in wrapper(batch)]
        torch.onnx.export(
            wrapper,
            (batch[:1],),
            str(tmp),
            input_names=["image"],
            output_names=heads,
            dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=1024)}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in metadata.to_props().items():
            proto.metadata_props.add(key=key, value=value)
        if half_weights:
            converted = store_half(proto)
            proto.metadata_props.add(key="weight_storage", value=f"float16 ({converted} tensors)")
        onnx.save(proto, str(tmp))

        Classifier(tmp)  # validates the metadata and graph exactly as the app will
        worst = onnx_difference(tmp, heads, batch.numpy(), expected)
        tolerance = HALF_PARITY_TOLERANCE if half_weights else PARITY_TOLERANCE
        if worst > tolerance:
            raise ExportError(f"onnxruntime differs from torch by {worst:.2e} (> {tolerance:.0e}); not written")
    log.info("exported %s (max |ORT - torch| = %.2e on %d crops)", path, worst, len(check_crops_bgr))
    return path
