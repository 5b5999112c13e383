"""From a hard mask to the soft matte a layer is composited through: grow/shrink, feather, invert."""

from __future__ import annotations

import numpy as np


def matte_from_mask(mask: np.ndarray, *, grow: float = 0.0, feather: float = 0.0,
                    invert: bool = False) -> np.ndarray:
    """A float32 matte in [0, 1]: ``mask`` grown (or shrunk, negative) by ``grow`` pixels, its
    edge blurred over about ``feather`` pixels, then inverted if asked."""
    import cv2

    m = mask.astype(np.uint8)
    radius = int(round(abs(grow)))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        m = cv2.dilate(m, kernel) if grow > 0 else cv2.erode(m, kernel)
    matte = m.astype(np.float32)
    if feather > 0:
        matte = cv2.GaussianBlur(matte, (0, 0), sigmaX=feather / 2, borderType=cv2.BORDER_REPLICATE)
    return 1.0 - matte if invert else matte
