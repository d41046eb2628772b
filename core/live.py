"""Faces in a video at camera rate: track them between frames instead of searching every frame.

A full-frame MTCNN costs more than a camera frame's time on a small CPU, and most of that time
is spent proving that nothing new is in the picture. `LiveAnalyzer` runs it every
`detect_every` frames (and at the start, and at once whenever a tracked face is not re-found);
in between each tracked face is re-found by O-Net alone around where its track predicts it (one
small batch for all faces), and a face O-Net misses is searched with the whole cascade in a
region around it, scaled so the face is about O-Net's size: a few tiny pyramid levels. Faces are
classified when their track is new and then every `classify_every` frames, all due faces in one
batch, and each track's probabilities are smoothed over time, so labels do not flicker.

Through a zoom or a pan (tests/test_live_zoom_pan.py): a re-found face is placed by O-Net but
sized half by the cascade's last measure of it, grown at the rate measured between two full
detections, since O-Net re-fed its own box shrinks a large blurred face frame after frame; one
face is one track (of two boxes on a face the larger is kept and a second track on it ends);
when the cascade reads a face at another size than before (a masked face boxed whole, then by
its upper half) it looks again next frame. With nobody in view and a still picture no search
runs at all (`LiveConfig.idle_skip`): an empty corridor costs a thumbnail comparison a frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from core.analyzer import Face, FaceAnalyzer, HeadResult
from core.config import LiveConfig
from core.labels import Age, Gender, Mask
from core.mtcnn import MTCNN, Detection
from core.tracker import Track, Tracker, associate, iou_matrix, sides

log = logging.getLogger(__name__)

#: A face shrinking between frames is still found down to this fraction of its tracked size.
REGION_MIN_FACE = 0.6
#: A track seen in this many frames is a face, not a flicker of the detector: losing it calls for a
#: full search, and a full detection that misses it is double-checked by O-Net (below).
CONFIRMED_HITS = 3
#: Between two full detections a tracked face's side may change by at most this factor: beyond,
#: re-finding it from its own last box has drifted (seen on faces cut by the frame's edge).
MAX_SIZE_DRIFT = 1.3
#: A face's size changes by at most this factor per frame (a camera zooming in at 30 fps grows
#: faces by about 1 %): the rate measured between two full detections is capped at this.
MAX_GROWTH = 1.03
#: A re-found face's size is this much O-Net's and the rest the cascade's last measure, grown at
#: its rate: O-Net alone places a face well but sizes it poorly (re-fed its own box it shrinks a
#: large blurred face frame after frame), the cascade's measure alone lags a zoom's changes.
REFIND_SIZE_WEIGHT = 0.5
#: Between full detections a re-found face must overlap its predicted box by this IoU: a face
#: that jumped or changed shape is left to a full search (and the cascade) to settle.
REFIND_MIN_IOU = 0.6
#: Two detections overlapping more than this (IoU), or one lying this much inside the other
#: (intersection over the smaller box), are one face: the better is kept, the other dropped.
DUPLICATE_IOU = 0.4
DUPLICATE_INSIDE = 0.7
#: A track unseen for at most this many frames is still looked for by O-Net where it is
#: predicted (a masked face the cascade drops for a moment keeps its box).
REFIND_MISSED = 3
#: A re-found face with less than this share of its box inside the frame is let go: it is
#: leaving, the cascade no longer sees it, and a box mostly outside the picture shows nothing.
MIN_VISIBLE = 0.5


@dataclass(frozen=True, kw_only=True, eq=False)
class TrackedFace(Face):
    """A face in a video frame: its track id and labels smoothed over the track's history."""

    track_id: int
    classified_ago: int = 0  # frames since the classifier last saw this face (0: this frame)
    confirmed: bool = True  # seen in CONFIRMED_HITS frames: a face, not a flicker of the detector


@dataclass
class LiveCounters:
    """Where the work went since the last reset (the bench and tests read these)."""

    frames: int = 0
    full_detections: int = 0
    refined: int = 0  # faces re-found by O-Net alone
    region_searches: int = 0  # faces O-Net missed, searched with the whole cascade around their track
    recovered: int = 0  # confirmed faces a full detection missed, kept by O-Net on their track
    idle_skipped: int = 0  # frames with no face tracked and a still picture: no search at all
    faces_classified: int = 0


@dataclass(frozen=True)
class _Anchor:
    """A track's size as the full cascade last measured it, and how fast it grows per frame.

    Between full detections a re-found face is sized half by O-Net and half by this (times its
    growth): O-Net alone places a face well but sizes it poorly (it shrinks a large blurred face
    frame after frame), and the growth measured between two full detections follows a zoom."""

    side: float
    aspect: float  # width / height
    frame: int
    growth: float = 1.0

    def side_at(self, frame: int) -> float:
        return self.side * self.growth ** (frame - self.frame)

    def resized(self, newer: _Anchor, frame: int) -> bool:
        """Whether `newer` measures the face at another size than this anchor expected."""
        return not 1 / MAX_SIZE_DRIFT <= newer.side / self.side_at(frame) <= MAX_SIZE_DRIFT

    def then(self, box: np.ndarray, frame: int) -> _Anchor:
        """The anchor after a new full detection `box` of the same face at `frame`."""
        side = float(sides(np.asarray(box, np.float64)[None])[0])
        newer = _Anchor(side, _aspect(box), frame)
        if self.resized(newer, frame):
            return newer  # the detector changed its mind, not the face its size: no growth from that
        rate = (side / self.side) ** (1.0 / max(1, frame - self.frame))
        growth = float(np.clip(0.5 * self.growth + 0.5 * rate, 1.0 / MAX_GROWTH, MAX_GROWTH))
        return _Anchor(side, _aspect(box), frame, growth)


def _aspect(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 1e-6) / max(box[3] - box[1], 1e-6))


@dataclass(eq=False)
class _Labels:
    """A track's smoothed head probabilities and the frame they were last updated."""

    probs: dict[type, np.ndarray] = field(default_factory=dict)
    frame: int = 0

    def blend(self, face: Face, weight: float, frame: int) -> None:
        for enum, head in ((Mask, face.mask), (Gender, face.gender), (Age, face.age)):
            if head is None:
                continue
            new = np.asarray(head.probs, dtype=np.float64)
            old = self.probs.get(enum)
            self.probs[enum] = new if old is None else (1.0 - weight) * old + weight * new
        self.frame = frame

    def head(self, enum: type) -> HeadResult | None:
        probs = self.probs.get(enum)
        if probs is None:
            return None
        return HeadResult(enum(int(np.argmax(probs))), tuple(float(p) for p in probs))


#: The thumbnail a frame is compared by for idle_skip (LiveConfig), width x height.
THUMBNAIL = (80, 60)


def _thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """A small grey copy of the frame (area-averaged: sensor noise mostly cancels out)."""
    small = cv2.resize(image_bgr, THUMBNAIL, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGRA2GRAY if small.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return small.astype(np.float32)


def _visible(box: np.ndarray, shape: tuple[int, ...]) -> float:
    """The share of a box inside a frame of this (height, width, ...) shape."""
    height, width = shape[:2]
    inside = max(0.0, min(box[2], width) - max(box[0], 0)) * max(0.0, min(box[3], height) - max(box[1], 0))
    return float(inside / max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))


def _duplicate(box: np.ndarray, others: list[np.ndarray]) -> bool:
    """Whether `box` is a face already among `others` (DUPLICATE_IOU / DUPLICATE_INSIDE)."""
    if not others:
        return False
    others_arr = np.array(others, np.float64).reshape(-1, 4)
    box = np.asarray(box, np.float64)
    if iou_matrix(box, others_arr).max() > DUPLICATE_IOU:
        return True
    w = np.clip(np.minimum(box[2], others_arr[:, 2]) - np.maximum(box[0], others_arr[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others_arr[:, 3]) - np.maximum(box[1], others_arr[:, 1]), 0, None)
    smaller = np.minimum((box[2] - box[0]) * (box[3] - box[1]),
                         (others_arr[:, 2] - others_arr[:, 0]) * (others_arr[:, 3] - others_arr[:, 1]))
    return bool((w * h / np.maximum(smaller, 1e-6)).max() > DUPLICATE_INSIDE)


def _dedupe(detections: list[Detection]) -> list[Detection]:
    """One detection per face, in the given order of preference (the first of two is kept):
    two boxes on one face would become two tracks, and two ids on one person."""
    kept: list[Detection] = []
    for detection in detections:
        if not _duplicate(detection.box, [d.box for d in kept]):
            kept.append(detection)
    return kept


class LiveAnalyzer:
    """Feed the frames of one video in order to `process`; each call returns its tracked faces.

    Wraps a FaceAnalyzer (its detector config and classifier may change between frames; a new
    classifier starts every track's smoothing afresh). One caller at a time; `reset` for a new video.
    """

    def __init__(self, analyzer: FaceAnalyzer, config: LiveConfig | None = None) -> None:
        self.analyzer = analyzer
        self.config = config or LiveConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video or camera)."""
        config = self.config
        self.tracker = Tracker(config.min_iou, config.max_centroid_shift, config.max_missed)
        self.counters = LiveCounters()
        self._labels: dict[int, _Labels] = {}
        self._anchors: dict[int, _Anchor] = {}  # track id -> its size at its last full detection
        self._frame = 0
        self._last_full: int | None = None
        self._searched_thumbnail: np.ndarray | None = None  # the picture at the last full search, small
        self._recheck = False  # a full detection next frame: the last one changed its mind about a face
        self._classifier = self.analyzer.classifier
        self._detector = self.analyzer.detector

    def live_detector(self) -> MTCNN:
        """The detector the pipeline searches with: the analyzer's (whose config the app may swap
        between frames), at LiveConfig.detector_thresholds when those are set. Live can be looser
        than a photo: a face is shown only once seen in CONFIRMED_HITS frames."""
        base = self.analyzer.detector
        thresholds = self.config.detector_thresholds
        if thresholds is None or tuple(thresholds) == base.config.thresholds:
            return base
        return base.with_config(replace(base.config, thresholds=tuple(thresholds)))

    def process(self, image_bgr: np.ndarray) -> list[TrackedFace]:
        """The faces of the next frame (BGR uint8), in track id order."""
        self._frame += 1
        self.counters.frames += 1
        self._detector = self.live_detector()  # one detector for the whole frame
        detections: list[Detection] | None = None
        due = self._last_full is None or self._frame - self._last_full >= self.config.detect_every or self._recheck
        seen = any(t.missed == 0 for t in self.tracker.tracks)
        thumbnail = _thumbnail(image_bgr) if self.config.idle_skip and not seen else None
        if not due and seen:
            detections = self._search_regions(image_bgr)
        elif not seen and self._still(thumbnail):
            detections = []  # nobody in view and nothing moved since the last search
            self.counters.idle_skipped += 1
        full = detections is None
        searched = 0  # detections from the full cascade (anchors are set from these only)
        if detections is None:
            if self.config.idle_skip:
                self._searched_thumbnail = thumbnail if thumbnail is not None else _thumbnail(image_bgr)
            # Of two boxes on one face the larger: MTCNN boxes a large masked face now whole, now by a half.
            found = sorted(self._detector.detect(image_bgr), key=lambda d: -float(sides(d.box[None])[0]))
            detections = _dedupe(found)
            searched = len(detections)
            detections += self._recover(image_bgr, detections)
            self._last_full = self._frame
            self.counters.full_detections += 1
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        tracks = self.tracker.update(boxes)
        alive = {t.track_id for t in self.tracker.tracks}
        self._anchors = {k: v for k, v in self._anchors.items() if k in alive}
        self._labels = {k: v for k, v in self._labels.items() if k in alive}
        if full:
            self._recheck = False
            for track, box in zip(tracks[:searched], boxes[:searched]):
                anchor = self._anchors.get(track.track_id)
                if anchor is None:
                    self._anchors[track.track_id] = _Anchor(float(sides(box[None])[0]), _aspect(box), self._frame)
                    continue
                self._anchors[track.track_id] = anchor.then(box, self._frame)
                # The cascade read this face at another size than last time (whole, then by its
                # upper half): a second look next frame settles which reading holds.
                self._recheck |= anchor.resized(self._anchors[track.track_id], self._frame)
        return self._label(image_bgr, detections, tracks)

    def _still(self, thumbnail: np.ndarray | None) -> bool:
        """Whether a full search may be skipped: idle_skip is on, the last full search is less
        than idle_detect_every frames old and the picture has not changed since (LiveConfig)."""
        config = self.config
        if thumbnail is None or self._searched_thumbnail is None or self._last_full is None:
            return False
        if self._frame - self._last_full >= config.idle_detect_every:
            return False
        moved = np.abs(thumbnail - self._searched_thumbnail) > config.motion_level
        return float(moved.mean()) <= config.motion_share

    def _search_regions(self, image_bgr: np.ndarray) -> list[Detection] | None:
        """Each track's face re-found near where it is predicted, or None when a face seen last
        frame is not there any more (it moved too far, or someone came in front: the caller
        then searches the whole frame). First O-Net alone on every track in one batch; a track
        seen last frame that it misses is searched with the whole cascade in a region around it.
        Tracks unseen for a few frames are tried by O-Net too, and simply wait when it misses."""
        detector = self._detector
        # Seen last frame first, then the longest-lived: of two tracks on one face, that one stays.
        tracks = sorted((t for t in self.tracker.tracks if t.missed <= REFIND_MISSED), key=lambda t: (t.missed, -t.hits))
        predicted = np.array([t.predicted() for t in tracks]).reshape(-1, 4)
        refined = detector.refine(image_bgr, predicted)
        self.counters.refined += sum(d is not None for d in refined)
        found: list[Detection] = []
        duplicates: set[int] = set()
        for track, box, detection in zip(tracks, predicted, refined):
            if (detection is None or not self._plausible(track, detection, box)) and track.missed == 0:
                detection = self._search_region(image_bgr, track)
            if detection is None or not self._plausible(track, detection, box):
                if track.missed > 0 or track.hits < CONFIRMED_HITS:
                    continue  # gone again (a detector flicker), or still lost: not worth a full search
                return None
            detection = self._refit(track, detection)
            if _visible(detection.box, image_bgr.shape) < MIN_VISIBLE:
                continue  # leaving the picture
            if _duplicate(detection.box, [d.box for d in found]):
                duplicates.add(track.track_id)  # converged on a face another track holds
                continue
            found.append(detection)
        self.tracker.retire(duplicates)
        return found

    def _recover(self, image_bgr: np.ndarray, detections: list[Detection]) -> list[Detection]:
        """Confirmed faces seen in the last few frames that the full cascade missed now, re-found
        by O-Net.

        MTCNN's first stage drops a face now and then for a few frames (masked faces most: the
        mask hides what P-Net looks for), and each drop would end the person's track and start a
        new id later; O-Net on the track's predicted box still sees it."""
        tracks = [t for t in self.tracker.tracks if t.missed <= REFIND_MISSED and t.hits >= CONFIRMED_HITS]
        if not tracks:
            return []
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted() for t in tracks])
        paired = {t for t, _ in associate(predicted, boxes, self.config.min_iou, self.config.max_centroid_shift)}
        unpaired = [i for i in range(len(tracks)) if i not in paired]
        if not unpaired:
            return []
        lost = [tracks[i] for i in unpaired]
        refined = self._detector.refine(image_bgr, predicted[unpaired])
        recovered: list[Detection] = []
        duplicates: set[int] = set()
        for track, detection in zip(lost, refined):
            if detection is None or not self._plausible(track, detection):
                continue
            detection = self._refit(track, detection)
            if _visible(detection.box, image_bgr.shape) < MIN_VISIBLE:
                continue  # leaving the picture
            if _duplicate(detection.box, [d.box for d in detections + recovered]):
                duplicates.add(track.track_id)  # that face is already someone's: one track per face
                continue
            recovered.append(detection)
        self.tracker.retire(duplicates)
        self.counters.recovered += len(recovered)
        return recovered

    def _plausible(self, track: Track, detection: Detection, predicted: np.ndarray | None = None) -> bool:
        """Whether a re-found face continues the track: about the size the cascade last measured
        (grown at its rate), and, between full detections, close to where it was predicted (a
        face that jumped or changed shape is left to a full search to settle)."""
        if predicted is not None and iou_matrix(detection.box, predicted)[0, 0] < REFIND_MIN_IOU:
            return False
        anchor = self._anchors.get(track.track_id)
        if anchor is None:
            return True
        ratio = float(sides(np.asarray(detection.box, np.float64)[None])[0]) / anchor.side_at(self._frame)
        return 1 / MAX_SIZE_DRIFT <= ratio <= MAX_SIZE_DRIFT

    def _refit(self, track: Track, detection: Detection) -> Detection:
        """A re-found face's box: centred where O-Net put it, sized REFIND_SIZE_WEIGHT by O-Net
        and the rest by the cascade's last measure of the face, grown at its rate."""
        found = np.asarray(detection.box, np.float64)
        centre = (found[:2] + found[2:]) / 2
        half = (found[2:] - found[:2]) / 2
        anchor = self._anchors.get(track.track_id)
        if anchor is not None:
            side = anchor.side_at(self._frame)
            expected = np.array([side * np.sqrt(anchor.aspect), side / np.sqrt(anchor.aspect)]) / 2
            half = REFIND_SIZE_WEIGHT * half + (1.0 - REFIND_SIZE_WEIGHT) * expected
        box = np.concatenate([centre - half, centre + half]).astype(np.float32)
        return Detection(box=box, score=detection.score, landmarks=detection.landmarks)

    def _search_region(self, image_bgr: np.ndarray, track: Track) -> Detection | None:
        """The full cascade in a region around the track: the detection that continues it, if any."""
        detector = self._detector
        predicted = track.predicted()
        region, scale, min_face = self._region(predicted, detector.config.min_face_size)
        hits = detector.detect_in_region(image_bgr, region, scale, min_face)
        self.counters.region_searches += 1
        pairs = associate(predicted[None, :], np.array([d.box for d in hits]).reshape(-1, 4),
                          self.config.min_iou, self.config.max_centroid_shift)
        return hits[pairs[0][1]] if pairs else None

    def _region(self, box: np.ndarray, min_face_size: int) -> tuple[tuple[int, int, int, int], float, float]:
        """The square searched around a track's predicted box, the scale that brings its face to
        region_face_px, and the smallest face looked for there (px after scaling)."""
        side = float(max(box[2] - box[0], box[3] - box[1], 1.0))
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = side * self.config.region_scale / 2
        region = (int(cx - half), int(cy - half), int(np.ceil(cx + half)), int(np.ceil(cy + half)))
        scale = min(1.0, self.config.region_face_px / side)
        return region, scale, scale * max(float(min_face_size), REGION_MIN_FACE * side)

    def _label(self, image_bgr: np.ndarray, detections: list[Detection], tracks: list[Track]) -> list[TrackedFace]:
        if self.analyzer.classifier is not self._classifier:  # a new model: old smoothing does not apply
            self._classifier = self.analyzer.classifier
            self._labels.clear()
        if self._classifier is not None:
            every = self.config.classify_every
            due = [i for i, t in enumerate(tracks)
                   if t.track_id not in self._labels or self._frame - self._labels[t.track_id].frame >= every]
            if due:
                faces = self.analyzer.classify(image_bgr, [detections[i] for i in due])
                self.counters.faces_classified += len(due)
                for i, face in zip(due, faces):
                    labels = self._labels.setdefault(tracks[i].track_id, _Labels())
                    weight = 1.0 if not labels.probs else self.config.smoothing
                    labels.blend(face, weight, self._frame)
        result = []
        for detection, track in zip(detections, tracks):
            labels = self._labels.get(track.track_id)
            heads = {}
            if labels is not None:
                heads = {"mask": labels.head(Mask), "gender": labels.head(Gender), "age": labels.head(Age)}
            result.append(TrackedFace(
                box=np.asarray(detection.box, np.float32), landmarks=detection.landmarks, det_score=detection.score,
                track_id=track.track_id, classified_ago=self._frame - labels.frame if labels else 0,
                confirmed=track.hits >= CONFIRMED_HITS, age_boundary=self.analyzer.age_boundary, **heads,
            ))
        return sorted(result, key=lambda f: f.track_id)
