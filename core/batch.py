"""Headless batch labelling: folders of photos in, one row per face (or per problem) out.

Decoding runs in a small thread pool ahead of the analysis, so the classifier never waits for
the disk. A broken file becomes an error row; nothing stops the batch, and an interrupted run
still leaves valid output files holding every image done so far. Outputs are checked before the
first image (a folder that cannot be written fails at once, not after the work), and a photo
over `BatchOptions.fit_pixels` is analysed as a copy shrunk to that size would be (decoded
small where the format allows), so one photo takes no more memory than a photo of that size.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from core.analyzer import Face, FaceAnalyzer, HeadResult, scaled
from core.atomic import atomic_open, atomic_path
from core.draw import draw_faces
from core.files import FileEntry, find_images, has_undecodable_name, path_text, resolved
from core.imageio import DEFAULT_MAX_PIXELS, LARGE_PICTURES, ImageReadError, LoadedImage, load_image, os_reason
from core.labels import LABEL_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)

#: Class written for a submission row whose image could not be read at all: the most frequent
#: class of the competition's training set (mask worn, female, 30–59).
DEFAULT_FALLBACK_CLASS = 4

#: Photos over this many pixels are analysed shrunk to it, so none takes more memory than a 16 Mpx
#: photo (about 0.7 GB); the smallest face found grows with the side (min face × 1.5 at 36 Mpx,
#: × 2.5 at 100 Mpx). Phone photos (12 Mpx) and most cameras' are analysed at full size.
DEFAULT_FIT_PIXELS = 16_000_000
MAX_DECODE_WORKERS = 16  # each one keeps about two decoded photos waiting in memory

NAME_WARNING = "file name is not valid UTF-8 (its undecodable bytes are shown as \\xNN)"


class BatchError(ValueError):
    """The batch cannot start (bad output path, malformed info.csv); nothing was written."""


class BatchOutputError(RuntimeError):
    """An output could not be written during the run (disk full...); no output file was
    replaced, so earlier results are kept."""


@dataclass(frozen=True)
class BatchOptions:
    max_pixels: int = DEFAULT_MAX_PIXELS
    decode_workers: int = 2
    #: Classify a centred box when no face is found (used to fill a competition submission,
    #: whose photos are centred portraits).
    centre_fallback: bool = False
    #: Photos over this many pixels are analysed shrunk to it (None: always at full size).
    fit_pixels: int | None = DEFAULT_FIT_PIXELS

    def __post_init__(self) -> None:
        if self.max_pixels <= 0:
            raise BatchError("the pixel limit must be positive")
        if not 1 <= self.decode_workers <= MAX_DECODE_WORKERS:
            raise BatchError(f"decoding threads must be within 1..{MAX_DECODE_WORKERS}")
        if self.fit_pixels is not None and self.fit_pixels <= 0:
            raise BatchError("the size photos are shrunk to must be positive")


@dataclass
class ImageResult:
    """What one file gave: faces, or the reason it could not be read."""

    path: Path
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    warning: str | None = None
    width: int = 0
    height: int = 0
    fallback: Face | None = None  # the centred-box guess, when asked for and no face was found
    scale: float = 1.0  # analysed shrunk to this fraction of its side (boxes are in full-size pixels)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "face" if self.faces else "no_face"

    def largest_face(self) -> Face | None:
        return max(self.faces, key=lambda f: f.area, default=None)


def centre_box(width: int, height: int) -> np.ndarray:
    """Where the face sits in a centred portrait: a square half the width, a little above centre."""
    side = 0.5 * min(width, height)
    cx, cy = width / 2.0, height * 0.45
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float32)


def _load(path: Path, options: BatchOptions) -> LoadedImage | str:
    try:
        return load_image(path, max_pixels=options.max_pixels, fit_pixels=options.fit_pixels)
    except ImageReadError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug or MemoryError on one file must not end the batch
        log.exception("decoding %s failed", path)
        return f"decoding failed: {exc}"


def analyze_files(
    files: Iterable[FileEntry], analyzer: FaceAnalyzer, options: BatchOptions = BatchOptions()
) -> Iterator[tuple[ImageResult, np.ndarray | None]]:
    """Results in input order, each with its decoded image (None when it could not be read)."""
    pool = ThreadPoolExecutor(max_workers=max(1, options.decode_workers), thread_name_prefix="decode")
    pending: deque[tuple[FileEntry, Future | None]] = deque()
    entries = iter(files)

    def submit_next() -> None:
        entry = next(entries, None)
        if entry is not None:
            job = pool.submit(_load, entry.path, options) if entry.error is None else None
            pending.append((entry, job))

    try:
        for _ in range(2 * max(1, options.decode_workers)):
            submit_next()
        while pending:
            entry, job = pending.popleft()
            submit_next()
            loaded = entry.error if job is None else job.result()
            if isinstance(loaded, str):
                yield ImageResult(entry.path, error=loaded), None
                continue
            with LARGE_PICTURES if loaded.scale < 1 else nullcontext():  # no large decode meanwhile
                result = _analyze(entry.path, loaded, analyzer, options)
            yield result, loaded.image
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _analyze(path: Path, loaded: LoadedImage, analyzer: FaceAnalyzer, options: BatchOptions) -> ImageResult:
    image, scale = loaded.image, loaded.scale
    width, height = loaded.full_size
    result = ImageResult(path, warning=loaded.warning, width=width, height=height, scale=scale)
    try:
        result.faces = [scaled(face, 1 / scale) for face in analyzer.analyze(image)]
        if not result.faces and options.centre_fallback and analyzer.classifier is not None:
            box = centre_box(image.shape[1], image.shape[0])
            result.fallback = scaled(analyzer.classify_box(image, box), 1 / scale)
    except Exception as exc:  # one bad image must not stop the batch; the row says what happened
        log.exception("analysis failed for %s", path_text(path))
        result.error = f"analysis failed: {exc}"
    unlabelled = sum(f.class_id is None for f in result.faces) if analyzer.classifier is not None else 0
    if unlabelled:
        note = f"the classifier gave no valid probabilities for {unlabelled} face(s): left unlabelled"
        result.warning = f"{result.warning}; {note}" if result.warning else note
    return result


def result_message(result: ImageResult) -> str:
    """The `message` column: why the file failed, or what to know about its result."""
    message = result.error or result.warning or ""
    if has_undecodable_name(result.path):
        message = f"{message}; {NAME_WARNING}" if message else NAME_WARNING
    return message


def check_output_file(path: Path) -> None:
    """Refuse now, before any image is analysed, an output file that could not be written."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise BatchError(f"{path_text(path)} is {kind}: name a file to write")
    _check_writable_folder(path.parent, f"cannot write {path_text(path)}")


def _check_writable_folder(folder: Path, what: str) -> None:
    """Create `folder` if needed and write (then drop) an anonymous file in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BatchError(f"{what}: {os_reason(exc)}") from None


# ----------------------------------------------------------------------------------- outputs

PROB_COLUMNS = [f"p_{head}_{name}" for head, names in LABEL_NAMES.items() for name in names]
CSV_COLUMNS = [
    "file", "face", "status", "message", "width", "height",
    "x1", "y1", "x2", "y2", "det_score",
    "mask", "mask_conf", "gender", "gender_conf", "age", "age_conf", "class_id",
    *PROB_COLUMNS,
]


def _head_fields(head: str, result: HeadResult | None) -> dict[str, Any]:
    if result is None:
        return {}
    fields: dict[str, Any] = {head: result.name, f"{head}_conf": round(result.confidence, 4)}
    for name, p in zip(LABEL_NAMES[head], result.probs):
        fields[f"p_{head}_{name}"] = round(p, 4)
    return fields


def face_record(face: Face) -> dict[str, Any]:
    """A face as flat fields (the CSV columns from x1 on)."""
    record: dict[str, Any] = dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 1) for v in face.box)))
    record["det_score"] = round(face.det_score, 4)
    for head in ("mask", "gender", "age"):
        record.update(_head_fields(head, getattr(face, head)))
    record["class_id"] = face.class_id
    return record


def result_rows(result: ImageResult) -> list[dict[str, Any]]:
    """One row per face; one row for an image with no face or that could not be read."""
    base = {"file": path_text(result.path), "width": result.width or None, "height": result.height or None}
    message = result_message(result)
    if not result.faces:
        return [{**base, "face": None, "status": result.status, "message": message}]
    return [
        {**base, "face": i, "status": "face", "message": message, **face_record(face)}
        for i, face in enumerate(result.faces)
    ]


class ResultOutput(Protocol):
    """Where results go: `add` per image as it is done, then `close` once (returns what it
    wrote) or, when the run failed, `abort` (writes nothing, leaves any old file as it was).
    `partial_ok`: a stopped run still closes it (results so far); else a stop aborts it."""

    partial_ok: bool
    path: Path  # the file (or folder) it writes

    def add(self, result: ImageResult, image: np.ndarray | None) -> None: ...

    def close(self) -> Path: ...

    def abort(self) -> None: ...


class CsvResults:
    """Streams rows to an anonymous temporary file beside `path`, which the system removes
    however the process ends (even killed); `close` copies it into place atomically."""

    partial_ok = True

    def __init__(self, path: Path) -> None:
        self.path = path
        check_output_file(path)
        try:
            self._spool = tempfile.TemporaryFile("w+", newline="", encoding="utf-8", dir=path.parent)
        except OSError as exc:
            raise BatchError(f"cannot write {path_text(path)}: {os_reason(exc)}") from None
        self._writer = csv.DictWriter(self._spool, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        self._writer.writeheader()

    def add(self, result: ImageResult, image: np.ndarray | None = None) -> None:
        self._writer.writerows(result_rows(result))

    def close(self) -> Path:
        with self._spool:
            self._spool.seek(0)
            with atomic_open(self.path, "w", newline="", encoding="utf-8") as handle:
                shutil.copyfileobj(self._spool, handle)
        return self.path

    def abort(self) -> None:
        self._spool.close()


class JsonResults:
    """One object per image with its faces nested; written whole at `close`."""

    partial_ok = True

    def __init__(self, path: Path, model_info: dict[str, str]) -> None:
        check_output_file(path)
        self.path = path
        self.model_info = model_info
        self.images: list[dict[str, Any]] = []

    def add(self, result: ImageResult, image: np.ndarray | None = None) -> None:
        faces = []
        for face in result.faces:
            record = face_record(face)
            record["landmarks"] = [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks]
            faces.append(record)
        self.images.append(
            {
                "file": path_text(result.path), "status": result.status, "message": result_message(result),
                "width": result.width or None, "height": result.height or None, "faces": faces,
            }
        )

    def close(self) -> Path:
        with atomic_open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"model": self.model_info, "images": self.images}, handle, indent=1, ensure_ascii=False)
        return self.path

    def abort(self) -> None:
        self.images.clear()


class Submission:
    """Fills the competition's info.csv (ImageID, ans) from the largest face of each image.

    No face found: the class of a centred box (the photos are centred portraits). Image missing
    or unreadable: `fallback_class`. The filled file goes to `out`, never over info.csv. A
    stopped run writes no submission: its unprocessed rows would all be guesses.
    """

    partial_ok = False

    def __init__(self, info_csv: Path, out: Path, fallback_class: int = DEFAULT_FALLBACK_CLASS) -> None:
        if not 0 <= fallback_class < NUM_CLASSES:
            raise BatchError(f"fallback class must be in 0..{NUM_CLASSES - 1}")
        if resolved(out) == resolved(info_csv):
            raise BatchError("the submission must not overwrite info.csv: choose another output file")
        check_output_file(out)
        try:
            with open(info_csv, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                self.fieldnames = list(reader.fieldnames or [])
                self.rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BatchError(f"cannot read {info_csv}: {exc}") from exc
        if "ImageID" not in self.fieldnames:
            raise BatchError(f"{info_csv} has no ImageID column (columns: {', '.join(self.fieldnames)})")
        if "ans" not in self.fieldnames:
            self.fieldnames.append("ans")
        self.out = self.path = out
        self.fallback_class = fallback_class
        self.answers: dict[str, int] = {}
        self.counts: Counter[str] = Counter()

    def add(self, result: ImageResult, image: np.ndarray | None = None) -> None:
        face = result.largest_face() or result.fallback
        if face is not None and face.class_id is not None:
            self.answers[result.path.name] = face.class_id

    def close(self) -> Path:
        for row in self.rows:
            answer = self.answers.get(Path(row["ImageID"]).name)
            self.counts["answered" if answer is not None else "fallback"] += 1
            row["ans"] = answer if answer is not None else self.fallback_class
        with atomic_open(self.out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fieldnames)
            writer.writeheader()
            writer.writerows(self.rows)
        return self.out

    def abort(self) -> None:
        log.warning("no submission written: the run did not finish")


class Annotator:
    """Saves a copy of each image with boxes and labels under `out_dir`, never over an input
    nor over another output (`reserved`). A copy that cannot be written (disk full, a name
    too long) is logged and counted in `failed`; the results themselves are not affected.

    A photo analysed shrunk (see BatchOptions.fit_pixels) is saved at that smaller size.
    """

    WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
    partial_ok = True

    def __init__(
        self, out_dir: Path, roots: Sequence[Path], inputs: Iterable[Path], reserved: Iterable[Path] = ()
    ) -> None:
        if out_dir.exists() and not out_dir.is_dir():
            raise BatchError(f"--annotate {path_text(out_dir)} is a file: name a folder")
        _check_writable_folder(out_dir, f"cannot write annotated copies in {path_text(out_dir)}")
        self.out_dir = self.path = out_dir
        self.roots = [r for r in roots if r.is_dir()]
        self.inputs = {resolved(p) for p in inputs}
        # Targets written in this run (two inputs never share one) and the other outputs' files.
        self.taken: set[Path] = {resolved(p) for p in reserved}
        self.written = 0
        self.failed = 0

    def target(self, path: Path) -> Path:
        relative = Path(path.name)
        for root in self.roots:
            if path.is_relative_to(root):
                relative = path.relative_to(root)
                break
        suffix = path.suffix.lower() if path.suffix.lower() in self.WRITABLE else ".png"
        target = self.out_dir / relative.with_suffix(suffix)
        n = 0
        while resolved(target) in self.inputs or resolved(target) in self.taken:
            n += 1
            target = target.with_name(f"{relative.stem}_annotated{'' if n == 1 else n}{suffix}")
        self.taken.add(resolved(target))
        return target

    def add(self, result: ImageResult, image: np.ndarray | None) -> None:
        if image is None:
            return
        target = self.target(result.path)
        faces = [scaled(face, result.scale) for face in result.faces]
        ok, encoded = cv2.imencode(target.suffix, draw_faces(image, faces))
        try:
            if not ok:
                raise OSError("the image could not be encoded")
            with atomic_path(target) as tmp:
                tmp.write_bytes(encoded.tobytes())
        except OSError as exc:
            self.failed += 1
            log.warning("no annotated copy of %s: %s", path_text(result.path), os_reason(exc))
            return
        self.written += 1

    def close(self) -> Path:
        return self.out_dir

    def abort(self) -> None:
        """Copies already written stay: each is complete, and none is over an input."""


# ------------------------------------------------------------------------------------ runner

@dataclass
class BatchSummary:
    files: int = 0
    done: int = 0
    with_faces: int = 0
    without_faces: int = 0
    errors: int = 0
    faces: int = 0
    mask_states: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False
    outputs: list[Path] = field(default_factory=list)
    annotation_failures: int = 0

    def add(self, result: ImageResult) -> None:
        self.done += 1
        self.errors += result.status == "error"
        self.with_faces += result.status == "face"
        self.without_faces += result.status == "no_face"
        self.faces += len(result.faces)
        self.mask_states.update(f.mask.name for f in result.faces if f.mask is not None)

    def describe(self) -> str:
        lines = [
            f"{self.done} of {self.files} files{' (interrupted)' if self.interrupted else ''}: "
            f"{self.with_faces} with faces, {self.without_faces} without, {self.errors} unreadable; {self.faces} faces",
        ]
        if self.mask_states:
            lines.append("mask: " + ", ".join(f"{k} {v}" for k, v in sorted(self.mask_states.items())))
        if self.annotation_failures:
            lines.append(f"{self.annotation_failures} annotated copies could not be written (see the log)")
        if self.interrupted and not self.done:
            lines.append("nothing written: interrupted before the first image was done")
        lines += [f"wrote {path_text(p)}" for p in self.outputs]
        return "\n".join(lines)


@dataclass
class BatchJob:
    """A batch run's inputs and outputs; `run` does the work (the CLI and the GUI share it)."""

    paths: Sequence[Path]
    out: Path | None = None
    submission_info: Path | None = None
    submission_out: Path | None = None
    annotate_dir: Path | None = None
    recursive: bool = False
    fallback_class: int = DEFAULT_FALLBACK_CLASS
    options: BatchOptions = BatchOptions()

    def _submission_path(self) -> Path | None:
        if self.submission_info is None:
            return None
        return self.submission_out or self.submission_info.with_name("submission.csv")

    def _check_output_paths(self, files: list[FileEntry]) -> None:
        """No two outputs on one file, and no output over an input (a photo or info.csv)."""
        outputs = [resolved(p) for p in (self.out, self._submission_path()) if p is not None]
        if len(set(outputs)) < len(outputs):
            raise BatchError(f"two outputs would be written to the same file: {path_text(outputs[0])}")
        inputs = {resolved(f.path) for f in files}
        if self.submission_info is not None:
            inputs.add(resolved(self.submission_info))
        for path in outputs:
            if path in inputs:
                raise BatchError(f"{path_text(path)} is one of the inputs: choose another output file")

    def _open_outputs(self, analyzer: FaceAnalyzer, files: list[FileEntry]) -> list[ResultOutput]:
        self._check_output_paths(files)
        outputs: list[ResultOutput] = []
        try:
            self._add_outputs(outputs, analyzer, files)
        except BaseException:  # one refused (or Ctrl-C): drop those already opened
            for output in outputs:
                output.abort()
            raise
        return outputs

    def _add_outputs(self, outputs: list[ResultOutput], analyzer: FaceAnalyzer, files: list[FileEntry]) -> None:
        submission = self._submission_path()
        if self.submission_info is not None and submission is not None:
            if analyzer.classifier is None:
                raise BatchError("a submission needs a classifier model")
            outputs.append(Submission(self.submission_info, submission, self.fallback_class))
        if self.out is not None:
            suffix = self.out.suffix.lower()
            if suffix == ".json":
                info = dict(analyzer.classifier.metadata.to_props()) if analyzer.classifier else {}
                outputs.append(JsonResults(self.out, {k: info.get(k, "") for k in ("model_version", "architecture")}))
            elif suffix == ".csv":
                outputs.append(CsvResults(self.out))
            else:
                raise BatchError(f"--out must end in .csv or .json, not {path_text(self.out.name)!r}")
        if self.annotate_dir is not None:
            reserved = [p for p in (self.out, submission) if p is not None]
            outputs.append(Annotator(self.annotate_dir, self.paths, (f.path for f in files), reserved))

    def run(
        self,
        analyzer: FaceAnalyzer,
        progress: Callable[[ImageResult, BatchSummary], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> BatchSummary:
        """Label every image; Ctrl-C (or `should_stop`) ends early with valid output files.

        A run that fails (an exception other than Ctrl-C) writes no output file at all, so a
        previous good file is never replaced by a partial one; nor does a run stopped before
        its first image. An output that cannot be written raises BatchOutputError.
        """
        files = list(find_images(self.paths, recursive=self.recursive))
        outputs = self._open_outputs(analyzer, files)
        summary = BatchSummary(files=len(files))
        options = self.options
        if self.submission_info is not None:
            options = replace(options, centre_fallback=True)
        results = analyze_files(files, analyzer, options)
        failed = True
        try:
            for result, image in results:
                summary.add(result)
                for output in outputs:
                    output.add(result, image)
                if progress is not None:
                    progress(result, summary)
                if should_stop is not None and should_stop():
                    summary.interrupted = summary.done < summary.files
                    break
            failed = False
        except KeyboardInterrupt:
            summary.interrupted, failed = True, False
            log.warning("interrupted after %d of %d files", summary.done, summary.files)
        except OSError as exc:
            raise BatchOutputError(f"cannot write the results: {os_reason(exc)}; no output file was replaced") from exc
        finally:
            results.close()
            self._finish(outputs, summary, failed or (summary.interrupted and summary.done == 0))
        return summary

    @staticmethod
    def _finish(outputs: list[ResultOutput], summary: BatchSummary, abort: bool) -> None:
        """Close the outputs (or abort them all); the first that cannot be written aborts the rest."""
        for i, output in enumerate(outputs):
            if isinstance(output, Annotator):
                summary.annotation_failures = output.failed
            if abort or (summary.interrupted and not output.partial_ok):
                output.abort()
                continue
            try:
                summary.outputs.append(output.close())
            except OSError as exc:
                for rest in outputs[i + 1:]:
                    rest.abort()
                written = f" ({', '.join(path_text(p) for p in summary.outputs)} written)" if summary.outputs else ""
                raise BatchOutputError(f"cannot write {path_text(output.path)}: {os_reason(exc)}{written}") from exc
