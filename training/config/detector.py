"""Settings of the detector jobs (`export-detector`, `eval-detector`, `finetune-detector`) and of
`synth`, which draws masks from the reference detector's landmarks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import DetectorConfig
from training.config.base import ConfigError, coerce, setting

#: Where `export-detector` writes the stock MTCNN export by default: the reference detector's
#: first home (training.detector.reference). The shipped assets/models/mtcnn is replaced only when
#: asked for by name (--out assets/models/mtcnn).
STOCK_DIR = Path("cache/detectors/stock")
#: The folder that holds face_mask_853/ and utkface/.
DATA_DIR = Path("../shared/data")
REFERENCE_HELP = "reference detector folder (default: the pinned stock MTCNN export, see training/detector/reference.py)"


@dataclass(frozen=True)
class ExportDetectorConfig:
    """facenet-pytorch's stock MTCNN to ONNX (training/detector/export.py)."""

    out: Path = setting(STOCK_DIR, "output folder (the shipped one is assets/models/mtcnn: name it to replace it)", metavar="DIR")

    def __post_init__(self) -> None:
        coerce(self)


@dataclass(frozen=True)
class EvalDetectorConfig:
    """Face detectors scored against face_mask_853's boxes (training/detector/evaluate.py)."""

    data_dir: Path = setting(DATA_DIR, "data folder holding face_mask_853/", flags=("--data-dir", "--data"), metavar="DIR")
    detectors: tuple[Path, ...] = setting((), "detector folder with pnet/rnet/onet.onnx (repeatable; default: the shipped one)",
                                          flags=("--detector",), metavar="DIR", repeat=True)
    labels: tuple[str, ...] = setting((), "name of each --detector in the report (repeatable; default: the folder)",
                                      flags=("--label",), metavar="NAME", repeat=True)
    scene_split: str = setting("heldout", "which photos", flags=("--scene-split", "--split"), choices=("heldout", "train", "all"))
    min_faces: tuple[int, ...] = setting((DetectorConfig.min_face_size,), "smallest face looked for (repeatable: each a setting)",
                                         flags=("--min-face",), metavar="PX", repeat=True)
    threshold_sets: tuple[tuple[float, float, float], ...] = setting(
        (DetectorConfig.thresholds,), "stage thresholds (repeatable: each a setting)", flags=("--thresholds",),
        metavar=("P", "R", "O"), repeat=True)
    min_face_fractions: tuple[float, ...] = setting(
        (0.0,), "the batch path's per-photo minimum face: F × the photo's short side, within --min-face-floor and "
        "--min-face (repeatable: each a setting; 0: --min-face in every photo, as live video)",
        flags=("--min-face-fraction",), metavar="F", repeat=True)
    min_face_floor: int = setting(DetectorConfig.min_face_floor, "lowest per-photo minimum face", metavar="PX")
    closeup: bool = setting(False, "also score close-ups: held-out mask_web photos letterboxed into 640x480 "
                            "(training/detector/closeup.py), found and stray boxes per mask state")
    closeup_photos: int = setting(0, "at most N close-up photos per mask state (0: all held out)", metavar="N")
    out: Path = setting(Path("detector_eval.md"), "report; the CSV is written beside it", metavar="FILE.md")
    synth_dir: Path | None = setting(None, "also score the held-out faces of this `mask-train synth` output: found per "
                                     "placement and landmark error against the reference detector on the bare chip",
                                     flags=("--synth-dir", "--synth"), metavar="DIR")
    synth_faces: int = setting(600, "at most N synthetic faces", metavar="N")
    reference: Path | None = setting(None, REFERENCE_HELP, metavar="DIR")

    def __post_init__(self) -> None:
        coerce(self)
        if self.scene_split not in ("heldout", "train", "all"):
            raise ConfigError("scene_split must be heldout, train or all")
        if self.labels and len(self.labels) != (len(self.detectors) or 1):  # none given: the shipped one
            raise ConfigError("give one label per detector folder")
        if not self.min_faces or any(m < 12 for m in self.min_faces):
            raise ConfigError("min_faces values must be at least 12 px")
        if not self.threshold_sets or any(not 0.0 <= t <= 1.0 for triple in self.threshold_sets for t in triple):
            raise ConfigError("threshold_sets must be triples of numbers in [0, 1]")
        if not self.min_face_fractions or any(not 0.0 <= f < 1.0 for f in self.min_face_fractions):
            raise ConfigError("min_face_fractions must be numbers in [0, 1) (0: a fixed minimum face)")
        if self.min_face_floor < 12 or self.closeup_photos < 0:
            raise ConfigError("min_face_floor must be at least 12 px and closeup_photos at least 0")


@dataclass(frozen=True)
class FinetuneDetectorConfig:
    """MTCNN fine-tuned on masked faces (training/detector/finetune.py)."""

    data_dir: Path = setting(DATA_DIR, "data folder holding face_mask_853/ and utkface/", flags=("--data-dir", "--data"), metavar="DIR")
    synth_dir: Path = setting(Path("cache/synth"), "`mask-train synth` output folder over UTKFace (missing: no synthetic faces)",
                              flags=("--synth-dir", "--synth"), metavar="DIR")
    run_dir: Path = setting(Path("cache/detector_finetune"), "run folder (crops, checkpoints, log)", metavar="DIR")
    out: Path | None = setting(None, "exported detector folder (default: <run-dir>/mtcnn)", metavar="DIR")
    nets: tuple[str, ...] = setting(("pnet", "rnet", "onet"), "nets to fine-tune", choices=("pnet", "rnet", "onet"))
    synth_faces: int = setting(4000, "synthetic faces used (0: none)", metavar="N")
    scenes: int = setting(0, "face_mask_853 training scenes used (0: all)", metavar="N")
    epochs: int = setting(4, "epochs per net")
    steps: int = setting(0, "at most N steps per epoch (0: full epochs)", metavar="N")
    batch_size: int = setting(256, "batch size")
    lr: float = setting(1e-4, "Adam learning rate")
    neg_ratio: float = setting(3.0, "negatives per positive in an epoch (the MTCNN paper: 3)", metavar="R")
    seed: int = setting(0, "seed")
    torch_threads: int = setting(2, "torch CPU threads", flags=("--torch-threads", "--threads"), metavar="N")
    reference: Path | None = setting(None, REFERENCE_HELP, metavar="DIR")
    scene_variants: int = setting(3, "dressed copies of each training scene with a bare face (synthetic masks drawn in "
                                  "context on its bare faces; 0: none)", metavar="N")
    web_photos: int = setting(0, "mask_web photos per folder (training part), letterboxed: without_mask dressed, with_mask "
                              "pseudo-labelled (0: all, -1: none)", metavar="N")
    mine_epochs: int = setting(2, "after the first `epochs`, mine the fine-tuned stages' false positives on the training "
                               "scenes and train this many more epochs with them (0: no mining)", metavar="N")
    mined_share: float = setting(0.25, "share of each mining-round epoch's negatives drawn from the mined ones", metavar="F")
    distill: float = setting(0.5, "weight of the loss holding scores on bare-face crops to stock's (0: off)", metavar="W")
    resume: bool = setting(False, "continue from the run folder's checkpoints")

    def __post_init__(self) -> None:
        coerce(self)
        if self.scene_variants < 0 or self.web_photos < -1 or self.mine_epochs < 0 or not 0 <= self.mined_share <= 1 or self.distill < 0:
            raise ConfigError("scene_variants, mine_epochs, distill >= 0; web_photos >= -1; mined_share in [0, 1]")
        if not self.nets or any(n not in ("pnet", "rnet", "onet") for n in self.nets):
            raise ConfigError("nets must be some of pnet, rnet, onet")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.synth_faces < 0 or self.scenes < 0 or self.steps < 0:
            raise ConfigError("epochs >= 1, batch_size >= 2, lr > 0; synth_faces, scenes and steps >= 0")


@dataclass(frozen=True)
class SynthConfig:
    """Masks rendered on unmasked faces (training/synth)."""

    source: Path = setting(Path("."), "labels.csv (path, age, gender), a folder holding one, or a folder of UTKFace-named files",
                           metavar="SOURCE", positional=True)
    out: Path | None = setting(None, "output folder", metavar="DIR")
    per_face: int = setting(1, "1: one outcome per face, balanced; 3: all three", choices=(1, 3))
    under_nose: float = setting(0.0, "share of the wrongly worn masks drawn with the top edge just under the nose tip "
                                     "(the commonest real case) instead of nose-out or chin-out", metavar="SHARE")
    limit: int | None = setting(None, "first N faces only", metavar="N")
    seed: int = setting(0, "random seed")
    worker_threads: int = setting(1, "threads", flags=("--worker-threads", "--workers"), metavar="N")
    min_face: int = setting(DetectorConfig.min_face_size, "smallest face the detector looks for", metavar="PX")
    contact_sheet: Path | None = setting(None, "also write a style x placement sample sheet", metavar="FILE.png")
    reference: Path | None = setting(None, REFERENCE_HELP, metavar="DIR")

    def __post_init__(self) -> None:
        coerce(self)
        if self.out is None and self.contact_sheet is None:
            raise ConfigError("synth: give --out DIR, --contact-sheet FILE.png, or both")
        if self.per_face not in (1, 3):
            raise ConfigError("per_face must be 1 or 3")
        if self.worker_threads < 1:
            raise ConfigError("worker_threads must be at least 1")
        if not 0.0 <= self.under_nose <= 1.0:
            raise ConfigError("under_nose must be within [0, 1]")
