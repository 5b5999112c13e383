"""Clean-ups on boolean masks and soft mattes from them: holes, islands, chatter, hair.

Grow/shrink, feather and invert live with the compositor (``kinema.render.mattes``); these are
the operations a tracker's raw masks need before they are worth compositing with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Frame, Mask


def fill_holes(mask: Mask, max_area: int | None = None) -> Mask:
    """``mask`` with enclosed background regions filled (only those up to ``max_area`` pixels
    when given, so a real gap, like the space between an arm and a body, can stay open)."""
    import cv2

    inverse = (~mask).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[:, k] for k in range(5))
    inside = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    fill = inside & (area <= max_area) if max_area is not None else inside
    fill[0] = False  # label 0 is the mask itself
    return mask | fill[labels]


def drop_islands(mask: Mask, min_area: int, *, keep: Mask | None = None) -> Mask:
    """``mask`` without connected pieces smaller than ``min_area`` pixels; pieces that touch
    ``keep`` (e.g. the user's clicks) always stay."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.copy()
    wanted = stats[:, cv2.CC_STAT_AREA] >= min_area
    wanted[0] = False
    if keep is not None:
        wanted[np.unique(labels[keep & mask])] = True
        wanted[0] = False
    return wanted[labels]


def largest_component(mask: Mask) -> Mask:
    """The biggest connected piece of ``mask`` (empty stays empty)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.copy()
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def temporal_smooth(masks: Sequence[Mask], radius: int = 1) -> list[Mask]:
    """Per-pixel majority over ``2 * radius + 1`` neighbouring frames: removes one-frame
    flicker at edges (chatter) without moving edges that really move for several frames."""
    if radius < 0:
        raise InvalidArgumentError(f"radius must be >= 0, got {radius}")
    if radius == 0 or len(masks) < 2:
        return [m.copy() for m in masks]
    stack = np.stack(masks).astype(np.uint8)
    sums = np.cumsum(np.concatenate([np.zeros_like(stack[:1], dtype=np.int32),
                                     stack.astype(np.int32)]), axis=0)
    n = len(masks)
    out = []
    for i in range(n):
        a, b = max(0, i - radius), min(n, i + radius + 1)
        votes = sums[b] - sums[a]
        out.append(votes * 2 > (b - a))
    return out


def soft_matte(frame: Frame, mask: Mask, *, radius: int = 8, eps: float = 1e-3) -> np.ndarray:
    """A float32 matte in [0, 1] whose edge follows the picture (hair, motion blur): the hard
    mask filtered by a guided filter with the frame's luminance as the guide (He et al.)."""
    import cv2

    if frame.shape[:2] != mask.shape:
        raise InvalidArgumentError(f"mask is {mask.shape[::-1]}, frame is {frame.shape[1::-1]}")
    guide = cv2.cvtColor(frame[..., :3], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    p = mask.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(p)
    cov_ip = box(guide * p) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return np.clip(box(a) * guide + box(b), 0.0, 1.0).astype(np.float32)


def iou(a: Mask, b: Mask) -> float:
    """Intersection over union; two empty masks agree completely (1.0)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union
