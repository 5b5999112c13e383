"""Scenes with known masks, for tests and benchmarks of segmentation and tracking.

A textured object (an ellipse with its own colours) moves and changes size over a textured
background that pans like a handheld camera; optionally a bar passes in front of it. Every
frame comes with its exact ground-truth mask (the visible part of the object).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kinema.core.frames import Frame, Mask


@dataclass(frozen=True)
class Scene:
    """Frames and the object's visible mask in each."""

    frames: list[Frame]
    masks: list[Mask]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Frame:
        return self.frames[index]


def _texture(rng: np.random.Generator, h: int, w: int, palette: np.ndarray, grain: float) -> np.ndarray:
    """Smooth colour regions drawn from ``palette`` plus fine grain, float32 (h, w, 3)."""
    import cv2

    coarse = rng.random((max(2, h // 24), max(2, w // 24), len(palette))).astype(np.float32)
    weights = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    weights = np.exp(weights * 6)
    weights /= weights.sum(axis=2, keepdims=True)
    image = weights @ palette.astype(np.float32)
    return image + rng.normal(0, grain, (h, w, 3)).astype(np.float32)


def moving_object(n: int = 60, size: tuple[int, int] = (320, 240), *, seed: int = 0,
                  scale_change: float = 1.4, occluder: bool = False, pan: float = 1.5,
                  similar_colours: float = 0.0) -> Scene:
    """``n`` frames of a textured ellipse crossing a panning textured background.

    The ellipse grows (or shrinks) by ``scale_change`` over the clip; with ``occluder`` a
    vertical bar of background passes in front of it mid-clip. ``similar_colours`` (0..1)
    pulls the object's palette towards the background's, making colour less decisive.
    """
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    bg_palette = rng.uniform(40, 200, (5, 3))
    obj_palette = rng.uniform(30, 230, (4, 3))
    obj_palette = obj_palette * (1 - similar_colours) + bg_palette[:4] * similar_colours
    margin = int(pan * n) + 8
    background = _texture(rng, h + 2 * margin, w + 2 * margin, bg_palette, 6.0)
    skin = _texture(rng, h, w, obj_palette, 6.0)
    bar_texture = _texture(rng, h, w, bg_palette[::-1], 6.0)
    frames, masks = [], []
    for i in range(n):
        f = i / max(1, n - 1)
        ox = int(round(margin + pan * i * math.cos(i / 7)))
        oy = int(round(margin + pan * i * 0.5 * math.sin(i / 5)))
        canvas = background[oy:oy + h, ox:ox + w].copy()
        cx = w * (0.25 + 0.5 * f)
        cy = h * (0.5 + 0.15 * math.sin(f * math.pi * 2))
        s = scale_change ** f
        axes = (max(4, int(w * 0.12 * s)), max(4, int(h * 0.2 * s)))
        obj = np.zeros((h, w), np.uint8)
        cv2.ellipse(obj, (int(cx), int(cy)), axes, 25 * f, 0, 360, 1, -1)
        visible = obj.astype(bool)
        shift = np.roll(skin, (int(cy - h / 2), int(cx - w / 2)), axis=(0, 1))
        canvas[visible] = shift[visible]
        if occluder:
            bx = int(w * (1.1 - 1.2 * f))
            bar = np.zeros((h, w), bool)
            bar[:, max(0, bx):max(0, bx + w // 14)] = True
            canvas[bar] = bar_texture[bar]
            visible &= ~bar
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
        masks.append(visible)
    return Scene(frames, masks)
