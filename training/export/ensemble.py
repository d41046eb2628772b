"""k-fold ensembles (and flip TTA) as ONE ONNX classifier that the app loads like any other.

`Ensemble` runs every member on the crop (and, with TTA, on its mirror image), takes each head's
softmax and averages them; the graph's outputs are the same per-head probabilities, under the same
names and metadata contract, as a single model's, so core.classifier.Classifier reads it unchanged.
The metadata also lists the members (run, fold, epoch, validation score) and the TTA.

Members must agree on what the file can describe only once: heads and age boundary. Their trunks
may differ, and so may their mean/std: the graph takes the input normalised with the first member's,
and re-normalises for the others. Their input sizes may
differ too (caches cut at 112 and 160 px): the file takes the largest, and shrinks it in the graph
(antialiased bilinear, close to the INTER_AREA resize core.crop cuts crops with) for each smaller
member, so a network trained on sharper crops can join networks trained on smaller ones. So may their
crop margins (a cache cut with more of the head around the face, `prepare --crop-margin`): the file
takes the widest crop, at a size that keeps every member's pixel scale, and each member with a
narrower margin sees the centre of it, the square its own crop would cover (`member_view`). Where
that square is the member's own crop at its own size, the file's metadata names it (`inner_crop`)
and core cuts it on its own and pastes it over the centre (a nested crop), so those members see
exactly what they were trained on, not the same square cut with the wider crop's rounding.

A member may feed only some heads (`--member-heads RUN=mask`): a network that finds wrongly worn
masks can stay in the mask head's average while a better gender network answers gender in its
place. Its other heads are still computed (weighted 0), so `recover` finds every layer again.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from core.crop import centre_square
from core.metadata import ModelMetadata
from training.classifier import prior
from training.classifier.evaluate import load_best, model_from_state, runtime_crops
from training.classifier.folds import split_faces
from training.config import ConfigError, ExportConfig, TrainConfig
from training.data.cache import Cache
from training.export.metadata import head_labels, training_data_summary
from training.export.onnx import export_classifier

log = logging.getLogger(__name__)


class _Renormalised(nn.Module):
    """A member fed the ensemble's input: x·scale + shift turns the first member's normalisation
    into this member's ((x·s₀ + m₀ − m)/s)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], to_mean: Sequence[float], to_std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        shape = (1, 3, 1, 1)
        m0, s0 = torch.tensor(mean).view(shape), torch.tensor(std).view(shape)
        m, s = torch.tensor(to_mean).view(shape), torch.tensor(to_std).view(shape)
        self.register_buffer("scale", s0 / s)
        self.register_buffer("shift", (m0 - m) / s)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(image * self.scale + self.shift)


@dataclass(frozen=True)
class View:
    """What a member sees of the file's crop: the centre square from `offset`, `side` px wide, resized
    to its own input `size` (antialiased bilinear) where `side` is not already that size."""

    offset: int
    side: int
    size: int


def member_view(file_size: int, file_margin: float, size: int, margin: float) -> View | None:
    """The part of the file's crop (`file_size` px at `file_margin`) that a member trained on crops of
    `size` px at `margin` was trained to see; None when that is the whole crop at its size. core.crop
    grows the box by 1 + 2·margin, so the member's square is that share of the file's side; a square
    that does not fall on whole pixels, centred, is refused (prepare the wider cache at a size that
    keeps the pixel scale: 112 px at 0.2 sits in 140 px at 0.375 as its centre 112)."""
    try:
        offset, side = centre_square(file_size, file_margin, margin)
    except ValueError as exc:
        raise ConfigError(f"a member cut at {size} px: {exc}; prepare the wider cache at a size that keeps the pixel scale") from exc
    if side == file_size and size == file_size:
        return None
    return View(offset, side, size)


class _Viewed(nn.Module):
    """A member fed a larger or wider crop than it was trained on: the part it was trained to see (View)."""

    def __init__(self, model: nn.Module, view: View) -> None:
        super().__init__()
        self.model = model
        self.view = view

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        v = self.view
        if v.side != image.shape[-1]:
            image = image[:, :, v.offset : v.offset + v.side, v.offset : v.offset + v.side]
        if v.side != v.size:
            image = functional.interpolate(image, size=(v.size, v.size), mode="bilinear", align_corners=False, antialias=True)
        return self.model(image)


class Ensemble(nn.Module):
    """Mean of the members' softmax probabilities per head; with `flip`, over the crop and its
    horizontal mirror too. forward returns the probabilities in `heads` order (export's contract).
    `age_bias` (training.classifier.prior) is added to the mean age probabilities' logarithm.
    `views` gives, per member, the part of the crop it sees (member_view; None: the crop as it is)."""

    def __init__(self, members: Sequence[nn.Module], heads: Sequence[str], flip: bool = False,
                 normalisation: Sequence[tuple[Sequence[float], Sequence[float]]] | None = None,
                 age_bias: Sequence[float] | None = None,
                 member_heads: Sequence[Sequence[str] | None] | None = None,
                 views: Sequence[View | None] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        fed = list(member_heads) if member_heads is not None else [None] * len(members)
        feeds = [[name in (only if only is not None else heads) for name in heads] for only in fed]
        starved = [name for j, name in enumerate(heads) if not any(row[j] for row in feeds)]
        if starved:
            raise ConfigError(f"no ensemble member feeds the {', '.join(starved)} head(s)")
        #: per head, how many members feed it; per member, whether it leaves a head out (then its 0/1 weights apply)
        self.head_counts = [sum(row[j] for row in feeds) for j in range(len(heads))]
        self.restricted = [not all(row) for row in feeds]
        self.register_buffer("head_weights", torch.tensor(feeds, dtype=torch.float32) if any(self.restricted) else None)
        wrapped = []
        for i, member in enumerate(members):
            if normalisation is not None and tuple(normalisation[i]) != tuple(normalisation[0]):
                (mean, std), (to_mean, to_std) = normalisation[0], normalisation[i]
                member = _Renormalised(member, mean, std, to_mean, to_std)
            if views is not None and views[i] is not None:
                member = _Viewed(member, views[i])  # type: ignore[arg-type]
            wrapped.append(member)
        self.members = nn.ModuleList(wrapped)
        self.head_names = list(heads)
        self.flip = flip
        if age_bias is not None and "age" not in self.head_names:
            raise ConfigError("--age-prior needs an age head; these runs have a single 18-way head")
        self.register_buffer("age_bias", None if age_bias is None else torch.tensor(age_bias, dtype=torch.float32).view(1, -1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The mirrored crops ride in the same batch: one call per member.
        batch = torch.cat([image, torch.flip(image, dims=(3,))]) if self.flip else image
        sums: list[torch.Tensor] = []
        for i, member in enumerate(self.members):
            logits = member(batch)
            probs = [torch.softmax(logits[name], dim=1) for name in self.head_names]
            if self.flip:  # (2N, C) -> the crop's row plus its mirror's
                probs = [p.reshape(2, -1, p.shape[1]).sum(dim=0) for p in probs]
            if self.restricted[i]:  # weighted 0 where it does not feed: its layers stay in the graph
                probs = [p * self.head_weights[i, j] for j, p in enumerate(probs)]
            sums = [a + b for a, b in zip(sums, probs)] if sums else probs
        views = 2 if self.flip else 1
        means = [total / (count * views) for total, count in zip(sums, self.head_counts)]
        if self.age_bias is not None:
            age = self.head_names.index("age")
            means[age] = torch.softmax(torch.log(means[age].clamp_min(1e-12)) + self.age_bias, dim=1)
        return tuple(means)


@dataclass(frozen=True)
class Member:
    """One trained run in the ensemble."""

    run_dir: Path
    config: TrainConfig
    state: dict
    model: nn.Module
    heads: tuple[str, ...] | None = None  # the heads it feeds (--member-heads); None: every head
    input_size: int | None = None  # its cache's crop size and margin when the file's crop is larger or wider
    crop_margin: float | None = None  # (None: the file's); the graph cuts and shrinks what it sees (view)
    view: View | None = None

    def describe(self) -> dict:
        return {
            "run": self.run_dir.name, "fold": self.config.fold, "epoch": int(self.state["epoch"]),
            "architecture": self.config.model, "validation_score": round(float(self.state["score"]), 4),
            **({"trunk_input": self.config.trunk_input} if self.config.trunk_input is not None else {}),
            **({"heads": list(self.heads)} if self.heads is not None else {}),
            **({"input_size": self.input_size} if self.input_size is not None else {}),
            **({"crop_margin": self.crop_margin} if self.crop_margin is not None else {}),
        }


def member_dirs(entries: Sequence[str | Path]) -> list[Path]:
    """Run folders from folders and glob patterns (e.g. "cache/runs/effnet_fold*"), in order,
    each once; a pattern that matches no run, or a folder without a best checkpoint, is an error."""
    found: list[Path] = []
    for entry in entries:
        text = str(entry)
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text) if (Path(p) / "checkpoints" / "best.pt").is_file())
            if not matches:
                raise ConfigError(f"--ensemble {text!r} matches no run folder with checkpoints/best.pt")
        else:
            matches = [Path(text)]
        found.extend(m for m in matches if m.resolve() not in {f.resolve() for f in found})
    return found


def load_members(run_dirs: Sequence[Path]) -> list[Member]:
    members = []
    for run_dir in run_dirs:
        config, state = load_best(run_dir)
        members.append(Member(Path(run_dir), config, state, model_from_state(config, state)))
    return members


def restrict_heads(members: list[Member], entries: Sequence[str]) -> list[Member]:
    """The members with the heads `entries` ("RUN_DIR=HEAD[,HEAD]", --member-heads) let them feed;
    an entry that names no member or an unknown head is an error."""
    if not entries:
        return members
    heads = shared(members, "heads", lambda m: tuple(m.model.head_names))
    chosen: dict[Path, tuple[str, ...]] = {}
    for entry in entries:
        run, sep, names = entry.rpartition("=")
        wanted = tuple(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
        if not sep or not run or not wanted:
            raise ConfigError(f"--member-heads takes RUN_DIR=HEAD[,HEAD...], got {entry!r}")
        unknown = [n for n in wanted if n not in heads]  # type: ignore[operator]
        if unknown:
            raise ConfigError(f"--member-heads {entry!r}: no head {', '.join(unknown)} (the members have {', '.join(heads)})")  # type: ignore[arg-type]
        target = Path(run).resolve()
        if not any(m.run_dir.resolve() == target for m in members):
            raise ConfigError(f"--member-heads {entry!r}: {run} is not one of the --ensemble members")
        chosen[target] = wanted
    return [dataclasses.replace(m, heads=chosen.get(m.run_dir.resolve(), m.heads)) for m in members]


def shared(members: list[Member], what: str, value_of, role: str = "ensemble members") -> object:
    """The one value of `value_of` that all members have; an error naming each member's when they differ."""
    values = {m.run_dir: value_of(m) for m in members}
    if len(set(values.values())) > 1:
        listed = ", ".join(f"{d.name}: {v}" for d, v in values.items())
        raise ConfigError(f"{role} must share their {what}; they differ ({listed})")
    return next(iter(values.values()))


def build_ensemble(members: list[Member], flip: bool, age_bias: Sequence[float] | None = None) -> Ensemble:
    heads = shared(members, "heads", lambda m: tuple(m.model.head_names))
    normalisation = [(tuple(d["mean"]), tuple(d["std"])) for d in (m.model.data_config() for m in members)]
    return Ensemble([m.model for m in members], heads, flip, normalisation, age_bias,  # type: ignore[arg-type]
                    [m.heads for m in members], [m.view for m in members]).eval()


def file_geometry(geometries: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """The crop a file of members cut at these (size, margin) takes: the widest margin, at the size
    that keeps the finest member's pixel scale (a member cut at 112 px and 0.2 with one at 140 px
    and 0.375: 140 px at 0.375; at 112 and 160 px, both 0.2: 160 px)."""
    margin = max(m for _, m in geometries)
    exact = max(size * (1.0 + 2.0 * margin) / (1.0 + 2.0 * m) for size, m in geometries)
    return int(round(exact)) if abs(exact - round(exact)) < 1e-6 else int(np.ceil(exact)), margin


def with_views(members: list[Member], geometries: dict[Path, tuple[int, float]]) -> tuple[list[Member], int, float]:
    """The members marked with the part of the file's crop each sees where that is not the whole crop
    (member_view), and the file's crop size and margin (file_geometry)."""
    size, margin = file_geometry(list(geometries.values()))
    if len(set(geometries.values())) > 1:
        log.info("members trained on crops of %s: the file takes %d px crops at margin %g, cut and shrunk in the graph "
                 "for the others", ", ".join(f"{s} px at {m:g}" for s, m in sorted(set(geometries.values()))), size, margin)
    marked = []
    for m in members:
        own_size, own_margin = geometries[m.run_dir]
        view = member_view(size, margin, own_size, own_margin)
        marked.append(dataclasses.replace(m, view=view, input_size=own_size if view is not None else None,
                                          crop_margin=own_margin if own_margin != margin else None))
    return marked, size, margin


def nested_crop(members: list[Member]) -> tuple[int, float] | None:
    """The crop core nests in the file's crop (core.crop.crop_face inner): that of the members who see
    a centre slice of it at their own size, cut on its own so that they see it to the bit; None when
    no member does, or when members of two such crops do (then all of them see slices)."""
    sliced = {(m.input_size, m.crop_margin) for m in members
              if m.view is not None and m.view.offset > 0 and m.view.side == m.view.size and m.crop_margin is not None}
    if len(sliced) > 1:
        log.warning("members trained on %s crops: only one can be nested in the file's crop, so each sees a slice of it",
                    " and ".join(f"{s} px at {mg:g}" for s, mg in sorted(sliced)))  # type: ignore[misc]
    return next(iter(sliced)) if len(sliced) == 1 else None  # type: ignore[return-value]


def spread_crops(faces: Sequence, count: int) -> np.ndarray:
    """The runtime crops of `count` faces spread evenly over `faces` (every source, not just the first)."""
    return runtime_crops(faces[:: max(1, len(faces) // count)][:count])


def _member_cache(member: Member, fallback: Path | None) -> Cache:
    """The cache a member was trained on, which says the crop size it takes; `fallback` (export --cache,
    or a recipe's top-level cache) only where that folder is not there (a run copied from elsewhere).
    The fallback first would feed a run trained on 160 px crops the 112 px crops of another cache."""
    own = Cache(member.config.cache)
    return own if own.info_path.is_file() or fallback is None else Cache(fallback)


def _geometry(cache: Cache) -> tuple[int, float]:
    geometry = cache.read_info().geometry
    return geometry.input_size, geometry.crop_margin


def export_ensemble(config: ExportConfig) -> Path:
    """The members' best checkpoints (config.ensemble, or the one config.run_dir with config.tta)
    as one ONNX file (default: ensemble.onnx beside the first member's folder); returns its path.
    The export parity check runs on real crops spread over the cache (the members have each seen
    all but their own fold, so no crop is unseen by all of them)."""
    members = restrict_heads(load_members(member_dirs(config.ensemble or (str(config.run_dir),))), config.member_heads)
    caches = {m.run_dir: _member_cache(m, config.cache) for m in members}
    geometries = {m.run_dir: _geometry(caches[m.run_dir]) for m in members}
    members, input_size, crop_margin = with_views(members, geometries)
    age_boundary = shared(members, "age boundary", lambda m: m.config.age_boundary)
    age_prior = prior.members_prior([(m.config, caches[m.run_dir]) for m in members])
    if config.age_prior and age_prior is None:
        raise ConfigError("--age-prior corrects runs trained with class weights or the weighted sampler, all of them; "
                          "a run trained without already learned the photos' age frequencies")
    bias = prior.logit_bias(age_prior, config.age_prior).tolist() if config.age_prior else None
    ensemble = build_ensemble(members, config.tta, bias)
    first = members[0]
    data_config = first.model.data_config()

    # the check crops come at the file's input size: from a cache of a member that takes it
    cache = next((caches[m.run_dir] for m in members if m.view is None), None)
    if cache is None:
        raise ConfigError(f"no member was trained on the file's crop ({input_size} px at margin {crop_margin:g}) to check the "
                          "export on: add one, or prepare the members' caches at sizes that keep one pixel scale")
    train_faces, val_faces = split_faces(cache, first.config.fold)
    faces = train_faces + val_faces  # every photo outside the test split
    member_folds = sorted({m.config.fold for m in members})
    held_out: int | str = (first.config.fold if len(members) == 1  # training_data_summary words a single fold
                           else f"ensemble of {len(members)} runs validated on folds {', '.join(map(str, member_folds))}")
    heads = head_labels(ensemble.head_names)
    architectures = list(dict.fromkeys(m.config.model for m in members))
    tta = "hflip" if config.tta else "none"
    if len(members) == 1:
        name = f"{first.config.model}-fold{first.config.fold}-e{first.state['epoch']}"
    else:
        name = f"ensemble{len(members)}-{'+'.join(architectures)}"
    version = config.model_version or name + ("-hflip" if config.tta else "")
    metadata = ModelMetadata(
        heads=heads,
        input_size=input_size,
        mean=tuple(data_config["mean"]),
        std=tuple(data_config["std"]),
        crop_margin=crop_margin,
        model_version=version,
        training_data=training_data_summary(faces, held_out),
        architecture="+".join(architectures),
        age_boundary=age_boundary,  # type: ignore[arg-type]
        inner_crop=nested_crop(members),
        extra={
            "ensemble": json.dumps([m.describe() for m in members]),
            "tta": tta,
            "exported_by": "mask-train export --ensemble",
            **({prior.METADATA_KEY: prior.describe(age_prior, config.age_prior)} if age_prior is not None else {}),
        },
    )
    check = spread_crops(faces, config.check_crops)
    out = config.out or first.run_dir.parent / "ensemble.onnx"
    log.info("ensemble of %d (%s), TTA %s, age prior correction τ = %g", len(members),
             ", ".join(m.run_dir.name + (f" [{'+'.join(m.heads)}]" if m.heads is not None else "") for m in members),
             tta, config.age_prior)
    return export_classifier(ensemble, metadata, out, check, probabilities=True, half_weights=config.half_weights)
