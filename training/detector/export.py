"""Export facenet-pytorch's MTCNN networks (P-Net, R-Net, O-Net) to ONNX for core/mtcnn.py.

The runtime never imports torch: it runs these three files with onnxruntime. The weights are
the ones shipped inside the facenet_pytorch wheel (facenet_pytorch/data/*.pt), so exporting
needs no network. All three are checked against torch before any replaces what is on disk, so
a broken export never overwrites a working set.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as _dist_version
from pathlib import Path

import numpy as np
import onnx
import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

from core.atomic import atomic_open
from core.ort import create_session
from training.export.onnx import ExportError

log = logging.getLogger(__name__)

OPSET = 18
#: Largest |onnxruntime - torch| accepted on any output after export.
TOLERANCE = 1e-4
INPUT_NAME = "image"
FACENET_VERSION = _dist_version("facenet-pytorch")
SOURCE = (
    f"facenet-pytorch {FACENET_VERSION} (MIT licence, Tim Esler), pretrained MTCNN weights "
    "from facenet_pytorch/data/*.pt; original MTCNN by Zhang, Zhang, Li and Qiao (2016)"
)
NORMALISATION = "RGB, float32, (x - 127.5) / 128"


@dataclass(frozen=True)
class StageSpec:
    """How one MTCNN network is exported: its class, a sample input and its names."""

    name: str
    factory: Callable[[], torch.nn.Module]
    sample_shape: tuple[int, int, int, int]
    outputs: tuple[str, ...]
    spatial_dynamic: bool
    description: str


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "pnet", PNet, (1, 3, 57, 83), ("regression", "probability"), True,
        "P-Net: fully convolutional proposal net, any N×3×H×W (H, W >= 12); outputs per 12×12 "
        "window at stride 2: regression N×4×h×w, probability N×2×h×w (channel 1 = face)",
    ),
    StageSpec(
        "rnet", RNet, (2, 3, 24, 24), ("regression", "probability"), False,
        "R-Net: refines candidates, N×3×24×24; regression N×4, probability N×2 (column 1 = face)",
    ),
    StageSpec(
        "onet", ONet, (2, 3, 48, 48), ("regression", "landmarks", "probability"), False,
        "O-Net: final stage, N×3×48×48; regression N×4, landmarks N×10 (x1..x5 then y1..y5, "
        "relative to the box), probability N×2 (column 1 = face)",
    ),
)


def _load(stage: StageSpec) -> torch.nn.Module:
    net = stage.factory()  # pretrained=True by default: weights from inside the package
    net.eval()
    return net


def _dynamic_shapes(stage: StageSpec) -> dict[str, dict[int, torch.export.Dim]]:
    dims: dict[int, torch.export.Dim] = {0: torch.export.Dim("N", min=1)}
    if stage.spatial_dynamic:
        # P-Net's window is 12 px; anything smaller has no output cell.
        dims[2] = torch.export.Dim("H", min=12)
        dims[3] = torch.export.Dim("W", min=12)
    return {"x": dims}


def _strip_debug_info(model: onnx.ModelProto) -> None:
    """Drop per-node stack traces: they hold this machine's paths and churn the committed file."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    model.doc_string = ""


def _to_proto(stage: StageSpec, net: torch.nn.Module, source: str = SOURCE) -> onnx.ModelProto:
    sample = torch.zeros(stage.sample_shape)
    program = torch.onnx.export(
        net,
        (sample,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=list(stage.outputs),
        dynamic_shapes=_dynamic_shapes(stage),
        opset_version=OPSET,
        external_data=False,
        verbose=False,
    )
    model = program.model_proto
    _strip_debug_info(model)
    props = {
        "source": source,
        "stage": stage.name,
        "description": stage.description,
        "input": f"{INPUT_NAME}: {NORMALISATION}, NCHW",
        "outputs": ", ".join(stage.outputs),
        "licence": "MIT (facenet-pytorch)",
        "exported_by": "mask-train export-detector",
        "torch_version": torch.__version__.split("+")[0],
    }
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def _verify(stage: StageSpec, net: torch.nn.Module, model_bytes: bytes) -> float:
    """Run the exported bytes and torch on the same random input; raise if they disagree."""
    session = create_session(model_bytes)
    got_inputs = [i.name for i in session.get_inputs()]
    got_outputs = [o.name for o in session.get_outputs()]
    if got_inputs != [INPUT_NAME] or got_outputs != list(stage.outputs):
        raise ExportError(f"{stage.name}: exported names {got_inputs} -> {got_outputs} are not as specified")
    rng = np.random.default_rng(0)
    # A different shape from the export sample, so the dynamic axes are exercised too.
    n, c, h, w = stage.sample_shape
    shape = (n + 3, c, h + 13, w - 9) if stage.spatial_dynamic else (n + 5, c, h, w)
    x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    ours = session.run(None, {INPUT_NAME: x})
    with torch.no_grad():
        ref = net(torch.from_numpy(x))
    worst = 0.0
    for name, a, b in zip(stage.outputs, ours, ref, strict=True):
        b = b.numpy()
        if a.shape != b.shape:
            raise ExportError(f"{stage.name}.{name}: onnxruntime shape {a.shape} != torch {b.shape}")
        worst = max(worst, float(np.abs(a - b).max()))
    if worst >= TOLERANCE:
        raise ExportError(f"{stage.name}: onnxruntime differs from torch by {worst:.3g} (limit {TOLERANCE})")
    return worst


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader (or a crash) never sees half a model."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def origin_text() -> str:
    """ORIGIN.md: where the weights come from and how the files are used and rebuilt."""
    def row(stage: StageSpec) -> str:
        size = "H×W (H, W ≥ 12)" if stage.spatial_dynamic else f"{stage.sample_shape[2]}×{stage.sample_shape[3]}"
        outputs = ", ".join(f"`{o}`" for o in stage.outputs)
        return f"| `{stage.name}.onnx` | `{INPUT_NAME}` N×3×{size} | {outputs} |"

    rows = "\n".join(row(stage) for stage in STAGES)
    return f"""# MTCNN face detector (ONNX)

## Where the weights come from
The pretrained P-Net, R-Net and O-Net weights shipped inside the **facenet-pytorch {FACENET_VERSION}**
package (`facenet_pytorch/data/pnet.pt`, `rnet.pt`, `onet.pt`), by Tim Esler, **MIT licence**
(https://github.com/timesler/facenet-pytorch). They are a port of the original MTCNN:
K. Zhang, Z. Zhang, Z. Li, Y. Qiao, "Joint Face Detection and Alignment Using Multitask Cascaded
Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016.
Nothing here was trained by this project.

## How to regenerate
```
pip install -e '.[train]'
mask-train export-detector                          # writes cache/detectors/stock/ (the pinned reference)
mask-train export-detector --out assets/models/mtcnn  # replaces the shipped files
```
(`training/detector/export.py`: torch.onnx dynamo exporter, opset {OPSET}; every file is checked
against torch on a random input, max |difference| < {TOLERANCE:g}, before it replaces the old one.)

## Inputs and outputs
Input normalisation for all three: **RGB** channel order, float32, `(x - 127.5) / 128`, NCHW.
The batch N is dynamic in all three; P-Net's H and W are dynamic too.

| file | input | outputs |
|---|---|---|
{rows}

- `regression`: box offsets (x1, y1, x2, y2) as fractions of the box width/height.
- `probability`: softmax over (not face, face); column/channel 1 is the face score.
- `landmarks` (O-Net): x of left eye, right eye, nose, mouth left, mouth right, then the five y,
  as fractions of the box.
- Each file's `metadata_props` carries `source` and `stage`.

The pipeline around them (pyramid, NMS, box regression) is `core/mtcnn.py`, a numpy port of
facenet-pytorch's `detect_face.py`.
"""


def export_detector(out_dir: Path, nets: dict[str, torch.nn.Module] | None = None, source: str = SOURCE,
                    origin: str | None = None) -> list[Path]:
    """Export pnet.onnx, rnet.onnx, onet.onnx and ORIGIN.md into `out_dir`; return the model paths.

    `nets`: stages to export instead of facenet-pytorch's pretrained ones (a fine-tune), with
    `source` for their metadata and `origin` for ORIGIN.md. All three are exported and checked
    before any is written, so a failure leaves the old set whole (raises ExportError).
    """
    out_dir = Path(out_dir)
    nets = nets or {}
    exported: list[tuple[Path, bytes]] = []
    for stage in STAGES:
        net = nets[stage.name].eval() if stage.name in nets else _load(stage)
        model_bytes = _to_proto(stage, net, source).SerializeToString()
        worst = _verify(stage, net, model_bytes)
        log.info("%s: exported and checked, max |onnxruntime - torch| = %.2g", stage.name, worst)
        exported.append((out_dir / f"{stage.name}.onnx", model_bytes))
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, model_bytes in exported:
        _write(path, model_bytes)
        log.info("wrote %s (%d bytes)", path, len(model_bytes))
    _write(out_dir / "ORIGIN.md", (origin if origin is not None else origin_text()).encode("utf-8"))
    return [path for path, _ in exported]
