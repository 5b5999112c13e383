"""The classical tracker guided by the bundled models: a person prior, saliency to re-find and guide.

:class:`GuidedTracker` is :class:`~kinema.vision.classic.ClassicTracker` (DIS optical flow,
colour models, the rigidly moved whole shape) with one more piece of evidence in each frame:

- **a person prior.** On a keyframe the tracker asks MediaPipe's person segmentation
  (:class:`~kinema.vision.oneclick.PersonModel`, about 3 ms a pass) how well it explains the
  object's mask. Where it does (a person, alone), every next frame runs it on the rectangle
  the object can reach, and its probability is weighed with motion and colour in the
  boundary band; where the model and the moved mask disagree near the object, the band
  widens to let it decide (limbs flow loses, background flow dragged along).
- **saliency to re-find.** When the object is lost (its mask empty, or a small fraction of
  what the keyframe had: a full occlusion, a jump flow cannot follow), U²-Net small
  (:class:`~kinema.vision.oneclick.SalientModel`, a few tenths of a second) looks at the
  whole frame; the salient component whose colours best match the object's keyframe colour
  model, and whose size is plausible, restarts the track.
- **saliency as a prior, now and then.** Where U²-Net small's map fits the keyframe's mask
  (a salient object), every tenth frame it runs on the rectangle the object can reach (so
  the object fills more of its 320x320 input than in the whole frame) and is weighed, at
  half the person prior's weight, like the person prior: it mends slow drift (a large
  animal taking the rock behind it along) without letting an occluder in front in. On the
  frames between passes the last map, moved along by the flow, is weighed again at a
  quarter of the person prior's weight (``salient_carry``): the drift is held back every
  frame, not only every tenth, at the cost of a remap.
- **colours refitted at confident frames.** Where a model's map agrees with the mask
  (IoU >= 0.85), a third of the keyframe's colour model is replaced by this frame's, so the
  colours follow lighting and pose.
- **finer flow on a crop.** Where the objects (with a margin) fill under 70 % of a frame at
  most 854 px wide, DIS flow runs on that crop only, one pyramid level finer (finest scale
  1 instead of 2), for about the cost of the whole frame's: thin, fast parts (wings, legs)
  keep their own motion instead of the background's.
- **the edge snapped to the frame's.** Each new mask goes through a guided filter (radius
  4 px) with the frame's grey levels as guide, which decides the pixels within 3 px of its
  edge: the edge moves onto the picture's own (a mast, a leg, a wing's outline), and that
  mask is what the next frame starts from. On flat ground it only rounds sharp corners.

Its motion prior is also sharper than the classic one (``prior_sigma`` 1.5 px instead of half
the band): thin parts motion carries are not given up to colour.

Frames in, masks out; like the classic tracker it holds per object its keyframes, its last
mask and a few numbers, not the masks it produced: memory is flat in the clip's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kinema.core.frames import Frame, FrameSource, Mask
from kinema.vision.base import Prompt
from kinema.vision.classic import ClassicTracker, _bounds, _colour_index, _ColourModel


def _cv2() -> Any:
    import cv2

    return cv2


@dataclass(frozen=True)
class GuidedSettings:
    """What the guided tracker's decisions turn on (tuned on half of ``davis-train``)."""

    person_fit: float = 0.75 # IoU of the person model with the keyframe mask that makes it a person
    person_weight: float = 1.0  # exponent of the person probability in the posterior
    salient_fit: float = 0.8  # IoU of the salient model with the keyframe mask that makes it a guide
    salient_every: int = 10  # frames between salient passes over a salient object (0: never)
    salient_weight: float = 0.5
    refit_fit: float = 0.85  # IoU of a model with the mask that refits the colour anchor (0: never)
    refit_weight: float = 0.3  # how much of the anchor a confident frame replaces
    refit_every: int = 10  # frames between refits from the person prior
    lost_fraction: float = 0.15  # mask area under this fraction of the keyframe's: lost, re-find
    lost_match: float = 0.4  # colour match under this fraction of the keyframe's: lost too
    refind_margin: float = 0.1  # how much better than the mask it has a found one must match
    shrunk_fraction: float = 0.5  # mask area under this fraction of the keyframe's: look again
    refind_every: int = 5  # frames between re-find attempts while lost
    refind_min_score: float = 0.5  # colour match (0..1) a salient component needs
    fine_area: float = 0.7  # flow on a crop around the objects, finer, where it is under this
    # fraction of the frame (0: never)
    fine_scale: int = 1  # DIS finest scale on such a crop (the frame's flow uses 2)
    flow_margin: int = 64  # pixels around the objects the crop's flow covers
    dis_preset: str = "fast"  # DIS optical flow preset: "ultrafast", "fast" or "medium"
    edge_radius: int = 4  # guided filter radius that snaps the mask's edge to the frame's (0: never)
    edge_eps: float = 1e-3  # its regularisation (intensities 0..1)
    edge_band: int = 3  # pixels either side of the edge it may move
    salient_carry: float = 0.25  # weight of the last salient map, moved along by the flow, on the
    # frames between passes (0: only on the pass's frame)


class GuidedTracker(ClassicTracker):
    """The classic tracker with the bundled models' evidence (see the module docstring).

    ``person`` and ``salient`` are callables ``rgb (H, W, 3) uint8 -> float32 (H, W)``
    probabilities (:func:`kinema.vision.oneclick.load_models` gives the bundled ones); either
    may be ``None`` to go without it.
    """

    def __init__(self, frames: FrameSource, *, person: Any = None, salient: Any = None,
                 settings: GuidedSettings = GuidedSettings(), **options: Any) -> None:
        options.setdefault("prior_sigma", 1.5)  # sharper than the classic band / 2: thin parts stay
        super().__init__(frames, **options)
        self.person = person
        self.salient = salient
        self.settings = settings
        self._kind: dict[int, str] = {}  # "person" or "" per object
        self._key_area: dict[int, int] = {}
        self._lost_for: dict[int, int] = {}
        self._key_match: dict[int, float] = {}
        self._evidence_count: dict[int, int] = {}
        self._confident: dict[int, bool] = {}
        self._carried: dict[int, np.ndarray] = {}  # the last salient map, moved along, per object
        self._carrying: dict[int, bool] = {}
        self._flows_now: tuple[np.ndarray, np.ndarray, float] | None = None
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                   "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._flow = cv2.DISOpticalFlow_create(presets[settings.dis_preset])
        self._fine_flow = cv2.DISOpticalFlow_create(presets[settings.dis_preset])
        self._fine_flow.setFinestScale(settings.fine_scale)

    # -- keyframes: what kind of object is it? ------------------------------------------------

    def add_prompt(self, prompt: Prompt) -> dict[int, Mask]:
        masks = super().add_prompt(prompt)
        obj = prompt.object_id
        mask = self._keyframes[obj][prompt.frame]
        self._key_area[obj] = int(np.count_nonzero(mask))
        self._lost_for[obj] = 0
        self._key_match[obj] = max(self._colour_match(obj, self.frames[prompt.frame], mask), 1e-3)
        self._kind[obj] = ""
        if self.person is not None and mask.any():
            frame = self.frames[prompt.frame]
            y0, y1, x0, x1 = self._reach(mask)
            prob = self.person(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]))
            fit = _iou(prob > 0.5, mask[y0:y1, x0:x1])
            if fit >= self.settings.person_fit:
                self._kind[obj] = "person"
        if not self._kind[obj] and self.salient is not None and self.settings.salient_every and mask.any():
            frame = self.frames[prompt.frame]
            y0, y1, x0, x1 = self._reach(mask)
            prob = self.salient(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]))
            if _iou(prob > 0.5, mask[y0:y1, x0:x1]) >= self.settings.salient_fit:
                self._kind[obj] = "salient"
        self._evidence_count[obj] = 0
        return masks

    def kind(self, obj: int) -> str:
        """``"person"`` or ``"salient"``: which model guides ``obj`` each frame; ``""``: none."""
        return self._kind.get(obj, "")

    def _reach(self, mask: Mask) -> tuple[int, int, int, int]:
        return _bounds(mask, 3 * self.band + 4)

    # -- each frame ------------------------------------------------------------------------------

    def _flows(self, previous: Frame, current: Frame) -> tuple[np.ndarray, np.ndarray, float]:
        self._flows_now = self._flows_of(previous, current)
        return self._flows_now

    def _flows_of(self, previous: Frame, current: Frame) -> tuple[np.ndarray, np.ndarray, float]:
        """The classic flows; where the objects fill a small part of the frame, finer flow on
        a crop around them instead (zero outside it) for about the same cost."""
        cv2 = _cv2()
        h, w = current.shape[:2]
        box = self._flow_box(h, w)
        if box is None:
            return super()._flows(previous, current)
        y0, y1, x0, x1 = box

        def gray(frame: Frame) -> np.ndarray:
            return cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]), cv2.COLOR_RGB2GRAY)

        a, b = gray(previous), gray(current)
        back, fwd = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 2), np.float32)
        back[y0:y1, x0:x1] = self._fine_flow.calc(b, a, None)
        fwd[y0:y1, x0:x1] = self._fine_flow.calc(a, b, None)
        return back, fwd, 1.0

    def _flow_box(self, h: int, w: int) -> tuple[int, int, int, int] | None:
        """``(y0, y1, x0, x1)`` around every object's shape and last mask, when the finer flow
        on it is worth it (``GuidedSettings.fine_area``); else ``None``."""
        s = self.settings
        if not s.fine_area or self._work_scale(w, h) != 1 or not self._shapes:
            return None
        union = np.zeros((h, w), bool)
        for obj, shape in self._shapes.items():
            union |= shape
            last = self._last.get(obj)
            if last is not None:
                union |= last[1]
        if not union.any():
            return None
        y0, y1, x0, x1 = _bounds(union, s.flow_margin)
        if (y1 - y0) * (x1 - x0) > s.fine_area * h * w or min(y1 - y0, x1 - x0) < 32:
            return None
        return y0, y1, x0, x1

    def _evidence(self, obj: int, current: Frame, box: tuple[int, int, int, int],
                  expected: Mask) -> np.ndarray | None:
        kind = self._kind.get(obj)
        y0, y1, x0, x1 = box
        crop = np.ascontiguousarray(current[y0:y1, x0:x1, :3])
        count = self._evidence_count.get(obj, 0) + 1
        self._evidence_count[obj] = count
        if kind == "person":
            prob = self.person(crop)
            s = self.settings
            if s.refit_fit and count % s.refit_every == 0 and _iou(prob > 0.5, expected) >= s.refit_fit:
                self._confident[obj] = True  # the person model agrees: refit the colours
            return prob
        self._carrying[obj] = False
        if kind == "salient" and count % self.settings.salient_every == 0:
            prob = self._salient_evidence(obj, crop, expected)
            if self.settings.salient_carry:
                full = np.full(current.shape[:2], 0.5, np.float32)
                full[y0:y1, x0:x1] = prob
                self._carried[obj] = full
            return prob
        carried = self._carried.get(obj)
        flows = self._flows_now
        if kind == "salient" and carried is not None and flows is not None and flows[2] == 1:
            cv2 = _cv2()
            back = flows[0]
            h, w = back.shape[:2]
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            carried = cv2.remap(carried, gx + back[..., 0], gy + back[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.5)
            self._carried[obj] = carried
            self._carrying[obj] = True
            return carried[y0:y1, x0:x1]
        return None

    def _salient_evidence(self, obj: int, crop: np.ndarray, expected: Mask) -> np.ndarray:
        """U²-Net small on the object's rectangle; where it agrees with motion and colour
        (``refit_fit``), the frame is a confident one and refits the colour anchor."""
        prob = self.salient(crop)
        if self.settings.refit_fit and _iou(prob > 0.5, expected) >= self.settings.refit_fit:
            self._confident[obj] = True
        return prob

    def _evidence_weight(self, obj: int) -> float:
        person = self._kind.get(obj) == "person"
        if self._carrying.get(obj):
            return self.settings.salient_carry
        return self.settings.person_weight if person else self.settings.salient_weight

    def _step(self, obj: int, previous: Frame, current: Frame, mask: Mask,
              flows: tuple[np.ndarray, np.ndarray, float]) -> Mask:
        out = self._tracked(obj, previous, current, mask, flows)
        s = self.settings
        return _snap_edge(current, out, s.edge_radius, s.edge_eps, s.edge_band) if s.edge_radius else out

    def _tracked(self, obj: int, previous: Frame, current: Frame, mask: Mask,
                 flows: tuple[np.ndarray, np.ndarray, float]) -> Mask:
        """The classic step with the models' evidence, then the re-find when lost."""
        out = super()._step(obj, previous, current, mask, flows)
        if self._confident.pop(obj, False) and out.any() and obj in self._anchors:
            fresh = _ColourModel.learn(current, out, self._ring(out))
            self._anchors[obj] = self._anchors[obj].mix(fresh, self.settings.refit_weight)
        key_area = self._key_area.get(obj, 0)
        if self.salient is None or not key_area:
            return out
        area, match = np.count_nonzero(out), self._colour_match(obj, current, out)
        lost = (area < self.settings.lost_fraction * key_area
                or match < self.settings.lost_match * self._key_match.get(obj, 1.0))
        if not lost and area >= self.settings.shrunk_fraction * key_area:
            self._lost_for[obj] = 0
            return out
        waited = self._lost_for.get(obj, 0)
        self._lost_for[obj] = waited + 1
        if waited % max(1, self.settings.refind_every):
            return out
        # Lost: any salient component that matches; only shrunk (coming back from behind
        # something, or half lost to flow): a salient component over what it has, larger.
        found = self._refind(obj, current, match if lost else 0.0, None if lost else out)
        if found is None:
            return out
        self._lost_for[obj] = 0
        self._shapes[obj] = found
        return found

    def _colour_match(self, obj: int, frame: Frame, mask: Mask) -> float:
        """The fraction of ``mask``'s pixels whose colour is likelier the object's than its
        surroundings' (by the keyframe's colour model); 0 for an empty mask."""
        anchor = self._anchors.get(obj)
        if anchor is None or not mask.any():
            return 0.0
        y0, y1, x0, x1 = _bounds(mask, 0)
        cells = _colour_index(frame[y0:y1, x0:x1][mask[y0:y1, x0:x1]])
        return float(np.mean(anchor.fg[cells] > anchor.bg[cells]))

    def _refind(self, obj: int, frame: Frame, current: float = 0.0,
                over: Mask | None = None) -> Mask | None:
        """The salient component of ``frame`` that looks most like ``obj`` (its keyframe
        colours, a plausible size) and more than the mask it has now (``current``: its colour
        match), or ``None``; with ``over``, only a component overlapping ``over`` and larger
        than it, joined to it."""
        cv2 = _cv2()
        anchor = self._anchors.get(obj)
        if anchor is None:
            return None
        prob = self.salient(np.ascontiguousarray(frame[..., :3]))
        found = (prob > 0.5).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
        key_area = self._key_area[obj]
        idx = _colour_index(frame)
        best, best_score = None, max(self.settings.refind_min_score, current + self.settings.refind_margin)
        for k in range(1, count):
            area = stats[k, cv2.CC_STAT_AREA]
            if not 0.2 * key_area <= area <= 4 * key_area:
                continue
            part = labels == k
            if over is not None and (area <= np.count_nonzero(over) or not (part & over).any()):
                continue
            cells = idx[part]
            lf, lb = anchor.fg[cells] + 1e-4, anchor.bg[cells] + 1e-4
            score = float(np.mean(lf > lb))
            if score > best_score:
                best, best_score = part, score
        return best if best is None or over is None else best | over


def _snap_edge(frame: Frame, mask: Mask, radius: int, eps: float, band: int) -> Mask:
    """``mask`` with its edge moved to the frame's: a guided filter (He et al.) of the mask
    with the frame's grey levels as guide, thresholded at one half, decides the pixels within
    ``band`` of the edge; the rest of the mask is kept as it is."""
    cv2 = _cv2()
    if not mask.any():
        return mask
    y0, y1, x0, x1 = _bounds(mask, 2 * radius + band + 2)
    part = mask[y0:y1, x0:x1]
    guide = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]).astype(np.float32) / 255,
                         cv2.COLOR_RGB2GRAY)
    p = part.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = mean(guide), mean(p)
    a = (mean(guide * p) - mean_i * mean_p) / (mean(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    filtered = mean(a) * guide + mean(b)
    kernel = np.ones((3, 3), np.uint8)
    edge = cv2.morphologyEx(part.astype(np.uint8), cv2.MORPH_GRADIENT, kernel)
    near = cv2.dilate(edge, kernel, iterations=band).astype(bool)
    out = mask.copy()
    out[y0:y1, x0:x1][near] = filtered[near] > 0.5
    return out


def _iou(a: Mask, b: Mask) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
