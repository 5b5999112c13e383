"""Frame and mask conventions: RGB(A) ``uint8`` arrays, boolean masks, float mattes."""

from __future__ import annotations

import os
from typing import Literal, Protocol, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from kinema.core.errors import InvalidArgumentError

Frame: TypeAlias = npt.NDArray[np.uint8]
"""``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, ``uint8``."""

Mask: TypeAlias = npt.NDArray[np.bool_]
"""``(H, W)`` boolean."""

Matte: TypeAlias = npt.NDArray[np.float32] | npt.NDArray[np.uint8]
"""``(H, W)`` soft alpha, ``float32`` in [0, 1] or ``uint8``."""

BlendMode = Literal["normal", "multiply", "screen", "add", "overlay", "darken", "lighten"]
"""How a layer's colour combines with the layers under it (the W3C separable blend modes)."""
BLEND_MODES: tuple[BlendMode, ...] = get_args(BlendMode)


class FrameSource(Protocol):
    """Random access to a video's RGB frames by index (``kinema.media.VideoReader`` is one;
    so is a list of arrays). Capabilities take this, never a file, so they do no I/O."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Frame: ...


def check_frame(frame: np.ndarray, size: tuple[int, int] | None = None, *,
                alpha: bool | None = None) -> Frame:
    """Validate a frame's dtype and shape (``size`` is ``(w, h)``) and return it contiguous."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        raise InvalidArgumentError(
            f"a frame must be a uint8 array (H, W, 3|4), got {_describe(frame)}")
    channels = frame.shape[2]
    if channels not in (3, 4) or (alpha is True and channels != 4) or (alpha is False and channels != 3):
        want = {True: "4 (RGBA)", False: "3 (RGB)", None: "3 or 4"}[alpha]
        raise InvalidArgumentError(f"a frame must have {want} channels, got {channels}")
    if size is not None and (frame.shape[1], frame.shape[0]) != tuple(size):
        raise InvalidArgumentError(
            f"frame is {frame.shape[1]}x{frame.shape[0]}, expected {size[0]}x{size[1]}")
    return np.ascontiguousarray(frame)


def check_mask(mask: np.ndarray) -> Mask:
    """Validate a mask: 2-D, converted to ``bool``."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise InvalidArgumentError(f"a mask must be a 2-D array, got {_describe(mask)}")
    return mask.astype(bool, copy=False)


def frame_range(total: int, start: int, stop: int | None, *,
                path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Frames ``[start, stop)`` of ``total`` (``stop`` None: to the end). A range that is
    empty or reaches past either end is an error naming the valid range, never clamped."""
    end = total if stop is None else stop
    if not 0 <= start < end <= total:
        raise InvalidArgumentError(f"frames {start}:{end} are not inside 0:{total}", path=path,
                                   hint=f"give frames A:B with 0 <= A < B <= {total}")
    return start, end


def check_index(index: int, total: int, *, path: str | os.PathLike[str] | None = None) -> int:
    """``index`` if it names one of ``total`` frames, else an error naming the valid range."""
    if not 0 <= index < total:
        raise InvalidArgumentError(f"frame {index} is not one of the {total} frames (0-{total - 1})",
                                   path=path)
    return index


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
