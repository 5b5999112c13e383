"""Body pose: people found in a frame, 33 landmarks each, tracked through a clip, and drawn
as the OpenPose control image ControlNet's openpose models were trained on.

Models: MediaPipe's BlazePose detector (``pose_detection.tflite``: a 224x224 SSD that finds a
person's hips centre and a point giving the body's size and rotation) and its full landmark
model (``pose_landmark_full.tflite``: 33 landmarks with visibility, plus two auxiliary points
that give the next frame's region, on a 256x256 crop rotated so the body stands upright).
Both come from the pinned ``mediapipe`` wheel through :mod:`kinema.models.bundled`, and run on
LiteRT (``ai-edge-litert``, the ``bundled`` extra), imported only when a model is loaded.

A capability: frames (``(H, W, 3)`` RGB ``uint8``) in, arrays out, no file I/O. Coordinates
are pixels of the frame. :class:`PoseEstimator` answers one frame (``people``,
``has_people``); :class:`PoseTracker` follows people through consecutive frames, running the
detector only when someone may have appeared or been lost, and smooths each person's
landmarks with a One Euro filter (fast moves pass, jitter at rest does not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kinema.core.frames import check_frame

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_LANDMARKS = 33  # the body; the model gives 39, 33 and 34 being the alignment points

# MediaPipe's 33 body landmarks, in the model's order.
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

# The OpenPose COCO-18 body layout ControlNet's openpose models use.
OPENPOSE_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)
# Each OpenPose keypoint from MediaPipe's landmarks (the neck is between the shoulders).
_FROM_MEDIAPIPE: tuple[tuple[int, ...], ...] = tuple(
    (11, 12) if name == "neck" else (LANDMARK_NAMES.index(name),) for name in OPENPOSE_NAMES)

# OpenPose's limbs, drawn in this order (0-based keypoint indices), and its 18 colours (RGB):
# limb i and keypoint i share colour i.
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
OPENPOSE_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
STICK_WIDTH = 4
LIMB_ALPHA = 0.6


# --- geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Roi:
    """A square region of the frame, rotated by ``angle`` (radians, clockwise on screen): the
    crop's up points from ``center`` along ``(sin angle, -cos angle)``; ``size`` in pixels."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def crop_to_image(self, crop_size: int) -> np.ndarray:
        """The 2x3 affine matrix from pixels of a ``crop_size`` square crop to frame pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / crop_size
        ax, ay = np.array([c, s]) * k, np.array([-s, c]) * k
        origin = np.array([self.cx, self.cy]) - (ax + ay) * crop_size / 2
        return np.array([[ax[0], ay[0], origin[0]], [ax[1], ay[1], origin[1]]])

    def corners(self) -> np.ndarray:
        """The four corners in frame pixels, (4, 2)."""
        m = self.crop_to_image(1)
        unit = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)
        return unit @ m.T


def roi_from_keypoints(center: np.ndarray, end: np.ndarray, *, scale: float = 1.25) -> Roi:
    """MediaPipe's alignment: a square around ``center`` (the hips) rotated so the vector to
    ``end`` points up, twice their distance on a side, enlarged by ``scale``."""
    dx, dy = float(end[0] - center[0]), float(end[1] - center[1])
    size = 2.0 * math.hypot(dx, dy) * scale
    return Roi(float(center[0]), float(center[1]), size, math.atan2(dx, -dy))


def ssd_anchors(input_size: int = DETECTOR_SIZE, strides: Sequence[int] = (8, 16, 32, 32, 32),
                anchors_per_layer: int = 2) -> np.ndarray:
    """BlazePose's SSD anchor centres, ``(N, 2)`` in [0, 1]: layers of the same stride share
    one grid, ``anchors_per_layer`` anchors per cell each (fixed size, so only centres)."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = math.ceil(input_size / strides[i])
        per_cell = anchors_per_layer * (j - i)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """A person the detector found: ``box`` (x0, y0, x1, y1), ``keypoints`` (4, 2) (hips
    centre, body size/rotation point, shoulders centre, upper-body point), in pixels."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def roi(self) -> Roi:
        """The region the landmark model looks at for this person."""
        return roi_from_keypoints(self.keypoints[0], self.keypoints[1])


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, *,
                      input_size: int = DETECTOR_SIZE, min_score: float = 0.5,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SSD's raw output (``(N, 12)`` offsets, ``(N,)`` logits) as boxes ``(M, 4)`` xyxy,
    keypoints ``(M, 4, 2)`` and scores ``(M,)``, in [0, 1] of the detector's input, for the
    anchors scoring at least ``min_score``."""
    scores = _sigmoid(raw_scores.reshape(-1).astype(np.float64))
    keep = scores >= min_score
    raw, anchor = raw_boxes.reshape(len(scores), -1)[keep] / input_size, anchors[keep]
    centre = raw[:, 0:2] + anchor
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:12].reshape(-1, 4, 2) + anchor[:, None, :]
    return boxes, keypoints, scores[keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, *,
                 iou: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: the best remaining detection takes every
    other overlapping it by more than ``iou``, and the group's boxes and keypoints are averaged
    by score (the best one's score is kept)."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while len(order):
        overlap = box_iou(boxes[order[:1]], boxes[order])[0]
        overlap[0] = np.inf  # the best one is in its own group, even if its box is empty
        group = order[overlap > iou]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[order[0]])
        order = order[overlap <= iou]
    if not out_b:
        return np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0)
    return np.array(out_b), np.array(out_k), np.array(out_s)


def letterbox(width: int, height: int, size: int) -> tuple[float, float, float]:
    """``(scale, pad_x, pad_y)`` fitting a ``width`` x ``height`` frame centred in a square of
    ``size``: input pixel = frame pixel * scale + pad."""
    scale = size / max(width, height)
    return scale, (size - width * scale) / 2, (size - height * scale) / 2


# --- people and OpenPose -------------------------------------------------------------------

@dataclass
class Person:
    """One person in one frame: ``landmarks`` (33, 4) x, y (pixels), z (relative depth, in
    pixels of the crop's scale) and visibility in [0, 1]; ``presence`` the landmark model's
    confidence that a person is there; ``id`` stable through a clip (0 on single frames)."""

    landmarks: np.ndarray
    presence: float
    roi: Roi
    next_roi: Roi
    id: int = 0

    @property
    def box(self) -> np.ndarray:
        """The landmarks' bounds (x0, y0, x1, y1)."""
        xy = self.landmarks[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)])

    def openpose(self, min_visibility: float = 0.3) -> np.ndarray:
        """The person in the OpenPose layout: see :func:`to_openpose`."""
        return to_openpose(self.landmarks, min_visibility=min_visibility)


def to_openpose(landmarks: np.ndarray, *, min_visibility: float = 0.3) -> np.ndarray:
    """MediaPipe's 33 landmarks ``(33, >=3)`` (x, y, ..., visibility last) as OpenPose's 18
    body keypoints ``(18, 3)``: x, y, confidence; a keypoint less visible than
    ``min_visibility`` is ``0, 0, 0`` as in OpenPose. The neck is the shoulders' midpoint, as
    visible as the less visible shoulder."""
    lm = np.asarray(landmarks, dtype=np.float64)
    vis = lm[:, -1]
    out = np.zeros((len(OPENPOSE_NAMES), 3))
    for k, sources in enumerate(_FROM_MEDIAPIPE):
        idx = list(sources)
        conf = float(vis[idx].min())
        if conf >= min_visibility:
            out[k] = (*lm[idx, :2].mean(0), conf)
    return out


def draw_openpose(people: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """OpenPose's control image (``size`` is (w, h)): on black, each limb an ellipse of half
    width :data:`STICK_WIDTH` in its colour at :data:`LIMB_ALPHA`, every person's limbs in
    OpenPose's order, then each keypoint a disc of radius 4 in its colour. ``people`` are
    ``(18, 3)`` keypoints in pixels; one with confidence 0 is not drawn, nor its limbs."""
    import cv2

    width, height = size
    canvas = np.zeros((height, width, 3), np.uint8)
    people = [np.asarray(p, np.float64).reshape(len(OPENPOSE_NAMES), 3) for p in people]
    for limb, (a, b) in enumerate(OPENPOSE_LIMBS):
        for kp in people:
            if kp[a, 2] <= 0 or kp[b, 2] <= 0:
                continue
            (x0, y0), (x1, y1) = kp[a, :2], kp[b, :2]
            half_length = math.hypot(x1 - x0, y1 - y0) / 2
            angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
            polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)),
                                       (int(half_length), STICK_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, OPENPOSE_COLOURS[limb])
    canvas = (canvas * LIMB_ALPHA).astype(np.uint8)
    for k in range(len(OPENPOSE_NAMES)):
        for kp in people:
            if kp[k, 2] > 0:
                cv2.circle(canvas, (int(kp[k, 0]), int(kp[k, 1])), 4, OPENPOSE_COLOURS[k],
                           thickness=-1)
    return canvas


def openpose_json(people: Sequence[Person], *, min_visibility: float = 0.3) -> list[dict[str, Any]]:
    """The ``people`` entries of OpenPose's keypoint JSON: ``person_id`` and
    ``pose_keypoints_2d`` as x, y, confidence triples."""
    return [{"person_id": [p.id],
             "pose_keypoints_2d": [round(float(v), 3) for v in p.openpose(min_visibility).ravel()]}
            for p in people]


# --- smoothing -----------------------------------------------------------------------------

class OneEuro:
    """The One Euro filter (Casiez et al. 2012) on an array: a low-pass whose cutoff rises
    with speed, so slow jitter is smoothed and fast moves are followed without lag. Values are
    divided by ``scale`` (a person's size) before the speed is measured, so the same settings
    hold for a person near and far."""

    def __init__(self, *, min_cutoff: float = 0.3, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64) / scale
        if self._x is None or self._dx is None:
            self._x, self._dx = x, np.zeros_like(x)
            return x * scale
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        return self._x * scale


# --- the models ----------------------------------------------------------------------------

def _interpreter(path: Path, threads: int | None) -> Any:
    from kinema.core.extras import require

    litert = require("ai_edge_litert.interpreter", "bundled", feature="pose estimation")
    interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter: Any, tensor: np.ndarray) -> list[np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


class PoseEstimator:
    """BlazePose on single frames: :meth:`detect` people, :meth:`landmarks` of one region,
    :meth:`people` (both), :meth:`has_people` (the detector alone).

    ``detector`` and ``landmarker`` are model files (default: the bundled ``mediapipe``
    ones, a missing file being an error naming ``kinema models fetch-bundled mediapipe``).
    """

    def __init__(self, detector: str | Path | None = None, landmarker: str | Path | None = None,
                 *, threads: int | None = None, min_score: float = 0.5,
                 min_presence: float = 0.5, max_people: int = 6):
        if detector is None or landmarker is None:
            from kinema.models.bundled import model_file

            detector = detector or model_file("mediapipe", "pose_detection.tflite")
            landmarker = landmarker or model_file("mediapipe", "pose_landmark_full.tflite")
        self._detector = _interpreter(Path(detector), threads)
        self._landmarker = _interpreter(Path(landmarker), threads)
        self._anchors = ssd_anchors()
        self.min_score, self.min_presence, self.max_people = min_score, min_presence, max_people
        self.calls = {"detect": 0, "landmarks": 0}

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """The people the detector finds, best first (at most ``max_people``)."""
        import cv2

        frame = check_frame(frame, alpha=False)
        h, w = frame.shape[:2]
        scale, px, py = letterbox(w, h, DETECTOR_SIZE)
        m = np.array([[scale, 0, px], [0, scale, py]])
        tensor = cv2.warpAffine(frame, m, (DETECTOR_SIZE, DETECTOR_SIZE), flags=cv2.INTER_AREA
                                if scale < 1 else cv2.INTER_LINEAR)
        tensor = tensor.astype(np.float32)[None] / 127.5 - 1.0
        self.calls["detect"] += 1
        outputs = _run(self._detector, tensor)
        raw_boxes, raw_scores = sorted(outputs, key=lambda a: a.shape[-1], reverse=True)
        boxes, keypoints, scores = decode_detections(raw_boxes[0], raw_scores[0], self._anchors,
                                                     min_score=self.min_score)
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores)
        found = []
        for box, kp, score in zip(boxes[: self.max_people], keypoints, scores, strict=False):
            box = (box.reshape(2, 2) * DETECTOR_SIZE - (px, py)) / scale
            kp = (kp * DETECTOR_SIZE - (px, py)) / scale
            found.append(Detection(box.ravel(), kp, float(score)))
        return found

    def has_people(self, frame: np.ndarray) -> bool:
        """Whether the detector finds anyone in ``frame`` (one pass of the small model)."""
        return bool(self.detect(frame))

    def landmarks(self, frame: np.ndarray, roi: Roi) -> Person:
        """The landmark model on ``roi`` of ``frame``, mapped back to frame pixels."""
        import cv2

        frame = check_frame(frame, alpha=False)
        to_image = roi.crop_to_image(LANDMARK_SIZE)
        crop = cv2.warpAffine(frame, to_image, (LANDMARK_SIZE, LANDMARK_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)
        self.calls["landmarks"] += 1
        outputs = {o.size: o for o in _run(self._landmarker, crop.astype(np.float32)[None] / 255.0)}
        raw = outputs[195].reshape(39, 5)
        presence = float(outputs[1].reshape(()))
        xy = np.c_[raw[:, :2], np.ones(len(raw))] @ to_image.T
        scale = roi.size / LANDMARK_SIZE
        landmarks = np.c_[xy, raw[:, 2] * scale, _sigmoid(raw[:, 3])]
        return Person(landmarks[:NUM_LANDMARKS].copy(), presence, roi,
                      roi_from_keypoints(xy[33], xy[34]))

    def people(self, frame: np.ndarray) -> list[Person]:
        """Everyone in ``frame``: detection, then landmarks of each (ids 0, 1, ... by score)."""
        found = []
        for det in self.detect(frame):
            person = self.landmarks(frame, det.roi)
            if person.presence >= self.min_presence and not _duplicate(person, found):
                person.id = len(found)
                found.append(person)
        return found


def _duplicate(person: Person, others: Sequence[Person], iou: float = 0.5) -> bool:
    return bool(others) and float(box_iou(person.box, np.array([o.box for o in others])).max()) > iou


# --- tracking ------------------------------------------------------------------------------

class Estimator(Protocol):
    """What :class:`PoseTracker` needs: :class:`PoseEstimator`, or a stand-in in tests."""

    min_presence: float

    def detect(self, frame: np.ndarray) -> list[Detection]: ...

    def landmarks(self, frame: np.ndarray, roi: Roi) -> Person: ...


def match(previous: Sequence[np.ndarray], current: Sequence[np.ndarray], *,
          min_iou: float = 0.2, max_distance: float = 0.0) -> dict[int, int]:
    """Pairs ``{current index: previous index}`` of boxes (x0, y0, x1, y1), best overlap
    first; a pair needs an overlap of ``min_iou``, or centres at most ``max_distance``
    previous-box diagonals apart (for someone seen again after a gap); the others stay
    unmatched. Where overlaps tie (none at all, say) the nearest centres decide."""
    if not len(previous) or not len(current):
        return {}
    iou = box_iou(np.array(current), np.array(previous))
    pc, cc = np.array(previous), np.array(current)
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
    extent = np.maximum(np.hypot(*(pc[:, 2:] - pc[:, :2]).T), 1e-6)
    dist = np.linalg.norm(centre(cc)[:, None] - centre(pc)[None], axis=2) / extent[None]
    cost = iou - 1e-3 * dist
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-cost, axis=None, kind="stable"):
        c, p = divmod(int(flat), len(previous))
        if c in pairs or p in used or (iou[c, p] < min_iou and dist[c, p] > max_distance):
            continue
        pairs[c] = p
        used.add(p)
    return pairs


@dataclass
class _Track:
    id: int
    person: Person
    filter: OneEuro = field(default_factory=OneEuro)
    lost_at: int | None = None


class PoseTracker:
    """People through consecutive frames with stable ids.

    Each frame, every tracked person's landmarks are found in the region their previous
    landmarks give; the detector runs only on the first frame, when someone was lost, and
    every ``detect_every`` frames to find newcomers. A detection that overlaps a tracked
    person is that person; one that overlaps someone lost in the last ``max_lost`` frames
    brings back their id; others are new people. Landmarks are smoothed by a One Euro filter
    per person (``smooth=False`` for the raw ones); ``fps`` sets its time step.
    """

    def __init__(self, estimator: Estimator, *, fps: float = 30.0, detect_every: int = 10,
                 max_people: int = 6, max_lost: int = 15, smooth: bool = True,
                 filter_factory: Callable[[], OneEuro] = OneEuro):
        self.estimator = estimator
        self.dt = 1.0 / float(fps)
        self.detect_every, self.max_people, self.max_lost = detect_every, max_people, max_lost
        self.smooth, self.filter_factory = smooth, filter_factory
        self._tracks: list[_Track] = []
        self._lost: list[_Track] = []
        self._frame = -1
        self._last_detection: int | None = None
        self._next_id = 0

    def update(self, frame: np.ndarray) -> list[Person]:
        """The people in the next frame of the clip, each with its id (smoothed landmarks)."""
        self._frame += 1
        kept, lost = [], False
        for track in self._tracks:
            person = self.estimator.landmarks(frame, track.person.next_roi)
            if person.presence >= self.estimator.min_presence:
                track.person = person
                kept.append(track)
            else:
                track.lost_at, lost = self._frame, True
                self._lost.append(track)
        self._tracks = self._dedupe(kept)
        due = (self._last_detection is None or not self._tracks or lost
               or self._frame - self._last_detection >= self.detect_every)
        if due and len(self._tracks) < self.max_people:
            self._detect(frame)
        self._lost = [t for t in self._lost if t.lost_at is not None
                      and self._frame - t.lost_at <= self.max_lost]
        return [self._output(t) for t in sorted(self._tracks, key=lambda t: t.id)]

    def _detect(self, frame: np.ndarray) -> None:
        self._last_detection = self._frame
        detections = self.estimator.detect(frame)
        tracked = [t.person.box for t in self._tracks]
        taken = match(tracked, [d.box for d in detections], min_iou=0.3)
        for k, det in enumerate(detections):
            if k in taken or len(self._tracks) >= self.max_people:
                continue
            person = self.estimator.landmarks(frame, det.roi)
            if person.presence < self.estimator.min_presence:
                continue
            if self._tracks and _duplicate(person, [t.person for t in self._tracks]):
                continue
            back = match([t.person.box for t in self._lost], [person.box], max_distance=1.0)
            if 0 in back:
                track = self._lost.pop(back[0])
                track.person, track.lost_at = person, None
                track.filter = self.filter_factory()
            else:
                track = _Track(self._next_id, person, self.filter_factory())
                self._next_id += 1
            self._tracks.append(track)

    def _dedupe(self, tracks: list[_Track]) -> list[_Track]:
        """Two regions that converged on one person keep the older id."""
        out: list[_Track] = []
        for track in sorted(tracks, key=lambda t: t.id):
            if not _duplicate(track.person, [t.person for t in out]):
                out.append(track)
        return out

    def _output(self, track: _Track) -> Person:
        person = track.person
        landmarks = person.landmarks.copy()
        if self.smooth:
            scale = max(person.roi.size, 1.0)
            landmarks[:, :2] = track.filter(landmarks[:, :2], self.dt, scale)
        return replace(person, landmarks=landmarks, id=track.id)
