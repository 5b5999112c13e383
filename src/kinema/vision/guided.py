"""The classical tracker guided by the bundled models: a person prior, saliency to re-find.

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
from kinema.vision.classic import ClassicTracker, _bounds, _colour_index


def _cv2() -> Any:
    import cv2

    return cv2


@dataclass(frozen=True)
class GuidedSettings:
    """What the guided tracker's decisions turn on (tuned on half of ``davis-train``)."""

    person_fit: float = 0.75 # IoU of the person model with the keyframe mask that makes it a person
    person_weight: float = 1.0  # exponent of the person probability in the posterior
    salient_fit: float = 0.8  # IoU of the salient model with the keyframe mask that makes it a guide
    salient_every: int = 0  # frames between salient passes over a salient object (0: never)
    salient_weight: float = 1.0
    lost_fraction: float = 0.15  # mask area under this fraction of the keyframe's: lost, re-find
    lost_match: float = 0.4  # colour match under this fraction of the keyframe's: lost too
    refind_margin: float = 0.1  # how much better than the mask it has a found one must match
    shrunk_fraction: float = 0.5  # mask area under this fraction of the keyframe's: look again
    refind_every: int = 5  # frames between re-find attempts while lost
    refind_min_score: float = 0.5  # colour match (0..1) a salient component needs
    dis_preset: str = "fast"  # DIS optical flow preset: "ultrafast", "fast" or "medium"


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
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                   "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._flow = cv2.DISOpticalFlow_create(presets[settings.dis_preset])

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
        """``"person"`` when the person prior guides ``obj``, else ``""``."""
        return self._kind.get(obj, "")

    def _reach(self, mask: Mask) -> tuple[int, int, int, int]:
        return _bounds(mask, 3 * self.band + 4)

    # -- each frame ------------------------------------------------------------------------------

    def _evidence(self, obj: int, current: Frame, box: tuple[int, int, int, int],
                  expected: Mask) -> np.ndarray | None:
        kind = self._kind.get(obj)
        y0, y1, x0, x1 = box
        crop = np.ascontiguousarray(current[y0:y1, x0:x1, :3])
        if kind == "person":
            return self.person(crop)
        if kind == "salient":
            count = self._evidence_count.get(obj, 0) + 1
            self._evidence_count[obj] = count
            if count % self.settings.salient_every == 0:
                return self.salient(crop)
        return None

    def _evidence_weight(self, obj: int) -> float:
        person = self._kind.get(obj) == "person"
        return self.settings.person_weight if person else self.settings.salient_weight

    def _step(self, obj: int, previous: Frame, current: Frame, mask: Mask,
              flows: tuple[np.ndarray, np.ndarray, float]) -> Mask:
        out = super()._step(obj, previous, current, mask, flows)
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


def _iou(a: Mask, b: Mask) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
