"""A soak run: the real main window plays a video of real scenes for a long time, and we watch it.

A live view runs all day, so what matters is what a few seconds cannot show: memory that creeps up,
a toolkit that leaks references to None until the interpreter dies (PySide6 6.12.0 on Python 3.11),
a thread that stops, a crash at exit. `run_soak` plays a generated clip (the bundled sample scenes,
panned and zoomed) through the whole pipeline, over and over, and samples the process every few
seconds; `SoakReport.problems` says what went wrong. Used by `tests/test_soak.py` (about 40 s),
`bench/soak.py` (30 minutes or any length) and `mask-checker --self-test` (a few seconds).
"""
from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.config import assets_dir

log = logging.getLogger(__name__)

#: The clip: long enough that one play is a real run, short enough to write in a second.
CLIP_SECONDS = 10.0
CLIP_FPS = 30.0
CLIP_SIZE = (640, 480)
#: Samples taken before this fraction of the run are warm-up (models, caches, the first allocations).
WARM_UP_FRACTION = 0.3
#: Memory may settle a little after warm-up; more than this over the run is a leak.
RSS_GROWTH_LIMIT_MIB = 40.0
#: Memory is judged only on runs this long: the first seconds are all warm-up.
RSS_MIN_SECONDS = 30.0
#: sys.getrefcount(None) wanders by a few dozen with what holds None at the moment (seen: +-30);
#: a leaking toolkit loses ~700 a second.
NONE_DRIFT_LIMIT = 500


def rss_mib() -> float:
    """Resident memory now (Linux: /proc; elsewhere the peak, which still shows growth)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def none_refs() -> int:
    """sys.getrefcount(None): falls steadily when a binding drops references it does not own."""
    return sys.getrefcount(None)


def bool_refs() -> tuple[int, int]:
    """sys.getrefcount(True), sys.getrefcount(False): PySide6 6.12.0 leaks those too."""
    return sys.getrefcount(True), sys.getrefcount(False)


def clip_frames(seconds: float = CLIP_SECONDS, fps: float = CLIP_FPS, size: tuple[int, int] = CLIP_SIZE) -> Iterator[np.ndarray]:
    """Camera-like frames from the bundled sample scenes: each scene is shown through a window
    that slides and zooms in, so faces move, grow and leave the frame."""
    scenes = [cv2.imread(str(p)) for p in sorted((assets_dir() / "samples").glob("*.jpg"))]
    scenes = [s for s in scenes if s is not None]
    if not scenes:
        raise FileNotFoundError(f"no sample scenes in {assets_dir() / 'samples'}")
    width, height = size
    frames = max(1, round(seconds * fps))
    per_scene = max(1, frames // len(scenes))
    for i in range(frames):
        scene = scenes[min(len(scenes) - 1, i // per_scene)]
        t = (i % per_scene) / max(1, per_scene - 1)
        h, w = scene.shape[:2]
        zoom = 1.0 - 0.35 * t  # the window shrinks to 65 % of the picture
        win_w, win_h = min(w, h * width / height) * zoom, min(h, w * height / width) * zoom
        x0 = (w - win_w) * (0.5 + 0.5 * np.sin(2 * np.pi * t))
        y0 = (h - win_h) * 0.5
        crop = scene[int(y0) : int(y0 + win_h), int(x0) : int(x0 + win_w)]
        yield cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)


def write_clip(path: Path, seconds: float = CLIP_SECONDS, fps: float = CLIP_FPS, size: tuple[int, int] = CLIP_SIZE) -> Path:
    """`clip_frames` as an MJPG video (what the soak plays, as a user would open a file)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write an MJPG clip here")
    try:
        for frame in clip_frames(seconds, fps, size):
            writer.write(frame)
    finally:
        writer.release()
    return path


@dataclass(frozen=True)
class SoakSample:
    """The process at one moment of the run."""

    seconds: float
    rss_mib: float
    none_refs: int
    bool_refs: tuple[int, int]  # sys.getrefcount(True), sys.getrefcount(False): 6.12.0 leaks those too
    frames_shown: int
    frames_dropped: int
    fps: float  # frames shown per second since the previous sample
    faces: int  # faces in the newest frame


@dataclass
class SoakReport:
    """What a soak run saw; `problems` is empty when it went well."""

    seconds: float
    plays: int = 0
    samples: list[SoakSample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def after_warm_up(self) -> list[SoakSample]:
        """The samples memory and reference counts are judged on (the last two if too few)."""
        start = self.seconds * WARM_UP_FRACTION
        kept = [s for s in self.samples if s.seconds >= start]
        return kept if len(kept) >= 2 else self.samples[-2:]

    @property
    def rss_growth_mib(self) -> float:
        """Resident memory at the end over the first sample after warm-up."""
        kept = self.after_warm_up()
        return kept[-1].rss_mib - kept[0].rss_mib if len(kept) >= 2 else 0.0

    @property
    def none_drift(self) -> int:
        """How far None's reference count fell after warm-up (positive: references lost)."""
        kept = self.after_warm_up()
        return kept[0].none_refs - kept[-1].none_refs if len(kept) >= 2 else 0

    @property
    def bool_drift(self) -> int:
        """How far True's or False's reference count fell after warm-up (the larger fall)."""
        kept = self.after_warm_up()
        if len(kept) < 2:
            return 0
        return max(a - b for a, b in zip(kept[0].bool_refs, kept[-1].bool_refs))

    @property
    def frames_shown(self) -> int:
        return self.samples[-1].frames_shown if self.samples else 0

    @property
    def problems(self) -> list[str]:
        found = list(self.errors)
        if len(self.samples) < 2:
            found.append(f"only {len(self.samples)} samples taken")
        if self.frames_shown == 0:
            found.append("no frame was shown")
        elif len(self.samples) >= 4 and self.samples[-1].frames_shown == self.samples[-3].frames_shown:
            found.append(f"frames stopped arriving after {self.frames_shown}")
        if self.seconds >= RSS_MIN_SECONDS and self.rss_growth_mib > RSS_GROWTH_LIMIT_MIB:
            found.append(f"resident memory grew by {self.rss_growth_mib:.0f} MiB after warm-up")
        if self.none_drift > NONE_DRIFT_LIMIT:
            found.append(f"sys.getrefcount(None) fell by {self.none_drift}: the GUI toolkit leaks references to None")
        if self.bool_drift > NONE_DRIFT_LIMIT:
            found.append(f"the reference count of True or False fell by {self.bool_drift}: the GUI toolkit leaks them")
        return found

    def to_dict(self) -> dict:
        return {
            **asdict(self), "rss_growth_mib": self.rss_growth_mib, "none_drift": self.none_drift, "bool_drift": self.bool_drift,
            "frames_shown": self.frames_shown, "problems": self.problems,
        }


def run_soak(
    seconds: float,
    workdir: Path,
    sample_every_s: float = 2.0,
    on_sample: Callable[[SoakSample], None] | None = None,
) -> SoakReport:
    """Play the clip in the real main window for `seconds`, restarting it whenever it ends.

    Needs a QApplication (created here if there is none). The window uses a throw-away settings
    file in `workdir` and no camera; the window is closed at the end, threads and all.
    """
    from PySide6.QtCore import QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    from app.capture import CaptureState
    from app.gui import create_application
    from app.sources import Source

    app = create_application()
    from app.main_window import MainWindow  # widgets need the QApplication first

    clip = Source.file(write_clip(workdir / "soak.avi"))
    store = QSettings(str(workdir / "soak.ini"), QSettings.Format.IniFormat)
    window = MainWindow(store=store, camera_probe=list)
    report = SoakReport(seconds=seconds)
    window.live.engineFailed.connect(lambda message: report.errors.append(f"engine failed: {message}"))

    closing = False

    def on_state(state: CaptureState, message: str) -> None:
        if closing:
            return  # an end reported while the window closes must not start another play
        if state is CaptureState.ENDED:
            report.plays += 1
            window.open_source(clip)  # as a user would press Start again
        elif state is CaptureState.FAILED:
            report.errors.append(f"capture failed: {message}")

    window.live.stateChanged.connect(on_state)
    window.resize(960, 720)
    window.show()
    window.open_source(clip)
    start = last_time = time.monotonic()
    last_frames = 0
    next_sample = start + sample_every_s
    try:
        while (now := time.monotonic()) - start < seconds:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if now < next_sample:
                time.sleep(0.005)
                continue
            shown = window.frames_shown
            sample = SoakSample(
                seconds=round(now - start, 2), rss_mib=round(rss_mib(), 1), none_refs=none_refs(),
                bool_refs=bool_refs(),
                frames_shown=shown, frames_dropped=window.live.slot.dropped,
                fps=round((shown - last_frames) / max(1e-6, now - last_time), 1),
                faces=len(window.last_result.faces) if window.last_result is not None else 0,
            )
            report.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            last_time, last_frames, next_sample = now, shown, next_sample + sample_every_s
    finally:
        closing = True
        window.close()  # stops the capture and inference threads
        QApplication.processEvents()
    return report


def format_sample(sample: SoakSample) -> str:
    return (
        f"{sample.seconds:8.1f} s  RSS {sample.rss_mib:7.1f} MiB  None refs {sample.none_refs:7d}  "
        f"True/False refs {sample.bool_refs[0]}/{sample.bool_refs[1]}  "
        f"shown {sample.frames_shown:7d}  dropped {sample.frames_dropped:6d}  {sample.fps:5.1f} frames/s  "
        f"faces {sample.faces}"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m app.soak --seconds 40 [--json report.json]`: exit 0 when the run showed no problem."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m app.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to play (default 40)")
    parser.add_argument("--sample-every", type=float, default=2.0, metavar="S", help="seconds between samples (default 2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="mask-checker-soak-") as tmp:
        report = run_soak(args.seconds, Path(tmp), args.sample_every, on_sample=lambda s: print(format_sample(s), flush=True))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))
    print(
        f"soak: {report.seconds:.0f} s, {report.plays} plays, {report.frames_shown} frames shown, "
        f"RSS {report.rss_growth_mib:+.1f} MiB after warm-up, None refs {-report.none_drift:+d}"
    )
    for problem in report.problems:
        print(f"soak problem: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
