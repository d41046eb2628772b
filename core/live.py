"""Faces in a video at camera rate: track them between frames instead of searching every frame.

A full-frame MTCNN costs more than a camera frame's time on a small CPU, and most of that time
is spent proving that nothing new is in the picture. `LiveAnalyzer` runs it every
`detect_every` frames (and at the start, and at once whenever a tracked face is not re-found);
in between each tracked face is re-found by O-Net alone around where its track predicts it (one
small batch for all faces), and a face O-Net misses is searched with the whole cascade in a
region around it, scaled so the face is about O-Net's size: a few tiny pyramid levels. Faces are
classified when their track is new and then every `classify_every` frames, all due faces in one
batch, and each track's probabilities are smoothed over time, so labels do not flicker.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.analyzer import Face, FaceAnalyzer, HeadResult
from core.config import LiveConfig
from core.labels import Age, Gender, Mask
from core.mtcnn import Detection, nms
from core.tracker import Track, Tracker, associate, iou_matrix, sides

log = logging.getLogger(__name__)

#: Two tracks' detections that overlap more than this are one face.
REGION_NMS_IOU = 0.5
#: A face shrinking between frames is still found down to this fraction of its tracked size.
REGION_MIN_FACE = 0.6
#: A track seen in this many frames is a face, not a flicker of the detector: losing it calls for a
#: full search, and a full detection that misses it is double-checked by O-Net (below).
CONFIRMED_HITS = 3
#: Between two full detections a tracked face's side may change by at most this factor: beyond,
#: re-finding it from its own last box has drifted (seen on faces cut by the frame's edge).
MAX_SIZE_DRIFT = 1.3


@dataclass(frozen=True, kw_only=True)
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
    faces_classified: int = 0


@dataclass
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
        self._anchors: dict[int, float] = {}  # track id -> face side at its last full detection
        self._frame = 0
        self._last_full: int | None = None
        self._classifier = self.analyzer.classifier

    def process(self, image_bgr: np.ndarray) -> list[TrackedFace]:
        """The faces of the next frame (BGR uint8), in track id order."""
        self._frame += 1
        self.counters.frames += 1
        detections: list[Detection] | None = None
        due = self._last_full is None or self._frame - self._last_full >= self.config.detect_every
        if not due and any(t.missed == 0 for t in self.tracker.tracks):
            detections = self._search_regions(image_bgr)
        full = detections is None
        searched = 0  # detections from the full cascade (anchors are set from these only)
        if detections is None:
            detections = self.analyzer.detector.detect(image_bgr)
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
            self._anchors.update(zip((t.track_id for t in tracks[:searched]), sides(boxes[:searched]).tolist()))
        return self._label(image_bgr, detections, tracks)

    def _search_regions(self, image_bgr: np.ndarray) -> list[Detection] | None:
        """Each track's face re-found near where it is predicted, or None when a face seen last
        frame is not there any more (it moved too far, or someone came in front: the caller
        then searches the whole frame). First O-Net alone on every track in one batch; a track
        it misses is searched with the whole cascade in a region around it."""
        detector = self.analyzer.detector
        tracks = [t for t in self.tracker.tracks if t.missed == 0]  # the others wait for a full detection
        refined = detector.refine(image_bgr, np.array([t.predicted() for t in tracks]))
        self.counters.refined += sum(d is not None for d in refined)
        found: list[Detection] = []
        for track, detection in zip(tracks, refined):
            if detection is None or not self._plausible(track, detection):
                detection = self._search_region(image_bgr, track)
            if detection is None or not self._plausible(track, detection):
                if track.hits < CONFIRMED_HITS:
                    continue  # a detector flicker, gone again: not worth a full search
                return None
            found.append(detection)
        if len(found) > 1:  # two tracks that converged on one face: keep one
            keep = nms(np.array([d.box for d in found], np.float32), np.array([d.score for d in found], np.float32),
                       REGION_NMS_IOU)
            found = [found[i] for i in sorted(keep)]
        return found

    def _recover(self, image_bgr: np.ndarray, detections: list[Detection]) -> list[Detection]:
        """Confirmed faces seen last frame that the full cascade missed now, re-found by O-Net.

        MTCNN's first stage drops a face now and then for a few frames (masked faces most: the
        mask hides what P-Net looks for), and each drop would end the person's track and start a
        new id later; O-Net on the track's predicted box still sees it."""
        tracks = [t for t in self.tracker.tracks if t.missed == 0 and t.hits >= CONFIRMED_HITS]
        if not tracks:
            return []
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted() for t in tracks])
        paired = {t for t, _ in associate(predicted, boxes, self.config.min_iou, self.config.max_centroid_shift)}
        unpaired = [i for i in range(len(tracks)) if i not in paired]
        if not unpaired:
            return []
        lost = [tracks[i] for i in unpaired]
        refined = self.analyzer.detector.refine(image_bgr, predicted[unpaired])
        recovered: list[Detection] = []
        for track, detection in zip(lost, refined):
            if detection is None or not self._plausible(track, detection):
                continue
            taken = np.array([d.box for d in detections + recovered], np.float64).reshape(-1, 4)
            if len(taken) and iou_matrix(detection.box, taken).max() >= REGION_NMS_IOU:
                continue  # that face is already someone's
            recovered.append(detection)
        self.counters.recovered += len(recovered)
        return recovered

    def _plausible(self, track: Track, detection: Detection) -> bool:
        anchor = self._anchors.get(track.track_id)
        return anchor is None or 1 / MAX_SIZE_DRIFT <= float(sides(detection.box[None])[0]) / anchor <= MAX_SIZE_DRIFT

    def _search_region(self, image_bgr: np.ndarray, track: Track) -> Detection | None:
        """The full cascade in a region around the track: the detection that continues it, if any."""
        detector = self.analyzer.detector
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
                confirmed=track.hits >= CONFIRMED_HITS, **heads,
            ))
        return sorted(result, key=lambda f: f.track_id)
