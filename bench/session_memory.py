"""Memory and time of the whole analyzer (MTCNN + the shipped classifier) on crowded real photos,
by onnxruntime's memory settings (CPU arena, memory pattern) and faces per classifier run, against
the old setting, same run.

Each setting runs in a fresh process that labels the same face_mask_853 photos (the --photos
scenes with the most labelled faces, so each holds a crowd, plus as many with one to three) with
core's FaceAnalyzer, twice: the first pass allocates, the second is timed. Prints, per setting,
ms per photo (all, and the photos with one to three faces alone), ms per face found, and resident
memory after loading, at the end and at its peak (the whole process: Python, the models,
decoding), with ratios against the baseline: onnxruntime's defaults (arena and pattern on) and
all faces of a photo in one run (the analyzer before this bench). The settings take turns over
--repeats rounds, so whatever else the machine does slows them alike; medians are printed.

    .venv/bin/python bench/session_memory.py [--photos 12] [--repeats 3] [--batches 4 8]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.frames import DATA  # noqa: E402

#: Faces per classifier run that means "all faces of the photo in one run" (the old analyzer).
WHOLE_PHOTO = 0


def crowd_and_small_scenes(data: Path, photos: int) -> list[Path]:
    """`photos` face_mask_853 scenes with the most labelled faces, and `photos` with one to three."""
    from training.detector.scenes import boxes_table, load_scenes

    scenes = load_scenes(boxes_table(data))
    by_faces = sorted(scenes, key=lambda s: (-len(s.boxes), str(s.path)))
    small = [s for s in by_faces if 1 <= len(s.boxes) <= 3]
    return [s.path for s in by_faces[:photos]] + [s.path for s in small[:photos]]


def child(paths: list[Path], memory_arena: bool, memory_pattern: bool, batch: int) -> dict[str, float]:
    """Label `paths` twice in this process with one setting; time the second pass (the first half
    of `paths` are the crowds, the second the photos with a few faces)."""
    from app.soak import rss_mib
    from core.analyzer import FaceAnalyzer
    from core.classifier import Classifier
    from core.config import shipped_classifier
    from core.imageio import load_image
    from core.ort import SessionPolicy, session_policy, set_session_policy

    threads = session_policy().intra_op_threads
    set_session_policy(SessionPolicy(intra_op_threads=threads, memory_arena=memory_arena, memory_pattern=memory_pattern))
    analyzer = FaceAnalyzer.with_default_models()
    path = shipped_classifier()
    if path is None:
        raise SystemExit("no shipped classifier: nothing to measure")
    analyzer.set_classifier(Classifier(path, max_batch=batch or 10_000))
    images = [load_image(p).image for p in paths]
    loaded = rss_mib()
    analyzer.analyze(images[0])
    for image in images:
        analyzer.analyze(image)
    faces, took_ms = 0, []
    for image in images:
        start = time.perf_counter()
        faces += len(analyzer.analyze(image))
        took_ms.append((time.perf_counter() - start) * 1000.0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    half = len(images) // 2
    return {"ms_photo": sum(took_ms) / len(images), "ms_few": sum(took_ms[half:]) / max(1, len(images) - half),
            "ms_face": sum(took_ms) / max(1, faces), "faces": faces, "loaded_mib": loaded, "end_mib": rss_mib(), "peak_mib": peak}


@dataclass(frozen=True)
class Setting:
    memory_arena: bool  # every session keeps onnxruntime's CPU memory arena
    memory_pattern: bool  # and plans memory per input shape (onnxruntime's default: both on)
    batch: int  # faces per classifier run; WHOLE_PHOTO = all faces of the photo in one

    def __str__(self) -> str:
        return (f"arena {'on' if self.memory_arena else 'off'}, pattern {'on' if self.memory_pattern else 'off'}, "
                f"{'whole photo' if self.batch == WHOLE_PHOTO else f'{self.batch} faces'} a run")


#: The analyzer before this bench: onnxruntime's defaults (arena and pattern on), a photo's faces in one run.
BASELINE = Setting(True, True, WHOLE_PHOTO)


def run_child(paths: list[Path], setting: Setting) -> dict[str, float]:
    spec = {"paths": [str(p) for p in paths], **asdict(setting)}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default ../shared/data or $MASK_CHECKER_DATA)")
    parser.add_argument("--photos", type=int, default=12, help="crowded photos, and as many with 1-3 faces (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all settings; medians are printed (default 3)")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8],
                        help="faces per classifier run to try with each memory setting, 0 = the whole photo (default 4 8)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        paths = [Path(p) for p in spec.pop("paths")]
        print(json.dumps(child(paths, **spec)))
        return 0

    from tqdm import tqdm

    paths = crowd_and_small_scenes(args.data, args.photos)
    settings = [BASELINE] + [s for b in args.batches for s in (Setting(True, True, b), Setting(True, False, b), Setting(False, False, b))
                             if s != BASELINE]
    results: dict[Setting, list[dict[str, float]]] = {s: [] for s in settings}
    with tqdm(total=len(settings) * args.repeats, desc="settings", unit="process") as bar:
        for _ in range(args.repeats):
            for setting in settings:
                results[setting].append(run_child(paths, setting))
                bar.update()

    keys = ("ms_photo", "ms_few", "ms_face", "loaded_mib", "end_mib", "peak_mib")
    median = {s: {k: statistics.median(r[k] for r in runs) for k in keys} | {"faces": runs[0]["faces"]} for s, runs in results.items()}
    base = median[BASELINE]
    print(f"{len(paths)} photos ({args.photos} crowds, {args.photos} with 1-3 faces), {args.repeats} rounds; "
          f"baseline = {BASELINE} (the analyzer before this bench)")
    print(f"{'setting':<42} {'faces':>5} {'ms/photo':>9} {'ratio':>6} {'ms/photo, 1-3 faces':>20} {'ratio':>6} {'ms/face':>8} "
          f"{'loaded MiB':>10} {'end MiB':>8} {'ratio':>6} {'peak MiB':>8} {'ratio':>6}")
    for setting in settings:
        m = median[setting]
        print(f"{str(setting):<42} {m['faces']:>5} {m['ms_photo']:>9.0f} {m['ms_photo'] / base['ms_photo']:>6.2f} "
              f"{m['ms_few']:>20.0f} {m['ms_few'] / base['ms_few']:>6.2f} {m['ms_face']:>8.1f} {m['loaded_mib']:>10.0f} "
              f"{m['end_mib']:>8.0f} {m['end_mib'] / base['end_mib']:>6.2f} {m['peak_mib']:>8.0f} {m['peak_mib'] / base['peak_mib']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
