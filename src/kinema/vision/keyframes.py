"""Key frames where the footage changes most: a change measure fed frame by frame, and the
placement of N keys over the change it accumulated.

:class:`ChangeMeter` takes frames in order, like a scene detector: each becomes a small grey
thumbnail (:data:`THUMB` pixels on its long side, lightly blurred against grain and compression
noise) and its change is the mean absolute difference from the previous one, in levels of 255
(in mask mode only over the object: where either frame's matte is). Only the previous thumbnail
is kept, so memory is flat with the clip's length; the scores are one float a frame.

:func:`pick_keys` places N keys so that each covers an equal share of the accumulated change:
on a scale where a frame sits at the change accumulated since the first, key ``k`` goes to the
middle of share ``k``, ``(k + 1/2) / N`` of the whole, so keys fall densely where the footage
moves and sparsely where it is still. A key is never more than half a share of change from
either end of the range, so what is carried past the first or last key is little (still frames
at either end cost nothing, however many). A small floor (:data:`FLOOR` of the mean change per
frame) keeps a still stretch from being ignored entirely and makes a clip without any change
get evenly spaced keys. Everything here is arrays in, numbers out: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

THUMB = 64
"""The long side of the thumbnails compared, in pixels."""
FLOOR = 0.05
"""Every frame's change is at least this share of the mean change per frame."""


def thumbnail(frame: np.ndarray, size: int = THUMB) -> np.ndarray:
    """``frame`` (RGB ``uint8``, or grey, or a matte) as a small ``float32`` image, ``size``
    pixels on its long side, area-averaged."""
    import cv2

    image = np.asarray(frame)
    if image.ndim == 3:
        image = image[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    image = image.astype(np.float32)
    h, w = image.shape
    scale = size / max(h, w)
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, small, interpolation=cv2.INTER_AREA)


class ChangeMeter:
    """How much each frame fed to :meth:`add` differs from the one before (the first: 0)."""

    def __init__(self, size: int = THUMB) -> None:
        self.size = size
        self.scores: list[float] = []
        self._last: np.ndarray | None = None
        self._last_matte: np.ndarray | None = None

    def add(self, frame: np.ndarray, matte: np.ndarray | None = None) -> float:
        """The change from the previous frame to ``frame``, in levels of 255; with ``matte``
        (the object's, ``bool`` or ``float`` in [0, 1]) only where either frame's matte is."""
        import cv2

        grey = cv2.GaussianBlur(thumbnail(frame, self.size), (3, 3), 0.8)
        weight = None
        if matte is not None:
            weight = cv2.resize(np.asarray(matte, np.float32), grey.shape[::-1],
                                interpolation=cv2.INTER_AREA)
        score = 0.0
        if self._last is not None:
            diff = np.abs(grey - self._last)
            if weight is None or self._last_matte is None:
                score = float(diff.mean())
            else:
                where = np.maximum(weight, self._last_matte)
                total = float(where.sum())
                score = float((diff * where).sum() / total) if total > 1e-6 else 0.0
        self._last, self._last_matte = grey, weight
        self.scores.append(score)
        return score


def change_scores(frames: Iterable[np.ndarray], size: int = THUMB) -> list[float]:
    """The change of each frame from the one before (:class:`ChangeMeter`), the first 0."""
    meter = ChangeMeter(size)
    for frame in frames:
        meter.add(frame)
    return meter.scores


def pick_keys(scores: Sequence[float], count: int, *, start: int = 0,
              usable: Sequence[bool] | None = None) -> list[int]:
    """``count`` key frames of the frames ``start, start + 1, ...`` whose changes from the
    frame before are ``scores`` (the first score is ignored), each key covering an equal share
    of the accumulated change; only frames marked ``usable`` (default: all) become keys.
    Sorted, distinct, inside the range."""
    changes = np.asarray(scores, np.float64)
    if changes.ndim != 1 or not np.all(np.isfinite(changes)) or (changes < 0).any():
        raise ValueError("scores must be finite changes >= 0, one a frame")
    candidates = np.arange(len(changes)) if usable is None else np.flatnonzero(np.asarray(usable, bool))
    if usable is not None and len(usable) != len(changes):
        raise ValueError(f"{len(usable)} usable flags for {len(changes)} frames")
    if not 1 <= count <= len(candidates):
        raise ValueError(f"cannot pick {count} keys from {len(candidates)} frames")
    steps = changes[1:].copy()
    steps += FLOOR * (steps.mean() if len(steps) else 0.0) + 1e-9
    position = np.concatenate([[0.0], np.cumsum(steps)])  # each frame on the change scale
    targets = (np.arange(count) + 0.5) / count * position[-1]
    at = np.interp(targets, position, np.arange(len(changes)))  # where, in frames
    # the nearest usable frame to each target, then made distinct, keeping the order
    slot = np.clip(np.searchsorted(candidates, at), 1, max(1, len(candidates) - 1))
    if len(candidates) > 1:
        nearer = np.abs(candidates[slot - 1] - at) <= np.abs(candidates[slot] - at)
        slot = np.where(nearer, slot - 1, slot)
    else:
        slot = np.zeros(count, int)
    slot = np.minimum(slot, len(candidates) - count + np.arange(count))
    for k in range(1, count):
        slot[k] = max(slot[k], slot[k - 1] + 1)
    return [start + int(i) for i in candidates[slot]]
