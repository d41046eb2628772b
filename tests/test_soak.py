"""What runs all day, run long enough to fail: the live window, the live pipeline, a big batch.

A clip of a few seconds cannot show a crash at 20 s (PySide6 6.12.0's None leak) or memory that
creeps up by a few kB a frame. These checks run each part for tens of seconds or thousands of
items and look at the process: still alive, None's reference count flat, resident memory flat
after warm-up, and a clean exit. `bench/soak.py` runs the same for 30 minutes or more.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.soak import NONE_DRIFT_LIMIT, RSS_GROWTH_LIMIT_MIB, bool_refs, clip_frames, none_refs, rss_mib

REPO = Path(__file__).resolve().parents[1]
#: The window soak: longer than the ~20 s the leaking toolkit took to kill the live view.
WINDOW_SOAK_SECONDS = 40


@pytest.mark.slow
def test_the_live_window_survives_a_long_video_and_quits_cleanly(tmp_path):
    """The real main window, offscreen, plays a video of real scenes through the real models for
    40 s (restarting it when it ends), in its own process so a crash shows as a dead process."""
    report_path = tmp_path / "soak.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-m", "app.soak", "--seconds", str(WINDOW_SOAK_SECONDS), "--sample-every", "2", "--json", str(report_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=WINDOW_SOAK_SECONDS + 240, check=False,
    )
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert "Fatal Python error" not in result.stderr, output
    assert report_path.is_file(), f"the process died before the end of the run (exit {result.returncode}):\n{output}"
    report = json.loads(report_path.read_text())
    assert report["plays"] >= 3, f"the 10 s clip should have been played through at least 3 times: {report['plays']}"
    shown = [s["frames_shown"] for s in report["samples"]]
    assert shown[-1] >= 10 * WINDOW_SOAK_SECONDS, f"only {shown[-1]} frames shown in {WINDOW_SOAK_SECONDS} s"
    assert all(b > a for a, b in zip(shown, shown[1:])), f"frames stopped arriving at some point: {shown}"
    assert report["none_drift"] < NONE_DRIFT_LIMIT, f"None's reference count fell by {report['none_drift']}"
    assert report["bool_drift"] < NONE_DRIFT_LIMIT, f"True's or False's reference count fell by {report['bool_drift']}"
    assert report["rss_growth_mib"] < RSS_GROWTH_LIMIT_MIB, f"memory grew by {report['rss_growth_mib']:.0f} MiB after warm-up"
    assert report["problems"] == [], report["problems"]
    # Quitting: the window closed, every thread stopped and the interpreter exited normally.
    assert result.returncode == 0, output
    assert "QThread: Destroyed while thread is still running" not in result.stderr, output


def _flat(rss: list[float], warm_up: int) -> float:
    """Growth from the end of warm-up to the end, by medians of a few samples (noise-tolerant)."""
    after = rss[warm_up:]
    third = max(1, len(after) // 3)
    return float(np.median(after[-third:]) - np.median(after[:third]))


@pytest.mark.slow
def test_the_live_pipeline_keeps_its_memory_over_thousands_of_frames():
    """core's LiveAnalyzer (tracker, per-track label history, region searches) over 1,800 frames:
    what it keeps per track must go when the track goes."""
    from core.analyzer import FaceAnalyzer
    from core.live import LiveAnalyzer

    live = LiveAnalyzer(FaceAnalyzer.with_default_models())
    frames = list(clip_frames(seconds=10.0, fps=30.0))  # 300 frames, played 6 times
    rss, tracks_seen = [], set()
    for _ in range(6):
        for frame in frames:
            tracks_seen.update(face.track_id for face in live.process(frame))
        rss.append(rss_mib())
    assert len(tracks_seen) >= 10, "the clip should have made tracks come and go"
    growth = _flat(rss, warm_up=2)
    assert growth < 10.0, f"resident memory grew by {growth:.1f} MiB over 1,200 frames after warm-up: {rss}"


@pytest.mark.slow
def test_a_long_batch_keeps_its_memory(tmp_path):
    """A batch of 800 photos (a stand-in for 100 k: results are streamed to the CSV, not kept): 400
    photos, then the same 400 again. The first pass is the warm-up: onnxruntime's arena grows to the
    largest detector and classifier batches those photos ask for (one of them late in the clip), so
    memory must stay flat over the second pass, where every shape has been seen before. An injected
    leak of 100 KB a photo fails it (28 MiB); one of 40 KB did not (freed heap pages absorb it)."""
    from core.analyzer import FaceAnalyzer
    from core.batch import BatchJob

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for i, frame in enumerate(clip_frames(seconds=20.0, fps=20.0, size=(320, 240))):
        name = f"{i:04d}.jpg"
        cv2.imwrite(str(first / name), frame)
        os.link(first / name, second / name)
    rss: list[float] = []

    def progress(result, summary) -> None:
        if summary.done % 50 == 0:
            rss.append(rss_mib())

    summary = BatchJob(paths=[first, second], out=tmp_path / "results.csv").run(FaceAnalyzer.with_default_models(), progress=progress)
    assert summary.done == 800 and summary.errors == 0
    growth = _flat(rss, warm_up=8)
    assert growth < 10.0, f"resident memory grew by {growth:.1f} MiB over the second 400 photos: {rss}"


@pytest.mark.slow
def test_the_capture_thread_keeps_its_memory_and_none_over_thousands_of_frames(qapp, tmp_path):
    """The capture worker (OpenCV decoding, the newest-frame slot, a Qt signal per frame) reads a
    real-scene video 15 times unpaced, on a QThread, while another thread takes the frames.

    Run in a fresh process: in the suite's process, hundreds of earlier tests (onnxruntime and torch
    arenas, threads they left) move its resident memory by themselves, which a 10 MiB bound on
    this worker alone cannot tell apart from a leak."""
    import os
    import subprocess
    import sys

    if os.environ.get("MASK_CHECKER_SOAK_CHILD") != "1":
        node = f"{__file__}::test_the_capture_thread_keeps_its_memory_and_none_over_thousands_of_frames"
        env = {**os.environ, "MASK_CHECKER_SOAK_CHILD": "1"}
        child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node], env=env,
                               capture_output=True, text=True, timeout=600)
        assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
        return
    import threading

    from PySide6.QtCore import Qt, QThread

    from app.capture import CaptureState, CaptureWorker
    from app.frames import LatestFrame
    from app.soak import write_clip
    from app.sources import Source

    clip = Source.file(write_clip(tmp_path / "clip.avi"))
    slot = LatestFrame()
    taken = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal taken
        while not done.is_set():
            taken += slot.take() is not None
            done.wait(0.002)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    rss, states = [], []
    singletons: dict[str, list[int]] = {"None": [], "True": [], "False": []}
    try:
        for play in range(15):
            worker = CaptureWorker(clip, play + 1, slot, pace_files=False)
            worker.stateChanged.connect(lambda _session, state, _message: states.append(state))
            thread = QThread()
            worker.moveToThread(thread)
            thread.started.connect(worker.run)
            worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # as app/live.py does
            thread.start()
            assert thread.wait(60_000), "the capture thread did not finish its play"
            qapp.processEvents()
            rss.append(rss_mib())
            for name, count in zip(singletons, (none_refs(), *bool_refs())):
                singletons[name].append(count)
    finally:
        done.set()
        consumer.join()
    assert states.count(CaptureState.ENDED) == 15 and taken >= 15 * 50
    growth = _flat(rss, warm_up=3)
    assert growth < 10.0, f"resident memory grew by {growth:.1f} MiB over 12 plays: {rss}"
    for name, counts in singletons.items():  # 6.12.0 leaks references to True/False on this path too
        assert counts[3] - counts[-1] < NONE_DRIFT_LIMIT, f"{name}'s reference count fell: {counts}"


def _alive(kind: type) -> int:
    import gc

    gc.collect()
    return sum(type(o) is kind for o in gc.get_objects())  # not isinstance: it wakes torch's deprecated aliases


@pytest.mark.slow
def test_finished_sessions_and_batches_free_their_workers(make_window, qtbot, tmp_path, samples_dir):
    """Each Start makes a capture worker and each batch a batch worker, on threads of their own;
    once a thread has finished, nothing may keep its worker (a deleteLater() sent to a finished
    thread never runs: one worker leaked per Start, seen in the 30-minute soak)."""
    from app.batch_worker import BatchWorker
    from app.capture import CaptureState, CaptureWorker
    from app.soak import write_clip
    from app.sources import Source

    window = make_window()
    clip = Source.file(write_clip(tmp_path / "short.avi", seconds=1.0))
    for _ in range(4):
        ended = []
        window.live.stateChanged.connect(lambda state, _m: ended.append(state) if state is CaptureState.ENDED else None)
        window.open_source(clip)
        qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    qtbot.waitUntil(lambda: not window.live._threads, timeout=10_000)  # every capture thread done
    qtbot.wait(200)  # deferred deletions
    assert _alive(CaptureWorker) == 0, f"{_alive(CaptureWorker)} capture workers outlived their threads"

    for _ in range(3):
        with qtbot.waitSignal(window.batch.finished, timeout=120_000):
            assert window.start_batch([samples_dir])
        qtbot.waitUntil(lambda: not window.batch.running, timeout=10_000)
    qtbot.wait(200)
    assert _alive(BatchWorker) == 0, f"{_alive(BatchWorker)} batch workers outlived their threads"
