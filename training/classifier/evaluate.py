"""`evaluate`: scores of a run on its validation fold (or, with split="test", on the held-out test
split of `mask-train split --holdout`), as numbers, pictures and a short report.

The model is either the run's best checkpoint (torch) or an exported ONNX file run through
core's Classifier, the app's own path; both see the cached runtime crop (crop_face at the
model's margin and input size, as the app makes it).

Writes into <run>/eval (test split: <run>/eval_test; or --out): metrics.json, report.md,
confusion_<head>.png, predictions.csv, errors_by_age.csv and breakdown.csv (per-head macro-F1 and
accuracy overall, per source and for the real photos pooled (by = photos; also without the faces
smaller than the app ever looks for), the mask head's on real photos by face size (by = face size),
and by gender and by age group; long format:
by, group, head, n, f1, accuracy — the numbers a model card quotes; also in metrics.json),
fairness.csv (gender accuracy and mask false alarms per race group and per gender, with the gap
worst vs best: training.classifier.fairness) and, with --out-of-source, out_of_source.md (the
faces of training/labels/out_of_source.csv, bare vs masked, with counts: training.classifier.oos_check).
With --checked-masks, the mask head on the real photos is also scored against mask states checked by
eye (breakdown group "real photos, mask checked by eye"; predictions.csv gains mask_checked): some
dataset labels are plainly wrong (a mask under the nose filed as worn), and every other figure keeps them.
"""
from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.atomic import atomic_open
from core.classifier import Classifier
from core.config import DetectorConfig
from core.crop import to_input
from core.labels import HEADS as CORE_HEADS
from core.labels import LABEL_NAMES, class_names, marginals
from training import checkpoint
from training.classifier import oos_check
from training.classifier.dataset import is_synthetic, target_matrix
from training.classifier.fairness import COLUMNS as FAIRNESS_COLUMNS
from training.classifier.fairness import fairness
from training.classifier.figures import confusion_image, save_png
from training.classifier.fixes import checked_masks
from training.classifier.folds import held_out_faces, split_faces
from training.classifier.metrics import IGNORE, accuracy, macro_f1, score
from training.classifier.out_of_source import markdown_table
from training.classifier.model import build_model
from training.config import ConfigError, EvaluateConfig, TrainConfig, load_saved
from training.data.cache import Cache, CachedFace, CropGeometry

log = logging.getLogger(__name__)

HEADS = tuple(CORE_HEADS)
AGE_BINS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 200)


def load_best(run_dir: Path) -> tuple[TrainConfig, dict]:
    """The run's settings and its best checkpoint."""
    path = Path(run_dir) / "checkpoints" / "best.pt"
    if not path.exists():
        raise ConfigError(f"{run_dir} has no checkpoints/best.pt: train first")
    state = checkpoint.load(path)
    return load_saved(TrainConfig, json.loads(state["config"]), str(path)), state


def model_from_state(config: TrainConfig, state: dict) -> torch.nn.Module:
    model = build_model(state["architecture"], config.single_head, None, config.drop_rate, config.trunk_input)
    model.load_state_dict(state["model"])
    return model.eval()


def runtime_crops(faces: Sequence[CachedFace]) -> np.ndarray:
    """N×S×S×3 BGR uint8: the runtime crops of `faces`."""
    return np.stack([f.load_runtime() for f in faces])


def _batches(faces: Sequence[CachedFace], size: int, progress: bool):
    for start in tqdm(range(0, len(faces), size), desc="evaluate", unit="batch", disable=not progress):
        yield faces[start : start + size]


@torch.no_grad()
def predict_torch(model: torch.nn.Module, faces: Sequence[CachedFace], batch_size: int, progress: bool = True) -> dict[str, np.ndarray]:
    config = model.data_config()
    chunks: dict[str, list[np.ndarray]] = {}
    for batch in _batches(faces, batch_size, progress):
        inputs = torch.from_numpy(to_input(runtime_crops(batch), config["mean"], config["std"]))
        for head, logits in model(inputs).items():
            chunks.setdefault(head, []).append(torch.softmax(logits, dim=1).numpy())
    probs = {h: np.concatenate(c) for h, c in chunks.items()}
    return marginals(probs["class"]) if "class" in probs else probs


def predict_onnx(classifier: Classifier, faces: Sequence[CachedFace], batch_size: int, progress: bool = True) -> dict[str, np.ndarray]:
    chunks: dict[str, list[np.ndarray]] = {h: [] for h in HEADS}
    for batch in _batches(faces, batch_size, progress):
        result = classifier.predict(runtime_crops(batch))
        for head in HEADS:
            chunks[head].append(getattr(result, head))
    return {h: np.concatenate(c) for h, c in chunks.items()}


def fold_head(classifier: Classifier, cache: Cache, fold: int, head: str, batch_size: int,
              progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One head's probabilities and labels on a validation fold's faces that have that label."""
    _, val_faces = split_faces(cache, fold)
    labels = target_matrix(val_faces, classifier.metadata.age_boundary, False)[:, list(CORE_HEADS).index(head)]
    known = labels != IGNORE
    probs = predict_onnx(classifier, [f for f, k in zip(val_faces, known) if k], batch_size, progress)[head]
    return probs, labels[known]


def errors_by_age(faces: Sequence[CachedFace], probs: dict[str, np.ndarray], labels: np.ndarray) -> list[dict]:
    """Per age decade (photos with an age in years): count and each head's error rate."""
    years = np.array([f.row.age if f.row.age is not None else np.nan for f in faces])
    rows = []
    for low, high in zip(AGE_BINS[:-1], AGE_BINS[1:]):
        inside = (years >= low) & (years < high)
        if not inside.any():
            continue
        row: dict = {"ages": f"{low}-{high - 1}" if high < 200 else f"{low}+", "n": int(inside.sum())}
        for i, head in enumerate(HEADS):
            valid = inside & (labels[:, i] != IGNORE)
            wrong = np.argmax(probs[head][valid], axis=1) != labels[valid, i]
            row[f"{head}_error"] = round(float(wrong.mean()), 4) if valid.any() else ""
        rows.append(row)
    return rows


BREAKDOWN_COLUMNS = ["by", "group", "head", "n", "f1", "accuracy"]


def _head_scores(probs: dict[str, np.ndarray], labels: np.ndarray, rows: np.ndarray, head: str) -> tuple[int, float, float]:
    i = HEADS.index(head)
    valid = rows & (labels[:, i] != IGNORE)
    truth, pred = labels[valid, i], np.argmax(probs[head][valid], axis=1)
    return int(valid.sum()), macro_f1(truth, pred, len(LABEL_NAMES[head])), accuracy(truth, pred)


#: breakdown.csv's pooled groups (by = "photos"): every real photo's source together, and the synthetic masks.
REAL_PHOTOS, SYNTHETIC_MASKS = "real photos", "synthetic masks"
#: The mask head on the real photos against the mask states checked by eye (evaluate --checked-masks).
REAL_PHOTOS_CHECKED = "real photos, mask checked by eye"
#: The app's detector looks for faces down to this side in photos and to SEEN_LIVE px in live video
#: (core.config.DetectorConfig): a labelled face smaller than SEEN_IN_PHOTOS never reaches the classifier.
SEEN_IN_PHOTOS, SEEN_LIVE = DetectorConfig().min_face_floor, DetectorConfig().min_face_size
REAL_PHOTOS_SEEN = f"real photos, faces >= {SEEN_IN_PHOTOS} px"
FACE_SIZES = (f"< {SEEN_IN_PHOTOS} px", f"{SEEN_IN_PHOTOS}-{SEEN_LIVE - 1} px", f">= {SEEN_LIVE} px", "found by the detector")


def face_sizes(faces: Sequence[CachedFace]) -> np.ndarray:
    """Each face's FACE_SIZES group: the shorter side of its labelled box; "found by the detector"
    where the dataset gave no box (the detector found it, so the app can too)."""
    def group(face: CachedFace) -> str:
        if face.row.box is None:
            return FACE_SIZES[3]
        x1, y1, x2, y2 = face.row.box
        side = min(x2 - x1, y2 - y1)
        return FACE_SIZES[0] if side < SEEN_IN_PHOTOS else FACE_SIZES[1] if side < SEEN_LIVE else FACE_SIZES[2]
    return np.array([group(f) for f in faces], dtype=object)


def breakdown(faces: Sequence[CachedFace], probs: dict[str, np.ndarray], labels: np.ndarray,
              checked: np.ndarray | None = None) -> list[dict]:
    """Per-head macro-F1 and accuracy overall ("all"), per source and, when both kinds are there, for
    the real photos pooled and the synthetic masks; with `checked` (labels with the mask states checked
    by eye), the real photos' mask head against those too; the mask head's by gender and by age group
    (photos that have both labels). Groups with no labelled photo are left out."""
    out: list[dict] = []

    def add(by: str, group: str, rows: np.ndarray, heads: Sequence[str], truth: np.ndarray = labels) -> None:
        for head in heads:
            n, f1, acc = _head_scores(probs, truth, rows, head)
            if n:
                out.append({"by": by, "group": group, "head": head, "n": n, "f1": round(f1, 4), "accuracy": round(acc, 4)})

    everyone = np.ones(len(faces), dtype=bool)
    add("all", "all", everyone, HEADS)
    sources = np.array([f.row.source for f in faces])
    for source in sorted(set(sources.tolist())):
        add("source", source, sources == source, HEADS)
    synthetic = np.array([is_synthetic(f) for f in faces], dtype=bool)
    sizes = face_sizes(faces)
    too_small = sizes == FACE_SIZES[0]
    if synthetic.any() and not synthetic.all():  # issue 16's "real-photo" figures: every real source pooled
        add("photos", REAL_PHOTOS, ~synthetic, HEADS)
        if (too_small & ~synthetic).any():
            add("photos", REAL_PHOTOS_SEEN, ~synthetic & ~too_small, HEADS)
        add("photos", SYNTHETIC_MASKS, synthetic, HEADS)
    if checked is not None:
        add("photos", REAL_PHOTOS_CHECKED, ~synthetic, ("mask",), checked)
    if (~synthetic).any():
        for size in FACE_SIZES:
            add("face size", size, ~synthetic & (sizes == size), ("mask",))
    for by, column in (("gender", 1), ("age", 2)):
        for value, name in enumerate(LABEL_NAMES[by]):
            add(by, name, labels[:, column] == value, ("mask",))
    return out


def _breakdown_report(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    cell = {(r["by"], r["group"], r["head"]): r for r in rows}
    sources = sorted({r["group"] for r in rows if r["by"] == "source"})
    if sources:
        lines += ["", "## By source (macro-F1 / accuracy, photos)", "",
                  "| source | " + " | ".join(HEADS) + " |", "|---|" + "---|" * len(HEADS)]
        pooled = [("photos", group) for group in (REAL_PHOTOS, REAL_PHOTOS_SEEN, REAL_PHOTOS_CHECKED, SYNTHETIC_MASKS) if any(k[:2] == ("photos", group) for k in cell)]
        for by, group in [("source", source) for source in sources] + pooled:
            cells = []
            for head in HEADS:
                r = cell.get((by, group, head))
                cells.append(f"{r['f1']:.4f} / {r['accuracy']:.4f} ({r['n']})" if r else "–")
            name = f"**{group}** (pooled)" if by == "photos" else group
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sized = [r for r in rows if r["by"] == "face size"]
    if sized:
        lines += ["", "## Mask head on real photos by face size", "",
                  f"Shorter side of the labelled box. The app looks for faces down to {SEEN_IN_PHOTOS} px in photos and "
                  f"{SEEN_LIVE} px in live video: smaller ones never reach the classifier.", "",
                  "| face size | photos | macro-F1 | accuracy |", "|---|---|---|---|"]
        lines += [f"| {r['group']} | {r['n']} | {r['f1']:.4f} | {r['accuracy']:.4f} |" for r in sized]
    for by, title in (("gender", "Mask head by gender"), ("age", "Mask head by age group")):
        picked = [r for r in rows if r["by"] == by]
        if picked:
            lines += ["", f"## {title}", "", f"| {by} | photos | macro-F1 | accuracy |", "|---|---|---|---|"]
            lines += [f"| {r['group']} | {r['n']} | {r['f1']:.4f} | {r['accuracy']:.4f} |" for r in picked]
    return lines


def out_of_source(config: EvaluateConfig, geometry: CropGeometry, predict: Callable[[np.ndarray], dict[str, np.ndarray]],
                  name: str, progress: bool) -> tuple[str, dict]:
    """One model on the out-of-source faces (cropped at the cache's geometry, as the app crops):
    the Markdown table, bare vs masked with counts, and its figures for metrics.json."""
    oos = oos_check.load_set(config.oos_labels, config.oos_data, geometry.crop_spec, progress)
    found = oos_check.verdicts(name, predict(oos.crops))
    names = ", ".join(Path(p).name for p in config.oos_labels)
    table = f"{oos.describe()} ({names}). Cells: value (faces behind it).\n\n" + markdown_table([found], oos.faces)
    return table, {f.name: {"value": f.value, "n": f.n} for f in oos_check.figures(oos, found).values()}


@dataclass
class Evaluation:
    metrics: dict
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        m = self.metrics
        return (
            f"macro-F1 mask {m['mask']['f1']:.4f}, gender {m['gender']['f1']:.4f}, age {m['age']['f1']:.4f}, "
            f"18-class {m['class']['f1']:.4f} (n={m['class']['n']}); report {self.out_dir / 'report.md'}"
        )


def _report(title: str, metrics: dict, by_age: list[dict], images: dict[str, str], parts: list[dict] | None = None,
            extra: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", "| head | macro-F1 | accuracy | photos |", "|---|---|---|---|"]
    for head in (*HEADS, "class"):
        m = metrics[head]
        name = "18 classes" if head == "class" else head
        lines.append(f"| {name} | {m['f1']:.4f} | {m['accuracy']:.4f} | {m['n']} |" if m["n"] else f"| {name} | – | – | 0 |")
    lines += ["", f"Score (mean of the heads' macro-F1): **{metrics['score']:.4f}**"]
    lines += _breakdown_report(parts or [])
    lines += list(extra)
    lines += ["", "## Confusion matrices (rows: truth, columns: prediction)", ""]
    lines += [f"![{head}]({file})" for head, file in images.items()]
    if by_age:
        lines += ["", "## Error rate by age", "", "| ages | photos | mask | gender | age |", "|---|---|---|---|---|"]
        for row in by_age:
            cells = [f"{row[f'{h}_error']:.3f}" if row[f"{h}_error"] != "" else "–" for h in HEADS]
            lines.append(f"| {row['ages']} | {row['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate(config: EvaluateConfig, progress: bool = True) -> Evaluation:
    """Score the run's best checkpoint (or config.onnx) on the run's validation fold, or with
    config.subset == "test" on the cache's held-out test split."""
    train_config, state = load_best(config.run_dir)
    cache = Cache(config.cache or train_config.cache)
    geometry = cache.read_info().geometry
    if config.subset == "test":
        fold = None
        faces = held_out_faces(cache)
        where = "the test split"
    else:
        fold = train_config.fold if config.fold is None else config.fold
        _, faces = split_faces(cache, fold)
        where = f"fold {fold}"
    age_boundary = train_config.age_boundary
    if config.onnx is not None:
        classifier = Classifier(config.onnx)
        meta = classifier.metadata
        cache.geometry_for(meta.crop_spec, config.onnx.name)
        age_boundary = meta.age_boundary
        probs = predict_onnx(classifier, faces, config.batch_size, progress)
        title = f"{config.onnx.name} ({meta.model_version}) on {where}"
        on_crops = partial(oos_check.predict_onnx, classifier, batch_size=config.batch_size)
    else:
        model = model_from_state(train_config, state)
        probs = predict_torch(model, faces, config.batch_size, progress)
        title = f"{train_config.model}, epoch {state['epoch']}, on {where}"
        on_crops = partial(oos_check.predict_torch, model, batch_size=config.batch_size)
    labels = target_matrix(faces, age_boundary, False)
    metrics = score(probs, labels)
    by_age = errors_by_age(faces, probs, labels)
    checked = target_matrix(checked_masks(faces, *config.checked_masks)[0], age_boundary, False) if config.checked_masks else None
    parts = breakdown(faces, probs, labels, checked)
    fair = fairness(faces, probs, labels)
    oos_table, oos_figures = "", {}
    if config.out_of_source:
        name = config.onnx.name if config.onnx is not None else f"{train_config.model} epoch {state['epoch']}"
        oos_table, oos_figures = out_of_source(config, geometry, on_crops, name, progress)

    out = config.out or Path(config.run_dir) / ("eval_test" if config.subset == "test" else "eval")
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    images: dict[str, str] = {}
    for head, names in (*((h, LABEL_NAMES[h]) for h in HEADS), ("class", class_names())):
        if metrics[head]["n"]:
            path = save_png(out / f"confusion_{head}.png", confusion_image(metrics[head]["confusion"], names, f"{head} ({metrics[head]['n']} photos; rows: truth)"))
            images[head] = path.name
            files.append(path)
    plain = {k: ({kk: vv.tolist() if isinstance(vv, np.ndarray) else vv for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in metrics.items()}
    plain.update(split=config.subset, fold=fold, photos=len(faces), model=title, age_boundary=age_boundary, errors_by_age=by_age, breakdown=parts,
                 fairness=fair.to_json())
    if oos_table:
        plain["out_of_source"] = oos_figures
        with atomic_open(out / "out_of_source.md", "w", encoding="utf-8") as handle:
            handle.write(f"# Out-of-source faces: {title}\n\n{oos_table}")
        files.append(out / "out_of_source.md")
    with atomic_open(out / "metrics.json", "w", encoding="utf-8") as handle:
        json.dump(plain, handle, indent=1)
    with atomic_open(out / "report.md", "w", encoding="utf-8") as handle:
        extra = fair.report_lines() + (["", "## Out-of-source faces (out_of_source.md)", "", oos_table] if oos_table else [])
        handle.write(_report(f"Evaluation: {title}", metrics, by_age, images, parts, extra))
    with atomic_open(out / "fairness.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FAIRNESS_COLUMNS)
        writer.writeheader()
        writer.writerows(fair.rows())
    with atomic_open(out / "breakdown.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=BREAKDOWN_COLUMNS)
        writer.writeheader()
        writer.writerows(parts)
    with atomic_open(out / "errors_by_age.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ages", "n", *(f"{h}_error" for h in HEADS)])
        writer.writeheader()
        writer.writerows(by_age)
    with atomic_open(out / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person_id", "source", *(f"{h}_{k}" for h in HEADS for k in ("true", "pred", "conf")),
                         *(["mask_checked"] if checked is not None else [])])
        for i, face in enumerate(faces):
            cells = []
            for j, head in enumerate(HEADS):
                pred = int(np.argmax(probs[head][i]))
                truth = LABEL_NAMES[head][labels[i, j]] if labels[i, j] != IGNORE else ""
                cells += [truth, LABEL_NAMES[head][pred], round(float(probs[head][i, pred]), 4)]
            if checked is not None:
                cells.append(LABEL_NAMES["mask"][checked[i, 0]] if checked[i, 0] != IGNORE else "")
            writer.writerow([str(face.row.path), face.row.person_id, face.row.source, *cells])
    files += [out / n for n in ("metrics.json", "report.md", "breakdown.csv", "fairness.csv", "errors_by_age.csv", "predictions.csv")]
    evaluation = Evaluation(metrics, out, files)
    log.info("%s", evaluation.describe())
    return evaluation
