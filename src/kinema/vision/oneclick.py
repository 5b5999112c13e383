"""One click, a real matte: the embedded default segmenter, on the bundled models.

Two small models that ship inside packages on PyPI (see :mod:`kinema.models.bundled`) find
the object; the classical tools make the edge follow the picture:

- **people**: MediaPipe's selfie segmentation (TFLite, ``ai-edge-litert``) gives a person
  probability for every pixel; BlazePose (:mod:`kinema.vision.pose`) finds people.
- **anything else**: U²-Net small (``u2netp``, ONNX, ``onnxruntime``, 320x320), a salient
  object model.

A click where the person model is sure, on someone the pose detector finds, is a click on a
person; anything else goes to the salient model. From the probability map the connected
component under the click is kept, computed twice: once on the whole frame to find the object,
then again on a crop around it, so the model sees it at its full input size (for a person,
the larger of the person and salient probabilities, so what the person holds comes along).
People standing together, one blob for the person model, are split by a watershed seeded
with each person's skeleton. The edge is refined to the picture: a guided filter of the
probabilities (or GrabCut seeded from them: sure foreground where the model is sure, sure
background where it is sure of the opposite, probable in between). A click the salient model
misses (a small object) zooms in on crops around the click until the click is salient, and
failing that is GrabCut as in the classic backend.

Negative clicks remove the component under them, or split it where it is the clicked one
(a watershed between the clicks along the picture's edges); a box crops the salient model's
input to the box and keeps what is inside it.

Frames in, masks out: no file I/O here beyond loading the model files once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.extras import require
from kinema.core.frames import Frame, Mask
from kinema.vision.base import Box, Candidate, ImageSegmenter, Point, Prompt

SALIENT = ("u2netp", "u2netp.onnx")
PERSON_WIDE = ("mediapipe", "selfie_segmentation_landscape.tflite")
PERSON_SQUARE = ("mediapipe", "selfie_segmentation.tflite")
SALIENT_SIZE = 320
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _cv2() -> Any:
    import cv2

    return cv2


@dataclass(frozen=True)
class Settings:
    """What the segmenter's decisions turn on (tuned on half of ``davis-train``)."""

    person_threshold: float = 0.5  # person probability under the click that makes it a person
    threshold: float = 0.4  # probability above which a pixel is the object
    sure_fg: float = 0.9  # GrabCut seeds: sure foreground above, sure background below sure_bg
    sure_bg: float = 0.1
    margin: float = 0.4  # the crop around a found object, as a fraction of its size per side
    refine: str = "guided"  # "guided", "grabcut" or "none"
    grabcut_iterations: int = 3
    band: int = 12  # pixels around the object's edge that GrabCut may change
    zoom_steps: int = 3  # crops around a click the salient model missed, halving each time
    core: float = 1.0  # probability of cores that split a blob of several objects (1: never; 0.95
    # mends flamingo but breaks hockey on the tuning half, so it is off)
    min_core: float = 0.02  # the smallest core, as a fraction of the blob


# --- the models ------------------------------------------------------------------------------


class SalientModel:
    """U²-Net small through onnxruntime: a salient-object probability per pixel."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = require("onnxruntime", "bundled")
        options = ort.SessionOptions()
        # no busy-waiting between runs: a click is one or two runs, and the editor's other
        # threads (and other programs) need the cores more than a few milliseconds of latency
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``float32`` probabilities of the size of ``rgb`` (``(H, W, 3)`` ``uint8``)."""
        cv2 = _cv2()
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (SALIENT_SIZE, SALIENT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = (x / max(float(x.max()), 1e-6) - _MEAN) / _STD
        out = self.session.run(None, {self.input: x.transpose(2, 0, 1)[None]})[0][0, 0]
        lo, hi = float(out.min()), float(out.max())
        out = (out - lo) / (hi - lo) if hi - lo > 1e-6 else np.zeros_like(out)
        return cv2.resize(out.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


class PersonModel:
    """MediaPipe selfie segmentation through ai-edge-litert: a person probability per pixel;
    the landscape model (256x144) for wide pictures, the square one (256x256) otherwise."""

    def __init__(self, wide: str | Path, square: str | Path, threads: int | None = None) -> None:
        litert = require("ai_edge_litert.interpreter", "bundled")
        self._interpreters = {}
        for key, path in (("wide", wide), ("square", square)):
            interpreter = litert.Interpreter(model_path=str(path), num_threads=threads or 2)
            interpreter.allocate_tensors()
            self._interpreters[key] = interpreter

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        h, w = rgb.shape[:2]
        interpreter = self._interpreters["wide" if w > 1.3 * h else "square"]
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        ih, iw = source["shape"][1:3]
        x = cv2.resize(rgb, (int(iw), int(ih)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        interpreter.set_tensor(source["index"], x[None])
        interpreter.invoke()
        out = interpreter.get_tensor(target["index"])[0, :, :, 0]
        return cv2.resize(np.clip(out, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def load_models(threads: int | None = None) -> tuple[SalientModel, PersonModel]:
    """The bundled models, verified (a missing one is an error naming
    ``kinema models fetch-bundled``)."""
    from kinema.models.bundled import model_file

    salient = model_file(*SALIENT)
    wide, square = model_file(*PERSON_WIDE), model_file(*PERSON_SQUARE)
    return SalientModel(salient, threads), PersonModel(wide, square, threads)


# --- from probabilities to a mask (no models: testable on synthetic maps) ------------------


def component_under(mask: Mask, points: list[Point]) -> Mask:
    """The connected components (8-connected) of ``mask`` that hold one of ``points``."""
    cv2 = _cv2()
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    keep = {int(labels[int(y), int(x)]) for x, y in points} - {0}
    return np.isin(labels, list(keep)) if keep else np.zeros_like(mask, bool)


def _watershed(frame: Frame, mask: Mask, markers: np.ndarray, outside: int) -> np.ndarray:
    """``cv2.watershed`` of ``markers`` inside ``mask``: everything outside it is painted one
    flat colour far from the frame's and marked ``outside``, so the mask's own border is an
    edge the outside region floods across last, and the seeds inside split the mask between
    them along the picture's edges. Returns the labels (``-1`` on the boundaries)."""
    cv2 = _cv2()
    image = np.ascontiguousarray(frame[..., :3][..., ::-1]).copy()
    inside = image[mask]
    far = np.where(inside.mean(0) > 127, 0, 255) if len(inside) else np.array([255, 0, 255])
    image[~mask] = far.astype(np.uint8)
    markers = markers.copy()
    markers[~mask] = outside
    cv2.watershed(image, markers)
    return markers


def remove_negatives(mask: Mask, frame: Frame, positives: list[Point], negatives: list[Point]) -> Mask:
    """``mask`` without what the negative clicks are on: a component under a negative click
    and no positive one goes; where a component holds both, a watershed on ``frame`` between
    the clicks splits it along the picture's edges and the negative side goes."""
    if not negatives or not mask.any():
        return mask
    cv2 = _cv2()
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    out = mask.copy()
    pos_labels = {int(labels[int(y), int(x)]) for x, y in positives}
    for x, y in negatives:
        label = int(labels[int(y), int(x)])
        if label and label not in pos_labels:
            out[labels == label] = False
    shared = [(x, y) for x, y in negatives if int(labels[int(y), int(x)]) in pos_labels - {0}]
    if shared and positives:
        markers = np.zeros(mask.shape, np.int32)
        for x, y in positives:
            cv2.circle(markers, (int(x), int(y)), 3, 1, -1)
        for x, y in shared:
            cv2.circle(markers, (int(x), int(y)), 3, 2, -1)
        markers = _watershed(frame, out, markers, 3)
        out &= markers != 2
        out = component_under(out, positives) if out.any() else out
    return out


def split_by_cores(mask: Mask, prob: np.ndarray, frame: Frame, positives: list[Point],
                   high: float, min_core: float = 0.02) -> Mask:
    """The part of ``mask`` around the clicked core, where it joins several objects: the
    components of ``prob >= high`` inside it (each at least ``min_core`` of the mask's area)
    seed a watershed on ``frame``, and the regions of the cores the clicks fall in are kept
    (a bird and the bush it stands in front of are one blob at the threshold, two cores)."""
    if high >= 1 or not mask.any():
        return mask
    cv2 = _cv2()
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask & (prob >= high)).astype(np.uint8),
                                                           connectivity=8)
    area = int(mask.sum())
    cores = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_core * area]
    if len(cores) < 2:
        return mask
    markers = np.zeros(mask.shape, np.int32)
    for k in cores:
        markers[labels == k] = k
    outside = n + 1
    return _keep_clicked(frame, mask, markers, outside, positives)


def _keep_clicked(frame: Frame, mask: Mask, markers: np.ndarray, outside: int,
                  positives: list[Point]) -> Mask:
    """The watershed regions of ``markers`` (seeds inside ``mask``) that the clicks fall in,
    with the boundary pixels between kept and dropped regions; ``mask`` if none is clicked."""
    cv2 = _cv2()
    markers = _watershed(frame, mask, markers, outside)
    chosen = {int(markers[int(y), int(x)]) for x, y in positives} - {-1, 0, outside}
    if not chosen:
        return mask
    out = mask & np.isin(markers, list(chosen))
    edge = mask & (markers == -1) & cv2.dilate(out.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out = component_under(out | edge, positives)
    return out if out.any() else mask


# BlazePose landmark pairs drawn as each person's seed: the torso, arms, legs, nose to shoulders.
_LIMBS = ((11, 12), (11, 23), (12, 24), (23, 24), (11, 13), (13, 15), (12, 14), (14, 16),
          (23, 25), (25, 27), (24, 26), (26, 28), (0, 11), (0, 12))


def separate_people(mask: Mask, frame: Frame, people: list[np.ndarray],
                    positives: list[Point]) -> Mask:
    """The part of ``mask`` that belongs to the person the clicks are on, where it holds
    several: each person's skeleton (``(33, 2)`` landmarks, pixels) seeds a watershed on
    ``frame`` inside ``mask``, and the region the clicks fall in is kept."""
    if len(people) < 2 or not mask.any():
        return mask
    cv2 = _cv2()
    h, w = mask.shape
    markers = np.zeros((h, w), np.int32)
    seeded = 0
    for k, xy in enumerate(people, 1):
        skeleton = np.zeros((h, w), np.uint8)
        for a, b in _LIMBS:
            pa, pb = xy[a], xy[b]
            cv2.line(skeleton, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 1, 3)
        skeleton = skeleton.astype(bool) & mask & (markers == 0)
        if skeleton.any():
            markers[skeleton] = k
            seeded += 1
    if seeded < 2:
        return mask
    outside = len(people) + 1
    return _keep_clicked(frame, mask, markers, outside, positives)


def refine(frame: Frame, prob: np.ndarray, mask: Mask, settings: Settings = Settings(),
           positives: tuple[Point, ...] = (), negatives: tuple[Point, ...] = ()) -> Mask:
    """``mask`` (the chosen component of ``prob > threshold``) with its edge moved onto the
    picture's: GrabCut in a band around it, seeded from ``prob`` (sure foreground above
    ``sure_fg``, sure background below ``sure_bg``, probable either side of the threshold),
    the clicks certain; or a guided filter of ``prob``; then the component under the clicks."""
    if settings.refine == "none" or not mask.any():
        return mask
    cv2 = _cv2()
    h, w = mask.shape
    band = max(settings.band, 1)
    ys, xs = np.nonzero(mask)
    y0, y1 = max(int(ys.min()) - 2 * band, 0), min(int(ys.max()) + 2 * band + 1, h)
    x0, x1 = max(int(xs.min()) - 2 * band, 0), min(int(xs.max()) + 2 * band + 1, w)
    crop, p, m = frame[y0:y1, x0:x1, :3], prob[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    if settings.refine == "guided":
        from kinema.vision.maskops import soft_matte

        soft = soft_matte(crop, np.where(m, p, np.minimum(p, settings.threshold * 0.5)), radius=4)
        out_crop = soft > settings.threshold
    else:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        near = cv2.dilate(m.astype(np.uint8), kernel).astype(bool)
        inner = cv2.erode(m.astype(np.uint8), kernel).astype(bool)
        seeds = np.where(m, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        seeds[m & (p >= settings.sure_fg)] = cv2.GC_FGD
        seeds[inner] = cv2.GC_FGD
        seeds[~m & (p <= settings.sure_bg)] = cv2.GC_BGD
        seeds[~near] = cv2.GC_BGD
        for x, y in positives:
            if x0 <= x < x1 and y0 <= y < y1:
                seeds[int(y) - y0, int(x) - x0] = cv2.GC_FGD
        for x, y in negatives:
            if x0 <= x < x1 and y0 <= y < y1:
                seeds[int(y) - y0, int(x) - x0] = cv2.GC_BGD
        if not ((seeds == cv2.GC_BGD) | (seeds == cv2.GC_PR_BGD)).any() or \
                not ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).any():
            return mask
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        image = np.ascontiguousarray(crop[..., ::-1])
        cv2.grabCut(image, seeds, None, bgd, fgd, settings.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
        out_crop = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = out_crop
    if positives:
        kept = component_under(out, list(positives))
        out = kept if kept.any() else mask
    return out


def grow_box(box: tuple[int, int, int, int], margin: float, w: int, h: int,
             minimum: int = 32) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` grown by ``margin`` of its size per side, at least ``minimum``
    pixels a side, inside the ``w`` x ``h`` frame."""
    x0, y0, x1, y1 = box
    dx = max((x1 - x0) * margin, (minimum - (x1 - x0)) / 2, 0)
    dy = max((y1 - y0) * margin, (minimum - (y1 - y0)) / 2, 0)
    return (max(int(x0 - dx), 0), max(int(y0 - dy), 0), min(int(np.ceil(x1 + dx)), w),
            min(int(np.ceil(y1 + dy)), h))


def bounds(mask: Mask) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of a non-empty mask (exclusive ends)."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# --- the segmenter ---------------------------------------------------------------------------


class OneClickSegmenter(ImageSegmenter):
    """Masks from clicks or a box with the bundled person and salient-object models.

    ``salient`` and ``person`` are loaded models (see :func:`load_models`; ``None`` loads the
    bundled ones, an error naming ``kinema models fetch-bundled`` when they are not here).
    """

    def __init__(self, salient: Any = None, person: Any = None, pose: Any = "bundled", *,
                 settings: Settings = Settings(), threads: int | None = None) -> None:
        if salient is None or person is None:
            loaded_salient, loaded_person = load_models(threads)
            salient, person = salient or loaded_salient, person or loaded_person
        if pose == "bundled":
            from kinema.vision.pose import PoseEstimator

            pose = PoseEstimator(threads=threads)
        self.salient, self.person, self.pose, self.settings = salient, person, pose, settings
        self.last_kind = ""  # "person", "salient", "box" or "fallback": what made the last mask

    def segment(self, frame: Frame, prompt: Prompt) -> list[Candidate]:
        h, w = frame.shape[:2]
        if prompt.mask is not None:
            if prompt.mask.shape != (h, w):
                raise InvalidArgumentError(f"the prompt mask is {prompt.mask.shape[::-1]}, "
                                           f"the frame is {w}x{h}")
            return [Candidate(prompt.mask.astype(bool), 1.0)]
        if prompt.text:
            raise InvalidArgumentError("the one-click backend cannot read text prompts",
                                       hint="turn the words into boxes with a detector first (--text does)")
        for x, y in prompt.points:
            if not (0 <= x < w and 0 <= y < h):
                raise InvalidArgumentError(f"point ({x:g}, {y:g}) is outside the {w}x{h} frame")
        rgb = np.ascontiguousarray(frame[..., :3])
        positives = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label == 1]
        negatives = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label == 0]
        if prompt.box is not None:
            mask = self._in_box(rgb, prompt.box, positives, negatives)
        elif positives:
            mask = self._from_clicks(rgb, positives, negatives)
        else:
            raise InvalidArgumentError("only background clicks: click on the object too")
        return [Candidate(mask, 1.0)]

    # one place per prompt kind

    def _from_clicks(self, rgb: Frame, positives: list[Point], negatives: list[Point]) -> Mask:
        s = self.settings
        person = self.person(rgb)
        at = float(np.mean([person[int(y), int(x)] for x, y in positives]))
        people = self._people_at(rgb, positives) if at >= s.person_threshold else None
        if people is not None:
            self.last_kind = "person"
            prob, mask = self._two_pass(rgb, self._person_or_salient, person, positives)
            mask = separate_people(mask, rgb, people, positives)
        else:
            self.last_kind = "salient"
            prob, mask = self._two_pass(rgb, self.salient, None, positives)
            if not mask.any():
                prob, mask = self._zoom(rgb, positives)
        if not mask.any():
            self.last_kind = "fallback"
            from kinema.vision.classic import grabcut_mask

            return grabcut_mask(rgb, Prompt(frame=0, points=tuple(positives) + tuple(negatives),
                                            labels=(1,) * len(positives) + (0,) * len(negatives)))
        mask = remove_negatives(mask, rgb, positives, negatives)
        return refine(rgb, prob, mask, s, tuple(positives), tuple(negatives))

    def _person_or_salient(self, rgb: Frame) -> np.ndarray:
        """Person or salient object, per pixel (the larger probability): what a person holds
        or rides (a racket, a stroller) is salient but not a person, and DAVIS counts it in."""
        return np.maximum(self.person(rgb), self.salient(rgb))

    def _people_at(self, rgb: Frame, positives: list[Point]) -> list[np.ndarray] | None:
        """The landmarks ``(33, 2)`` of each person the pose model finds, when one of them
        stands where the clicks are (``None`` otherwise: not a person, whatever the person
        segmentation says, which also fires on animals). Without a pose model the person
        segmentation decides alone (an empty list)."""
        if self.pose is None:
            return []
        people = [p.landmarks[:, :2] for p in self.pose.people(rgb)]
        for xy in people:
            x0, y0 = xy.min(0)
            x1, y1 = xy.max(0)
            pad = 0.15 * max(x1 - x0, y1 - y0)
            if all(x0 - pad <= x <= x1 + pad and y0 - pad <= y <= y1 + pad for x, y in positives):
                return people
        return None

    def _two_pass(self, rgb: Frame, model: Any, whole: np.ndarray | None,
                  positives: list[Point]) -> tuple[np.ndarray, Mask]:
        """The model on the whole frame, the component under the clicks, then the model again
        on a crop around that component; the probabilities (frame-sized) and the mask."""
        s = self.settings
        h, w = rgb.shape[:2]
        if whole is None:
            whole = model(rgb)
        mask = component_under(whole > s.threshold, positives)
        if not mask.any():
            return whole, mask
        x0, y0, x1, y1 = grow_box(bounds(mask), s.margin, w, h)
        prob = np.zeros_like(whole)
        prob[y0:y1, x0:x1] = model(rgb[y0:y1, x0:x1])
        second = component_under(prob > s.threshold, positives)
        if not second.any():
            return whole, mask
        return prob, split_by_cores(second, prob, rgb, positives, s.core, s.min_core)

    def _zoom(self, rgb: Frame, positives: list[Point]) -> tuple[np.ndarray, Mask]:
        """Crops around the clicks, halving, until the salient model finds what is under them."""
        s = self.settings
        h, w = rgb.shape[:2]
        xs, ys = [p[0] for p in positives], [p[1] for p in positives]
        cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        half_w, half_h = w / 4, h / 4
        prob = np.zeros(rgb.shape[:2], np.float32)
        for _ in range(s.zoom_steps):
            x0, y0 = max(int(cx - half_w), 0), max(int(cy - half_h), 0)
            x1, y1 = min(int(cx + half_w), w), min(int(cy + half_h), h)
            prob = np.zeros(rgb.shape[:2], np.float32)
            prob[y0:y1, x0:x1] = self.salient(rgb[y0:y1, x0:x1])
            mask = component_under(prob > s.threshold, positives)
            if mask.any():
                return prob, mask
            half_w, half_h = half_w / 2, half_h / 2
        return prob, np.zeros(rgb.shape[:2], bool)

    def _in_box(self, rgb: Frame, box: Box, positives: list[Point], negatives: list[Point]) -> Mask:
        s = self.settings
        h, w = rgb.shape[:2]
        self.last_kind = "box"
        bx0, by0 = max(int(box[0]), 0), max(int(box[1]), 0)
        bx1, by1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            raise InvalidArgumentError(f"the box {box} is outside the {w}x{h} frame or too small")
        x0, y0, x1, y1 = grow_box((bx0, by0, bx1, by1), 0.05, w, h)
        prob = np.zeros(rgb.shape[:2], np.float32)
        prob[y0:y1, x0:x1] = self.salient(rgb[y0:y1, x0:x1])
        inside = np.zeros(rgb.shape[:2], bool)
        inside[by0:by1, bx0:bx1] = True
        prob[~inside] = 0
        found = prob > s.threshold
        mask = component_under(found, positives) if positives else _large_components(found)
        if not mask.any():
            from kinema.vision.classic import grabcut_mask

            self.last_kind = "fallback"
            return grabcut_mask(rgb, Prompt(frame=0, box=box, points=tuple(positives) + tuple(negatives),
                                            labels=(1,) * len(positives) + (0,) * len(negatives)))
        mask = remove_negatives(mask, rgb, positives, negatives)
        return refine(rgb, prob, mask, s, tuple(positives), tuple(negatives)) & inside


def _large_components(mask: Mask, fraction: float = 0.2) -> Mask:
    """The components of ``mask`` at least ``fraction`` of the largest one's area."""
    cv2 = _cv2()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [k + 1 for k, area in enumerate(areas) if area >= fraction * areas.max()]
    return np.isin(labels, keep)
