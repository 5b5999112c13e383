"""Upscaling: Real-ESRGAN through ncnn on the CPU (Vulkan off), tiled; Lanczos as the fallback.

Real-ESRGAN runs on tiles of at most ``tile`` input pixels a side, each read with ``overlap``
pixels of its neighbours around it, so the network's working memory depends on the tile size
alone, never on the image's. Neighbouring tiles' outputs are cross-faded over their shared
band (linear weights that sum to one), so no seam shows; the weighted sum is kept for one row
of tiles at a time and written out as ``uint8`` once the next row can no longer touch it.

Models (bundle ``realesrgan``): ``x4plus`` (photographs, 4x; 2x is the 4x result resized with
Lanczos, as realesrgan-ncnn-vulkan does) and ``animevideov3`` (animation and video, its own 2x,
3x and 4x networks, much faster). Frames are ``uint8`` RGB (an alpha channel is resized with
Lanczos alongside).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.frames import check_frame

if TYPE_CHECKING:
    from pathlib import Path

BUNDLE = "realesrgan"
MODELS = {"x4plus": "realesrgan-x4plus", "animevideov3": "realesr-animevideov3-x{scale}"}
NATIVE = {"x4plus": (4,), "animevideov3": (2, 3, 4)}
SCALES = (2, 3, 4)
TILE = 192  # input pixels per tile side
OVERLAP = 12  # input pixels each tile reads of its neighbours; half of it is cross-faded

Runner = Callable[[np.ndarray], np.ndarray]  # (h, w, 3) uint8 -> (h*s, w*s, 3) float32 in [0, 255]


def _check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise InvalidArgumentError(f"scale must be 2, 3 or 4, got {scale}")
    return int(scale)


def lanczos(frame: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` resized ``scale`` times with OpenCV's Lanczos (8x8) filter."""
    import cv2

    frame = check_frame(frame)
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_LANCZOS4)


def _ramp(start: int, stop: int, fade_in: tuple[int, int] | None,
          fade_out: tuple[int, int] | None) -> np.ndarray:
    """Weights over ``[start, stop)``: rising linearly across ``fade_in`` and falling across
    ``fade_out`` (both absolute ``[a, b)`` bands), one elsewhere; the two tiles sharing a band
    get weights that sum to one."""
    u = np.arange(start, stop, dtype=np.float32) + 0.5
    weight = np.ones(stop - start, np.float32)
    if fade_in is not None:
        a, b = fade_in
        weight *= np.clip((u - a) / (b - a), 0.0, 1.0)
    if fade_out is not None:
        a, b = fade_out
        weight *= np.clip((b - u) / (b - a), 0.0, 1.0)
    return weight


@dataclass
class TileStats:
    """What :func:`tiled` ran: tile count and the largest tile the network saw (input pixels)."""

    tiles: int = 0
    largest: tuple[int, int] = (0, 0)
    largest_buffer: int = 0  # float32 values in the biggest accumulation strip
    shapes: list[tuple[int, int]] = field(default_factory=list)


def tiled(frame: np.ndarray, scale: int, run: Runner, *, tile: int = TILE, overlap: int = OVERLAP,
          stats: TileStats | None = None) -> np.ndarray:
    """``run`` over ``frame`` in tiles of ``tile`` input pixels (each with ``overlap`` of context
    on the sides it shares), their outputs cross-faded over ``2 * overlap * scale`` output pixels."""
    if tile < 8 or overlap < 0 or 2 * overlap >= tile:
        raise InvalidArgumentError(f"tile {tile} and overlap {overlap} do not fit: need tile >= 8 "
                                   "and overlap < tile / 2")
    h, w = frame.shape[:2]
    s = scale
    out = np.empty((h * s, w * s, 3), np.uint8)
    rows = list(range(0, h, tile))
    cols = list(range(0, w, tile))
    carry: np.ndarray | None = None  # accumulated output rows shared with the next tile row
    for r, y in enumerate(rows):
        y_end = min(h, y + tile)
        y0, y1 = max(0, y - overlap), min(h, y_end + overlap)
        strip = np.zeros(((y1 - y0) * s, w * s, 3), np.float32)
        if carry is not None:
            strip[: carry.shape[0]] += carry
        fade_in_y = ((y - overlap) * s, (y + overlap) * s) if r > 0 else None
        fade_out_y = ((y_end - overlap) * s, (y_end + overlap) * s) if r < len(rows) - 1 else None
        wy = _ramp(y0 * s, y1 * s, fade_in_y, fade_out_y)
        for c, x in enumerate(cols):
            x_end = min(w, x + tile)
            x0, x1 = max(0, x - overlap), min(w, x_end + overlap)
            piece = run(np.ascontiguousarray(frame[y0:y1, x0:x1, :3]))
            if piece.shape[:2] != ((y1 - y0) * s, (x1 - x0) * s):
                raise InvalidArgumentError(f"the upscaler gave {piece.shape[1]}x{piece.shape[0]} for a "
                                           f"{x1 - x0}x{y1 - y0} tile at {s}x")
            fade_in_x = ((x - overlap) * s, (x + overlap) * s) if c > 0 else None
            fade_out_x = ((x_end - overlap) * s, (x_end + overlap) * s) if c < len(cols) - 1 else None
            wx = _ramp(x0 * s, x1 * s, fade_in_x, fade_out_x)
            strip[:, x0 * s:x1 * s] += piece * (wy[:, None, None] * wx[None, :, None])
            if stats is not None:
                stats.tiles += 1
                stats.shapes.append((x1 - x0, y1 - y0))
                if (x1 - x0) * (y1 - y0) > stats.largest[0] * stats.largest[1]:
                    stats.largest = (x1 - x0, y1 - y0)
        if stats is not None:
            stats.largest_buffer = max(stats.largest_buffer, strip.size)
        done = (y_end - overlap) if r < len(rows) - 1 else y1  # rows the next tile row cannot touch
        cut = (done - y0) * s
        out[y0 * s:done * s] = np.clip(np.rint(strip[:cut]), 0, 255).astype(np.uint8)
        carry = strip[cut:].copy() if r < len(rows) - 1 else None
    return out


class NcnnNet:
    """One ncnn network from a ``.param``/``.bin`` pair, on the CPU: ``uint8`` RGB in, float out."""

    def __init__(self, param: str | Path, weights: str | Path, *, threads: int | None = None) -> None:
        from kinema.core.extras import require

        ncnn = require("ncnn", "bundled", feature="Real-ESRGAN upscaling")
        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads or len(os.sched_getaffinity(0))
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise ModelNotFoundError("ncnn cannot load this model", path=weights,
                                     hint=f"run: kinema models fetch-bundled {BUNDLE} to repair it")

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        ncnn = self._ncnn
        h, w = rgb.shape[:2]
        mat = ncnn.Mat.from_pixels(np.ascontiguousarray(rgb), ncnn.Mat.PixelType.PIXEL_RGB, w, h)
        mat.substract_mean_normalize([], [1 / 255.0] * 3)
        ex = self.net.create_extractor()
        ex.input("data", mat)
        code, result = ex.extract("output")
        if code != 0:
            raise InvalidArgumentError(f"ncnn failed on a {w}x{h} tile (code {code})")
        return np.array(result).transpose(1, 2, 0) * 255.0


class RealEsrgan:
    """Real-ESRGAN ``model`` (``x4plus`` or ``animevideov3``) at ``scale`` (2, 3 or 4), tiled.

    ``folder`` holds the ``.param``/``.bin`` files (default: the bundled ``realesrgan``).
    """

    def __init__(self, model: str = "x4plus", scale: int = 4, *, folder: str | Path | None = None,
                 tile: int = TILE, overlap: int = OVERLAP, threads: int | None = None) -> None:
        if model not in MODELS:
            raise InvalidArgumentError(f"unknown Real-ESRGAN model {model!r}",
                                       hint=f"use one of {', '.join(MODELS)}")
        self.model = model
        self.scale = _check_scale(scale)
        self.native = self.scale if self.scale in NATIVE[model] else max(NATIVE[model])
        self.name = MODELS[model].format(scale=self.native)
        param, weights = self._files(folder)
        self.files = (param, weights)
        self.path = weights  # what a recipe names: the weights file, the bundled member
        self.bundled = (BUNDLE, f"{self.name}.bin") if folder is None else None
        self.device = "cpu"  # ncnn with Vulkan off
        self.net = NcnnNet(param, weights, threads=threads)
        self.tile, self.overlap = tile, overlap

    def _files(self, folder: str | Path | None) -> tuple[Path, Path]:
        from pathlib import Path

        if folder is not None:
            param, weights = Path(folder) / f"{self.name}.param", Path(folder) / f"{self.name}.bin"
            for path in (param, weights):
                if not path.is_file():
                    raise ModelNotFoundError("Real-ESRGAN model file not found", path=path,
                                             hint=f"run: kinema models fetch-bundled {BUNDLE}")
            return param, weights
        from kinema.models.bundled import model_file

        return model_file(BUNDLE, f"{self.name}.param"), model_file(BUNDLE, f"{self.name}.bin")

    def upscale(self, frame: np.ndarray, stats: TileStats | None = None) -> np.ndarray:
        """``frame`` (``uint8`` RGB or RGBA) ``scale`` times larger."""
        frame = check_frame(frame)
        out = tiled(frame, self.native, self.net, tile=self.tile, overlap=self.overlap, stats=stats)
        h, w = frame.shape[:2]
        if self.native != self.scale:
            import cv2

            out = cv2.resize(out, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LANCZOS4)
        if frame.shape[2] == 4:
            import cv2

            alpha = cv2.resize(frame[..., 3], (w * self.scale, h * self.scale),
                               interpolation=cv2.INTER_LANCZOS4)
            out = np.dstack([out, alpha])
        return out


class Lanczos:
    """The classical upscaler: OpenCV's Lanczos at ``scale`` (no weights)."""

    def __init__(self, scale: int = 4) -> None:
        self.scale = _check_scale(scale)
        self.name = "lanczos"

    def upscale(self, frame: np.ndarray, stats: Any = None) -> np.ndarray:
        return lanczos(frame, self.scale)
