"""Composite RGBA layers into a frame: premultiplied alpha, bilinear transforms, masks, blends.

Everything is computed in float32 on premultiplied colour, which is what makes ``over`` and
bilinear resampling correct at soft edges (no dark fringes). Layers go bottom to top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import BLEND_MODES, Frame


@dataclass(frozen=True)
class Placement:
    """Where a layer lands: its centre at ``position`` (canvas pixels, from the top-left),
    scaled by ``scale`` and turned ``rotation`` degrees clockwise about its centre."""

    position: tuple[float, float]
    scale: tuple[float, float] = (1.0, 1.0)
    rotation: float = 0.0

    @classmethod
    def centered(cls, canvas: tuple[int, int]) -> Placement:
        """Untransformed: the layer's centre on the canvas centre."""
        return cls(position=(canvas[0] / 2, canvas[1] / 2))

    def matrix(self, layer_size: tuple[int, int]) -> np.ndarray:
        """The 2x3 affine map from layer pixel coordinates to canvas pixel coordinates."""
        w, h = layer_size
        theta = math.radians(self.rotation)
        c, s = math.cos(theta), math.sin(theta)
        sx, sy = self.scale
        # Pixel centres sit at integer coordinates: the layer centre is ((w-1)/2, (h-1)/2) and
        # lands on position - (0.5, 0.5) in the same convention.
        lin = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        target = np.array(self.position) - 0.5
        return np.hstack([lin, (target - lin @ centre)[:, None]])


@dataclass(frozen=True)
class Layer:
    """One layer to composite: straight-alpha ``uint8`` RGB(A) pixels and how to place them.

    ``matte`` (float32 0-1, canvas-sized) limits the layer, e.g. a feathered mask track.
    """

    pixels: np.ndarray
    placement: Placement | None = None
    opacity: float = 1.0
    blend_mode: str = "normal"
    matte: np.ndarray | None = None


def premultiply(pixels: np.ndarray) -> np.ndarray:
    """``uint8`` RGB(A) to float32 premultiplied RGBA in [0, 1]."""
    import cv2

    if pixels.shape[2] == 3:
        return np.multiply(cv2.cvtColor(pixels, cv2.COLOR_RGB2RGBA), np.float32(1 / 255),
                           dtype=np.float32)
    out = np.multiply(pixels, np.float32(1 / 255), dtype=np.float32)
    out[..., :3] *= out[..., 3:]
    return out


Box = tuple[int, int, int, int]
"""A canvas rectangle ``(y0, y1, x0, x1)``, half-open."""


def place(premul: np.ndarray, placement: Placement, canvas: tuple[int, int],
          box: Box | None = None) -> np.ndarray:
    """Resample a premultiplied layer onto the canvas (bilinear; transparent outside), or onto
    just the ``box`` part of it."""
    import cv2

    y0, y1, x0, x1 = box or (0, canvas[1], 0, canvas[0])
    h, w = premul.shape[:2]
    m = placement.matrix((w, h))
    m[:, 2] -= (x0, y0)
    if np.allclose(m[:, :2], np.eye(2)) and np.allclose(m[:, 2], np.round(m[:, 2])):
        return _translate(premul, int(round(m[0, 2])), int(round(m[1, 2])), (x1 - x0, y1 - y0))
    return cv2.warpAffine(premul, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def _translate(premul: np.ndarray, dx: int, dy: int, canvas: tuple[int, int]) -> np.ndarray:
    """Whole-pixel moves copy pixels: exact, and much faster than resampling."""
    cw, ch = canvas
    h, w = premul.shape[:2]
    if (dx, dy, w, h) == (0, 0, cw, ch):
        return premul
    out = np.zeros((ch, cw, 4), np.float32)
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + w, cw), min(dy + h, ch)
    if x0 < x1 and y0 < y1:
        out[y0:y1, x0:x1] = premul[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return out


def blend(dst: np.ndarray, src: np.ndarray, mode: str) -> np.ndarray:
    """Composite premultiplied ``src`` over premultiplied ``dst`` with a separable blend mode
    (the W3C compositing formulas: ``co = cs(1 - ab) + cb(1 - as) + as*ab*B(Cb, Cs)``).
    ``normal`` works in place on ``dst`` and returns it."""
    sa, da = src[..., 3:4], dst[..., 3:4]
    if mode == "normal":
        dst *= 1 - sa
        dst += src
        return dst
    if mode not in BLEND_MODES:
        raise InvalidArgumentError(f"unknown blend mode {mode!r}", hint=f"use one of {BLEND_MODES}")
    with np.errstate(divide="ignore", invalid="ignore"):
        cs = np.where(sa > 0, src[..., :3] / sa, 0)
        cb = np.where(da > 0, dst[..., :3] / da, 0)
    mixed = _separable(mode, cb, cs)
    out = np.empty_like(dst)
    out[..., :3] = src[..., :3] * (1 - da) + dst[..., :3] * (1 - sa) + sa * da * mixed
    out[..., 3:] = sa + da * (1 - sa)
    return out


def _separable(mode: str, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    if mode == "multiply":
        return cb * cs
    if mode == "screen":
        return cb + cs - cb * cs
    if mode == "add":
        return np.minimum(cb + cs, 1.0)
    if mode == "darken":
        return np.minimum(cb, cs)
    if mode == "lighten":
        return np.maximum(cb, cs)
    # overlay: multiply or screen depending on the backdrop
    return np.where(cb <= 0.5, 2 * cb * cs, 1 - 2 * (1 - cb) * (1 - cs))


def composite(canvas: tuple[int, int], layers: Sequence[Layer], *,
              background: tuple[int, int, int, int] = (0, 0, 0, 255),
              alpha: bool = False) -> Frame:
    """The frame ``layers`` (bottom first) make on a ``canvas`` ``(w, h)`` of ``background``.

    Returns RGB ``uint8``, or straight-alpha RGBA with ``alpha`` (for cutouts over transparency).
    Only what can change is computed in float: below the topmost opaque full-frame layer
    nothing shows, and above it only the rectangle the other layers reach (their placed bounds
    inside their mattes' non-zero area) differs from its pixels, which are copied. A layer
    whose pixels are one colour broadcast over its size (``np.broadcast_to``) is composited as
    that colour, without expanding it.
    """
    cw, ch = canvas
    for layer in layers:
        if layer.pixels.dtype != np.uint8 or layer.pixels.ndim != 3:
            raise InvalidArgumentError("layer pixels must be uint8 (H, W, 3|4)")
        if layer.matte is not None and layer.matte.shape != (ch, cw):
            raise InvalidArgumentError(f"matte is {layer.matte.shape[::-1]}, canvas is {canvas}")
    placed = [(layer, layer.placement or Placement.centered(canvas)) for layer in layers]
    base = max((k for k, (layer, where) in enumerate(placed) if _covers(layer, where, canvas)),
               default=None)
    above = [(layer, where, box) for layer, where in placed[0 if base is None else base + 1:]
             if (box := _reach(layer, where, canvas)) is not None]
    if base is None:
        region: Box = (0, ch, 0, cw)
        out = np.empty((ch, cw, 4 if alpha else 3), np.uint8)
        bg = np.array(background, np.float32) / 255
        acc = np.empty((ch, cw, 4), np.float32)
        acc[...] = np.concatenate([bg[:3] * bg[3], bg[3:]])
    else:
        pixels = placed[base][0].pixels
        out = np.dstack([pixels, np.full((ch, cw), 255, np.uint8)]) if alpha else pixels.copy()
        if not above:
            return out
        region = (min(b[0] for *_, b in above), max(b[1] for *_, b in above),
                  min(b[2] for *_, b in above), max(b[3] for *_, b in above))
        acc = premultiply(np.ascontiguousarray(pixels[region[0]:region[1], region[2]:region[3]]))
    ry, rx = region[0], region[2]
    for layer, where, (y0, y1, x0, x1) in above:
        src = _source(layer, where, canvas, (y0, y1, x0, x1))
        weight = np.float32(layer.opacity)
        if layer.matte is not None:
            src = src * (layer.matte[y0:y1, x0:x1, None] * weight)
        elif weight != 1:
            src = src * weight
        view = acc[y0 - ry:y1 - ry, x0 - rx:x1 - rx]
        view[...] = blend(view, src, layer.blend_mode)
    out[region[0]:region[1], region[2]:region[3]] = _to_uint8(acc, alpha)
    return out


def _uniform(pixels: np.ndarray) -> bool:
    """Whether ``pixels`` is one colour broadcast over its size (zero strides)."""
    return pixels.strides[0] == 0 and pixels.strides[1] == 0


def _identity(layer: Layer, placement: Placement, canvas: tuple[int, int]) -> bool:
    h, w = layer.pixels.shape[:2]
    m = placement.matrix((w, h))
    return (w, h) == canvas and np.allclose(m, [[1, 0, 0], [0, 1, 0]])


def _covers(layer: Layer, placement: Placement, canvas: tuple[int, int]) -> bool:
    """An opaque, unmasked, full-canvas normal layer hides everything below it."""
    return (layer.pixels.shape[2] == 3 and layer.matte is None and layer.opacity == 1
            and layer.blend_mode == "normal" and _identity(layer, placement, canvas))


def _reach(layer: Layer, placement: Placement, canvas: tuple[int, int]) -> Box | None:
    """The canvas rectangle a layer can change, or ``None`` when it changes nothing."""
    cw, ch = canvas
    if layer.opacity <= 0:
        return None
    h, w = layer.pixels.shape[:2]
    m = placement.matrix((w, h))
    corners = m @ np.array([[-1, w, -1, w], [-1, -1, h, h], [1, 1, 1, 1]], float)
    x0, y0 = max(0, math.floor(corners[0].min())), max(0, math.floor(corners[1].min()))
    x1 = min(cw, math.ceil(corners[0].max()) + 1)
    y1 = min(ch, math.ceil(corners[1].max()) + 1)
    if layer.matte is not None:
        rows = np.flatnonzero(layer.matte.any(axis=1))
        if not len(rows):
            return None
        y0, y1 = max(y0, int(rows[0])), min(y1, int(rows[-1]) + 1)
        cols = np.flatnonzero(layer.matte[y0:y1].any(axis=0)) if y0 < y1 else rows[:0]
        if not len(cols):
            return None
        x0, x1 = max(x0, int(cols[0])), min(x1, int(cols[-1]) + 1)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None


def _source(layer: Layer, placement: Placement, canvas: tuple[int, int], box: Box) -> np.ndarray:
    """The layer's premultiplied pixels over ``box``."""
    y0, y1, x0, x1 = box
    if _uniform(layer.pixels) and _identity(layer, placement, canvas):
        colour = premultiply(np.ascontiguousarray(layer.pixels[:1, :1]))[0, 0]
        return np.broadcast_to(colour, (y1 - y0, x1 - x0, 4))
    pixels = layer.pixels
    if _identity(layer, placement, canvas):  # premultiply only the part that is used
        return premultiply(pixels[y0:y1, x0:x1])
    return place(premultiply(pixels), placement, canvas, box)


def _to_uint8(premul: np.ndarray, alpha: bool) -> Frame:
    import cv2

    if not alpha:  # saturating, rounding and threaded: several times numpy's clip-and-cast
        return cv2.cvtColor(cv2.convertScaleAbs(premul, alpha=255), cv2.COLOR_RGBA2RGB)
    a = premul[..., 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = np.where(a > 0, premul[..., :3] / a, 0)
    out = np.concatenate([rgb, a], axis=-1)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
