"""What a classifier ONNX file says about itself (its `metadata_props`).

The model carries its own preprocessing and label names, like timm's pretrained_cfg, so the
runtime never guesses them and cannot drift from training. Training writes this with
`ModelMetadata.to_props()`; the runtime reads it with `ModelMetadata.from_props()`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from core.crop import CropSpec, inner_offset
from core.labels import LABEL_NAMES, NUM_CLASSES, class_names

FORMAT_VERSION = "1"

#: Keys every classifier must carry; a file missing any of them is refused.
REQUIRED_KEYS = (
    "mask_checker_format",
    "heads",
    "input_size",
    "mean",
    "std",
    "crop_margin",
    "model_version",
    "training_data",
)

#: Largest input side accepted: 1024 px is already 12 MB per face as float32; a larger value is
#: a broken file (30000 px would ask for 10 GB per face).
MAX_INPUT_SIZE = 1024

#: The single 18-way head, as an alternative to the three separate heads.
CLASS_HEAD = "class"


class ModelMetadataError(ValueError):
    """The classifier file does not describe itself as core needs."""


@dataclass(frozen=True)
class ModelMetadata:
    """heads: output name → label names, in output order. Either the three heads mask, gender
    and age, or one head "class" with the 18 competition classes. Outputs are probabilities."""

    heads: dict[str, tuple[str, ...]]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_margin: float
    model_version: str
    training_data: str
    architecture: str = ""
    age_boundary: int = 60
    extra: dict[str, str] = field(default_factory=dict)
    #: (size, margin) of a narrower crop pasted, cut on its own, over the centre of the input crop
    #: (core.crop.crop_face `inner`): a file whose older networks were trained on it sees it exactly.
    inner_crop: tuple[int, float] | None = None

    def __post_init__(self) -> None:
        # The runtime maps output columns to core's enums by position, so the names must be
        # core's, in core's order: a model with another order would be read wrongly, silently.
        if set(self.heads) == set(LABEL_NAMES):
            for name, labels in LABEL_NAMES.items():
                if tuple(self.heads[name]) != labels:
                    raise ModelMetadataError(f"head '{name}' lists labels {list(self.heads[name])}, expected {list(labels)}")
        elif set(self.heads) == {CLASS_HEAD}:
            if tuple(self.heads[CLASS_HEAD]) != class_names():
                raise ModelMetadataError(f"head 'class' must list the {NUM_CLASSES} classes in core.labels.class_names() order")
        else:
            raise ModelMetadataError(
                f"heads must be mask, gender and age, or a single '{CLASS_HEAD}'; got {sorted(self.heads)}"
            )
        if not 16 <= self.input_size <= MAX_INPUT_SIZE:
            raise ModelMetadataError(f"input_size {self.input_size} must be within 16..{MAX_INPUT_SIZE} px")
        numbers = (*self.mean, *self.std)
        if len(self.mean) != 3 or len(self.std) != 3 or not all(map(math.isfinite, numbers)) or min(self.std) <= 0:
            raise ModelMetadataError(f"mean and std must be three finite numbers each, std > 0 (got {self.mean}, {self.std})")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ModelMetadataError(f"crop_margin {self.crop_margin} must be within 0..1")
        if self.inner_crop is not None:
            try:
                inner_offset(self.input_size, self.crop_margin, *self.inner_crop)
            except ValueError as exc:
                raise ModelMetadataError(f"inner_crop: {exc}") from exc

    @property
    def crop_spec(self) -> CropSpec:
        """How this file takes its faces (core.crop.crop_face's size, margin and nested crop)."""
        return CropSpec(self.input_size, self.crop_margin, self.inner_crop)

    def to_props(self) -> dict[str, str]:
        props = dict(self.extra)
        props.update(
            mask_checker_format=FORMAT_VERSION,
            heads=json.dumps({k: list(v) for k, v in self.heads.items()}),
            input_size=str(self.input_size),
            mean=json.dumps(list(self.mean)),
            std=json.dumps(list(self.std)),
            crop_margin=repr(self.crop_margin),
            model_version=self.model_version,
            training_data=self.training_data,
            architecture=self.architecture,
            age_boundary=str(self.age_boundary),
        )
        if self.inner_crop is not None:
            props["inner_crop"] = json.dumps({"input_size": self.inner_crop[0], "crop_margin": self.inner_crop[1]})
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        missing = [key for key in REQUIRED_KEYS if not props.get(key)]
        if missing:
            raise ModelMetadataError(
                "this ONNX file is not a Mask Checker classifier: its metadata lacks " + ", ".join(missing)
            )
        if props["mask_checker_format"] != FORMAT_VERSION:
            raise ModelMetadataError(
                f"classifier metadata format {props['mask_checker_format']!r} is not supported "
                f"(this version reads {FORMAT_VERSION!r})"
            )
        try:
            heads = {str(k): tuple(str(x) for x in v) for k, v in json.loads(props["heads"]).items()}
            mean = tuple(float(x) for x in json.loads(props["mean"]))
            std = tuple(float(x) for x in json.loads(props["std"]))
            input_size = int(props["input_size"])
            crop_margin = float(props["crop_margin"])
            age_boundary = int(props.get("age_boundary") or 60)
            inner = json.loads(props["inner_crop"]) if props.get("inner_crop") else None
            inner_crop = None if inner is None else (int(inner["input_size"]), float(inner["crop_margin"]))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ModelMetadataError(f"classifier metadata is malformed: {exc}") from exc
        known = set(REQUIRED_KEYS) | {"architecture", "age_boundary", "inner_crop"}
        return cls(
            heads=heads,
            input_size=input_size,
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
            crop_margin=crop_margin,
            model_version=props["model_version"],
            training_data=props["training_data"],
            architecture=props.get("architecture", ""),
            age_boundary=age_boundary,
            extra={k: v for k, v in props.items() if k not in known},
            inner_crop=inner_crop,
        )
