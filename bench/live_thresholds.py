"""Live detector thresholds: faces found as confirmed tracks against stray confirmed tracks.

In live video a face is shown only once its track is confirmed (seen in core.live.CONFIRMED_HITS
frames), so a detector flicker that one photo would keep is dropped there: live can search with
lower thresholds than a photo needs. This measures how much lower, on generated clips whose face
positions are known (bench/truth_clips.py: masked, wrongly worn and bare close-ups the size of a
webcam's face, groups of small faces, small faces gliding, and textured street scenes with
nobody; all photos from the parts a detector fine-tune never trains on).

Each threshold set runs the real LiveAnalyzer (shipped detector assets/models/mtcnn and shipped
classifier, LiveConfig defaults but `detector_thresholds`) over every clip, frame by frame
alongside the others (so whatever else loads the machine slows them alike); each clip starts
with a reset. Printed as markdown:

- face-frames: share of counted true faces (>= 40 px, mostly inside the frame) covered by a
  confirmed track's box (IoU >= 0.4; a pasted mask_web photo: centre in its middle, about its size);
- persons: true faces confirmed at least once; delay: median frames from a face's first frame
  to its first confirmed box;
- stray tracks: confirmed tracks never on a true face (bench/track_score.py); stray frames:
  confirmed boxes on no true face, over all frames.

    .venv/bin/python bench/live_thresholds.py
    .venv/bin/python bench/live_thresholds.py --thresholds 0.6 0.7 0.7 --thresholds 0.4 0.5 0.5 --per-shot 15
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.track_score import ClipScore, Totals  # noqa: E402
from bench.truth_clips import Clip, live_threshold_clips  # noqa: E402
from core.analyzer import FaceAnalyzer  # noqa: E402
from core.config import DetectorConfig, LiveConfig  # noqa: E402
from core.live import LiveAnalyzer  # noqa: E402
from core.ort import SessionPolicy, set_session_policy, session_policy  # noqa: E402

#: Today's photo thresholds first, then ever looser ones.
DEFAULT_SETS = ((0.6, 0.7, 0.7), (0.5, 0.7, 0.7), (0.4, 0.7, 0.7), (0.5, 0.6, 0.7), (0.5, 0.5, 0.6), (0.4, 0.5, 0.5),
                (0.4, 0.4, 0.5), (0.3, 0.4, 0.4))


@dataclass
class Setting:
    """One threshold set's pipeline and what it scored."""

    thresholds: tuple[float, float, float]
    live: LiveAnalyzer
    totals: Totals = field(default_factory=Totals)
    seconds: float = 0.0
    frames: int = 0

    @property
    def name(self) -> str:
        return "/".join(f"{t:g}" for t in self.thresholds)


def run(settings: list[Setting], clips: list[Clip]) -> list[str]:
    """Every clip through every setting, frame by frame; the clips' names in order."""
    progress = tqdm(total=sum(c.length for c in clips) * len(settings), desc="frames", unit="frame")
    for clip in clips:
        scores = []
        for setting in settings:
            setting.live.reset()
            scores.append(ClipScore())
            setting.totals.clips.append(scores[-1])
        for image, truths in clip.frames():
            for setting, score in zip(settings, scores):
                start = time.perf_counter()
                faces = [f for f in setting.live.process(image) if f.confirmed]
                setting.seconds += time.perf_counter() - start
                setting.frames += 1
                score.add(truths, [np.asarray(f.box, np.float64) for f in faces], [f.track_id for f in faces])
            progress.update(len(settings))
        progress.set_postfix_str(clip.name)
    progress.close()
    return [c.name for c in clips]


def _pct(pair: tuple[int, int]) -> str:
    covered, total = pair
    return f"{100 * covered / total:.0f} %" if total else "-"


def markdown(settings: list[Setting], clip_names: list[str]) -> str:
    """Two tables: totals per threshold set, then per clip (face-frames covered, stray tracks)."""
    lines = [
        "| thresholds | face-frames | masked | wrongly | bare | persons | delay | stray tracks | stray frames | ms/frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in settings:
        t = s.totals
        found, persons = t.persons
        delay = "-" if t.median_delay is None else f"{t.median_delay:g}"
        lines.append(
            f"| {s.name} | {_pct(t.share())} | {_pct(t.share('masked'))} | {_pct(t.share('wrong'))} | {_pct(t.share('bare'))} "
            f"| {found}/{persons} | {delay} | {t.stray_tracks} | {t.stray_frames} | {1000 * s.seconds / max(1, s.frames):.0f} |"
        )
    lines += ["", "| thresholds | " + " | ".join(clip_names) + " |", "|---|" + "---|" * len(clip_names)]
    for s in settings:
        cells = []
        for clip in s.totals.clips:
            covered = Totals([clip]).share()
            share = _pct(covered) if covered[1] else "no faces"
            cells.append(f"{share}, {clip.stray_tracks} ({clip.stray_frames})")
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("per clip: face-frames covered, stray tracks (stray frames)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", type=float, nargs=3, action="append", metavar=("P", "R", "O"),
                        help="a threshold set to try (repeat; default: " + ", ".join("/".join(map(str, s)) for s in DEFAULT_SETS) + ")")
    parser.add_argument("--per-shot", type=int, default=20, help="frames per face_mask_853 shot (default 20)")
    parser.add_argument("--web-masked", type=int, default=24, help="masked mask_web close-ups, drawn at random (default 24)")
    parser.add_argument("--per-photo", type=int, default=8, help="frames per mask_web close-up (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="which mask_web photos are drawn, and the sensor noise")
    parser.add_argument("--min-face", type=int, default=DetectorConfig().min_face_size, help="detector's min face, px (default %(default)s)")
    parser.add_argument("--threads", type=int, default=session_policy().intra_op_threads, help="onnxruntime threads (default %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)

    set_session_policy(SessionPolicy(intra_op_threads=args.threads))
    analyzer = FaceAnalyzer.with_default_models(DetectorConfig(min_face_size=args.min_face))
    sets = [tuple(t) for t in args.thresholds] if args.thresholds else list(DEFAULT_SETS)
    settings = [Setting(t, LiveAnalyzer(analyzer, replace(LiveConfig(), detector_thresholds=t))) for t in sets]
    names = run(settings, live_threshold_clips(args.seed, args.per_shot, args.web_masked, per_photo=args.per_photo))
    table = markdown(settings, names)
    print(f"\ndetector {analyzer.detector.model_dir}, min face {args.min_face}, classifier "
          f"{'none' if analyzer.classifier is None else 'shipped'}, {settings[0].frames} frames per set\n")
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
