"""Classical looks: named, deterministic stylisations of a frame, for previews and as keys.

Each look is a pure function of an RGB ``uint8`` frame (OpenCV filters, a fixed brush texture
made from a fixed seed): the same frame gives the same pixels on every run. They stand in for a
painted or diffused key while a shot is set up (``kinema keys --look``, ``kinema propagate
--keys auto N --look``); none needs a model.

- ``painterly``: edge-preserving smoothing, colours quantised, a diagonal brush texture in the
  light;
- ``toon``: bilateral smoothing, few flat colours, dark outlines;
- ``sketch``: a grey pencil sketch (OpenCV's ``pencilSketch``);
- ``watercolor``: OpenCV's ``stylization`` (domain-transform smoothing that keeps edges);
- ``posterize``: four levels per channel.

:func:`apply_look` with a ``matte`` styles only the object: the look blended by the matte, and
every pixel where the matte is 0 the frame's own, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kinema.core.errors import InvalidArgumentError

Look = Callable[[np.ndarray], np.ndarray]


def _smooth(frame: np.ndarray, passes: int = 2) -> np.ndarray:
    import cv2

    out = frame
    for _ in range(passes):
        out = cv2.bilateralFilter(out, 7, 40, 7)
    return out


def _quantise(frame: np.ndarray, levels: int) -> np.ndarray:
    """Each channel to ``levels`` levels spread over 0-255, each level its bin's middle."""
    step = 256 / levels
    index = np.floor(frame.astype(np.float32) / step)
    return np.clip((index + 0.5) * step, 0, 255).astype(np.uint8)


def _brush(height: int, width: int) -> np.ndarray:
    """A brush-stroke texture around 1 (``float32``): noise from a fixed seed smeared along
    the diagonal, the same for every frame of a size."""
    import cv2

    rng = np.random.default_rng(20190728)
    noise = rng.standard_normal((height, width)).astype(np.float32)
    length = 9
    kernel = np.eye(length, dtype=np.float32) / length
    strokes = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)
    strokes = cv2.GaussianBlur(strokes, (0, 0), 0.7)
    strokes /= max(float(strokes.std()), 1e-6)
    return 1.0 + 0.06 * strokes


def painterly(frame: np.ndarray) -> np.ndarray:
    """Smoothed keeping edges, colours quantised to 10 levels and blurred a little back
    together, brush strokes in the light."""
    import cv2

    smooth = _smooth(frame, 3)
    flat = cv2.GaussianBlur(_quantise(smooth, 10), (0, 0), 1.0)
    mixed = 0.6 * flat.astype(np.float32) + 0.4 * smooth.astype(np.float32)
    textured = mixed * _brush(*frame.shape[:2])[..., None]
    return np.clip(np.rint(textured), 0, 255).astype(np.uint8)


def toon(frame: np.ndarray) -> np.ndarray:
    """Flat colours (smoothed, 5 levels a channel) inside dark outlines."""
    import cv2

    flat = _quantise(_smooth(frame, 3), 5)
    grey = cv2.medianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 5)
    edges = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    return np.where(edges[..., None] == 0, (flat // 5), flat).astype(np.uint8)


def sketch(frame: np.ndarray) -> np.ndarray:
    """A pencil sketch in grey (OpenCV's ``pencilSketch``), as RGB."""
    import cv2

    grey, _colour = cv2.pencilSketch(np.ascontiguousarray(frame), sigma_s=40, sigma_r=0.08,
                                     shade_factor=0.04)
    return np.repeat(grey[..., None], 3, axis=2)


def watercolor(frame: np.ndarray) -> np.ndarray:
    """OpenCV's ``stylization``: smoothed keeping edges, a watercolour's washes."""
    import cv2

    return cv2.stylization(np.ascontiguousarray(frame), sigma_s=40, sigma_r=0.35)


def posterize(frame: np.ndarray) -> np.ndarray:
    """Four levels per channel."""
    return _quantise(frame, 4)


LOOKS: dict[str, Look] = {"painterly": painterly, "toon": toon, "sketch": sketch,
                          "watercolor": watercolor, "posterize": posterize}
"""The looks by name."""


def check_look(name: str) -> str:
    """``name`` if it is a look, else one error naming them."""
    if name not in LOOKS:
        raise InvalidArgumentError(f"unknown look {name!r}", hint=f"use {', '.join(LOOKS)}")
    return name


def apply_look(name: str, frame: np.ndarray, matte: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (RGB ``uint8``) in look ``name``; with ``matte`` (``bool``, or ``float`` in
    [0, 1], the frame's size) only the object: the look blended by the matte, every pixel
    where it is 0 the frame's own."""
    from kinema.core.frames import check_frame

    look = LOOKS[check_look(name)]
    image = np.ascontiguousarray(np.asarray(frame)[..., :3])
    check_frame(image)
    styled = look(image)
    if matte is None:
        return styled
    weight = np.asarray(matte, np.float32)
    if weight.shape != image.shape[:2]:
        raise InvalidArgumentError(f"the matte is {weight.shape[1]}x{weight.shape[0]} but the "
                                   f"frame is {image.shape[1]}x{image.shape[0]}")
    weight = np.clip(weight, 0.0, 1.0)[..., None]
    blended = np.rint(image + (styled.astype(np.float32) - image) * weight).astype(np.uint8)
    return np.where(weight > 0, blended, image)
