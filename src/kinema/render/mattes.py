"""From a hard mask to the soft matte a layer is composited through: grow/shrink, feather, invert."""

from __future__ import annotations

import math

import numpy as np


def matte_from_mask(mask: np.ndarray, *, grow: float = 0.0, feather: float = 0.0,
                    invert: bool = False) -> np.ndarray:
    """A float32 matte in [0, 1]: ``mask`` grown (or shrunk, negative) by ``grow`` pixels, its
    edge blurred over about ``feather`` pixels, then inverted if asked.

    Only the mask's bounding box, widened by what growing and blurring can reach, is processed:
    outside it the matte is exactly zero anyway.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    matte = np.zeros(mask.shape, np.float32)
    if len(rows):
        cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
        reach = int(math.ceil(max(grow, 0.0))) + int(math.ceil(2 * feather)) + 2
        y0, y1 = max(0, rows[0] - reach), min(mask.shape[0], rows[-1] + 1 + reach)
        x0, x1 = max(0, cols[0] - reach), min(mask.shape[1], cols[-1] + 1 + reach)
        matte[y0:y1, x0:x1] = _soften(mask[y0:y1, x0:x1], grow, feather)
    return 1.0 - matte if invert else matte


def _soften(mask: np.ndarray, grow: float, feather: float) -> np.ndarray:
    import cv2

    m = mask.astype(np.uint8)
    radius = int(round(abs(grow)))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        m = cv2.dilate(m, kernel) if grow > 0 else cv2.erode(m, kernel)
    matte = m.astype(np.float32)
    if feather > 0:
        matte = cv2.GaussianBlur(matte, (0, 0), sigmaX=feather / 2, borderType=cv2.BORDER_REPLICATE)
    return matte
