"""Decoded frame to RGB ``uint8``: one conversion used by every path, so frames always match."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.frames import Frame

if TYPE_CHECKING:
    import av

# FFmpeg AVCOL_SPC / AVCOL_RANGE values.
_SPC_UNSPECIFIED = 2
_SPC_BT709 = 1
_SPC_BT470BG = 5
_RANGE_UNSPECIFIED = 0
_RANGE_MPEG = 1
_RANGE_JPEG = 2


_local = threading.local()


def _reformatter() -> av.video.reformatter.VideoReformatter:
    """This thread's swscale context: PyAV's ``VideoFrame.reformat`` builds a new one per
    call, which costs as much as decoding a small frame; a kept one is reused while the
    frames' size and format stay the same."""
    found = getattr(_local, "reformatter", None)
    if found is None:
        from av.video.reformatter import VideoReformatter

        found = _local.reformatter = VideoReformatter()
    return found


def to_rgb(frame: av.VideoFrame, rotation: int = 0, *, width: int | None = None,
           height: int | None = None, alpha: bool = False) -> Frame:
    """Convert a decoded frame to ``(H, W, 3)`` RGB ``uint8``, display rotation applied.

    With ``alpha`` the result is ``(H, W, 4)`` RGBA (opaque where the source has no alpha).
    Untagged YUV is read as players do: BT.709 from 720 lines up, BT.601 below, limited range.
    ``width``/``height`` resize (before rotation) with area averaging, for proxies and thumbnails.
    """
    out = "rgba" if alpha else "rgb24"
    reformatter = _reformatter()
    if _is_rgb(frame):
        rgb = reformatter.reformat(frame, width, height, out, interpolation="AREA")
    else:
        spc, rng = _source_color(frame)
        rgb = reformatter.reformat(frame, width, height, out, src_colorspace=spc,
                                   src_color_range=rng, interpolation="AREA")
    array = rgb.to_ndarray()
    return rotate(array, rotation)


def to_yuv(frame: av.VideoFrame, width: int, height: int, rotation: int = 0) -> np.ndarray:
    """A small ``(height, width, 3)`` full-range YCbCr ``uint8`` copy of a frame (luma first),
    display rotation applied; ``width``/``height`` are before rotation.

    For analysis: YUV sources are only scaled (area averaging) and stretched to full range,
    with no RGB in between, in one swscale pass; colours keep the source's matrix.
    """
    if _is_rgb(frame):
        yuv = _reformatter().reformat(frame, width, height, "yuv444p", dst_colorspace=_SPC_BT470BG,
                                      dst_color_range=_RANGE_JPEG, interpolation="AREA")
    else:
        spc, rng = _source_color(frame)
        yuv = _reformatter().reformat(frame, width, height, "yuv444p", src_colorspace=spc,
                                      dst_colorspace=spc, src_color_range=rng,
                                      dst_color_range=_RANGE_JPEG, interpolation="AREA")
    return rotate(np.ascontiguousarray(yuv.to_ndarray().transpose(1, 2, 0)), rotation)


def _is_rgb(frame: av.VideoFrame) -> bool:
    return frame.format.name.startswith(("rgb", "bgr", "gbr")) or frame.format.name in ("gray", "pal8")


def _source_color(frame: av.VideoFrame) -> tuple[int, int]:
    """The YUV frame's colorspace and range; untagged is read as players do (BT.709 from 720
    lines up, BT.601 below, limited range)."""
    spc = frame.colorspace if frame.colorspace != _SPC_UNSPECIFIED else (
        _SPC_BT709 if frame.height >= 720 else _SPC_BT470BG)
    rng = frame.color_range if frame.color_range != _RANGE_UNSPECIFIED else _RANGE_MPEG
    return spc, rng


def rotate(array: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (FFmpeg convention: degrees counter-clockwise)."""
    k = (round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(array, k)) if k else array


def display_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """``(w, h)`` after rotation."""
    return (height, width) if round(rotation / 90) % 2 else (width, height)
