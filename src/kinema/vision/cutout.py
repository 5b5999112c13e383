"""Transparent assets: the object of a generated picture cut out with a soft edge.

The object's mask comes one of two ways:

- **detector**: Grounding DINO boxes the subject's words and SAM 2 masks what its best box
  holds (kept inside the box, grown by 5%);
- **salient**: U²-Net small (bundled) gives a salient-object probability per pixel; its
  largest component above ``threshold`` is the object, its edge refined onto the picture's
  (:func:`kinema.vision.oneclick.refine`).

Either mask becomes a soft matte: a guided filter of the mask with the picture as its guide
(:func:`kinema.vision.maskops.soft_matte`), so the edge follows the picture (glow,
antialiasing, hair) for ``feather`` pixels instead of a hard cut; farther than twice that
from the edge the matte is exactly 0 or 1. The asset is straight (un-premultiplied) RGBA: the
picture's colours as generated with the matte as alpha, trimmed to the matte's bounding box
and ``margin`` pixels around it. Where nothing is found the whole picture is kept, opaque.

The subject, when the user names none, is the prompt's first phrase (:func:`subject_of`).
Arrays in, arrays out: no file I/O here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Frame, Mask
from kinema.vision.base import Prompt

# A subject ends at punctuation or where a preposition or "and" starts what surrounds it.
_BREAK = re.compile(r"[,;:.!?()\[\]]|\b(?:on|in|with|at|against|over|under|above|below|behind|"
                    r"beside|near|from|by|and|wearing|holding)\b")
_ARTICLES = frozenset({"a", "an", "the", "one", "some", "two", "three"})
_CLAMP = 0.03  # matte values this close to 0 or 1 become 0 or 1


def subject_of(prompt: str) -> str:
    """The words naming what ``prompt`` shows: its first phrase, up to a comma (or other
    punctuation) or a preposition, without a leading article ("a ufo, brushed metal" ->
    "ufo"; "the red car on a wet road" -> "red car")."""
    for phrase in _BREAK.split(prompt.lower()):
        words = phrase.split()
        if words and words[0] in _ARTICLES:
            words = words[1:]
        if words:
            return " ".join(words)
    raise InvalidArgumentError(f"the prompt {prompt!r} names nothing to cut out",
                               hint='give words, e.g. "a ufo, brushed metal", or --object WORD')


@dataclass(frozen=True)
class Settings:
    """How the cut-out decides (recorded in the asset's recipe)."""

    box_threshold: float = 0.3  # Grounding DINO's score a box needs
    text_threshold: float = 0.25  # token score for a box's label
    threshold: float = 0.4  # salient probability above which a pixel is the object (oneclick's)
    feather: int = 4  # guided-filter radius of the soft edge, pixels
    margin: int = 4  # pixels kept around the matte when trimming

    def __post_init__(self) -> None:
        if self.feather < 1 or self.margin < 0:
            raise InvalidArgumentError(f"the edge radius is at least 1 and the margin at least 0, "
                                       f"got {self.feather} and {self.margin}")

    def record(self) -> dict[str, float]:
        """The settings as a recipe stores them."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Cutout:
    """An asset: ``rgba`` straight-alpha ``uint8 (h, w, 4)``, cut from the picture's pixels
    ``box`` (x0, y0, x1, y1, ends exclusive); ``centre`` the object's centre in ``rgba``
    (the middle of its matte's bounding box, continuous pixel coordinates); ``found`` whether
    there was an object (else ``rgba`` is the whole picture, opaque); ``score`` the
    detector's for its box (none on the salient path)."""

    rgba: np.ndarray
    box: tuple[int, int, int, int]
    centre: tuple[float, float]
    found: bool
    score: float | None = None


def salient_mask(frame: Frame, prob: np.ndarray, settings: Settings = Settings()) -> Mask:
    """The object in a salient-object probability map ``prob`` of ``frame``: the largest
    component above the threshold, its edge refined onto the picture's."""
    from kinema.vision.maskops import largest_component
    from kinema.vision.oneclick import Settings as OneClick
    from kinema.vision.oneclick import refine

    mask = largest_component(prob > settings.threshold)
    if not mask.any():
        return mask
    return largest_component(refine(frame, prob, mask, replace(OneClick(), threshold=settings.threshold)))


def detected_mask(frame: Frame, detector: Any, segmenter: Any, words: str,
                  settings: Settings = Settings()) -> tuple[Mask, float | None]:
    """The object ``words`` name: the best box of ``detector`` (a
    :class:`~kinema.vision.grounding.TextDetector`) masked by ``segmenter`` (an
    :class:`~kinema.vision.base.ImageSegmenter`, SAM 2) inside that box grown by 5%; an empty
    mask and no score where no box reaches the threshold."""
    from kinema.vision.oneclick import grow_box

    found = detector.detect(frame, words, box_threshold=settings.box_threshold,
                            text_threshold=settings.text_threshold, max_boxes=1)
    if not found:
        return np.zeros(frame.shape[:2], bool), None
    best = found[0]
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (int(np.floor(best.box[0])), int(np.floor(best.box[1])),
                      int(np.ceil(best.box[2])), int(np.ceil(best.box[3])))
    gx0, gy0, gx1, gy1 = grow_box((x0, y0, x1, y1), 0.05, w, h, minimum=1)
    inside = np.zeros((h, w), bool)
    inside[gy0:gy1, gx0:gx1] = True
    candidates = segmenter.segment(frame, Prompt(frame=0, box=tuple(map(float, best.box))))
    mask = candidates[0].mask & inside if candidates else np.zeros((h, w), bool)
    return mask, best.score


def soft_alpha(frame: Frame, mask: Mask, feather: int) -> np.ndarray:
    """``uint8`` alpha of ``mask`` with an edge that follows ``frame`` (a guided filter of
    radius ``feather``, or a quarter of the object's smaller side where that is less, so a
    small object keeps its core): 255 and 0 away from the edge, in between along it."""
    from kinema.vision.maskops import soft_matte
    from kinema.vision.oneclick import bounds

    x0, y0, x1, y1 = bounds(mask)
    radius = max(1, min(feather, min(x1 - x0, y1 - y0) // 4))
    matte = soft_matte(frame, mask, radius=radius)
    # The filter leaks a few percent for a few pixels on flat ground: a haze, not an edge.
    matte = np.clip((matte - _CLAMP) / (1 - 2 * _CLAMP), 0, 1)
    return np.round(matte * 255).astype(np.uint8)


def cut_out(frame: Frame, mask: Mask, settings: Settings = Settings(),
            score: float | None = None) -> Cutout:
    """The asset of the object ``mask`` covers in ``frame`` (RGB ``uint8``): soft straight
    alpha, trimmed; the whole frame, opaque, where ``mask`` is empty."""
    from kinema.vision.oneclick import bounds

    h, w = frame.shape[:2]
    rgb = np.asarray(frame[..., :3], np.uint8)
    alpha = soft_alpha(rgb, mask, settings.feather) if mask.any() else None
    if alpha is None or not (alpha > 127).any():
        whole = np.dstack([rgb, np.full((h, w), 255, np.uint8)])
        return Cutout(whole, (0, 0, w, h), (w / 2, h / 2), found=False, score=score)
    x0, y0, x1, y1 = bounds(alpha > 0)
    x0, y0 = max(x0 - settings.margin, 0), max(y0 - settings.margin, 0)
    x1, y1 = min(x1 + settings.margin, w), min(y1 + settings.margin, h)
    ox0, oy0, ox1, oy1 = bounds(alpha > 127)
    rgba = np.dstack([rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]])
    centre = ((ox0 + ox1) / 2 - x0, (oy0 + oy1) / 2 - y0)
    return Cutout(np.ascontiguousarray(rgba), (x0, y0, x1, y1), centre, found=True, score=score)


class Cutter:
    """The cut-out models, loaded once: ``detector`` and ``segmenter`` together (the detector
    path), else ``salient`` (a callable giving a probability map, such as
    :class:`~kinema.vision.oneclick.SalientModel`)."""

    def __init__(self, *, salient: Any = None, detector: Any = None, segmenter: Any = None,
                 settings: Settings = Settings()) -> None:
        if (detector is None) != (segmenter is None) or (detector is None and salient is None):
            raise InvalidArgumentError("a cut-out needs a detector and a segmenter, or a salient model")
        self.salient, self.detector, self.segmenter = salient, detector, segmenter
        self.settings = settings

    @property
    def method(self) -> str:
        """``detector`` or ``salient``: how the object is found."""
        return "detector" if self.detector is not None else "salient"

    def __call__(self, frame: Frame, subject: str) -> Cutout:
        """The asset of ``subject`` (words for the detector) in ``frame``."""
        if self.detector is not None:
            mask, score = detected_mask(frame, self.detector, self.segmenter, subject, self.settings)
        else:
            mask, score = salient_mask(frame, self.salient(frame), self.settings), None
        return cut_out(frame, mask, self.settings, score)
