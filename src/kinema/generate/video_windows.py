"""Long clips through a video diffusion model in bounded memory: windows with overlap.

A video model denoises a window of frames together; a shot longer than one window is cut into
windows of ``size`` frames, each sharing ``overlap`` frames with the one before
(:func:`plan_windows`). Only one window's frames, and the shared frames of the one before,
are ever held (:class:`Stitcher`), so memory does not grow with the shot.

Where two windows share frames, both made them: the output crossfades from the earlier
window's to the later one's across the shared frames (the weight of the later one rising
``1/(n+1), 2/(n+1) ... n/(n+1)``), so no frame is a cut from one window to the next. The
engines make the two windows agree before the crossfade: each frame's starting noise depends
only on the seed and the frame's index in the shot (:func:`frame_noise`), so a shared frame
starts from the same noise in both windows, and an engine may hand the later window what
the earlier one made of the shared frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError

StepCallback = Callable[[int, int], None]
"""Told ``(step, steps)`` after each denoising step of a window."""


@dataclass(frozen=True)
class VideoRequest:
    """What a restyle of a shot asks for: words, how far from the source (``strength``), steps,
    guidance, seed, the weight of each control kind, and the working ``size`` (W, H)."""

    prompt: str
    negative: str = ""
    strength: float = 0.6
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0
    size: tuple[int, int] = (512, 512)
    control_weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` of the shot: the first ``skip`` already out (made again only to
    lead into the rest), the ``shared`` after them also made by the window before."""

    start: int
    stop: int
    shared: int = 0
    skip: int = 0

    @property
    def blend_from(self) -> int:
        """The first frame this window's output counts for."""
        return self.start + self.skip

    @property
    def frames(self) -> range:
        """The window's frame indices in the shot."""
        return range(self.start, self.stop)


def plan_windows(frames: int, size: int, overlap: int, *, multiple: int = 1) -> list[Window]:
    """Windows of ``size`` frames covering ``frames`` frames, each sharing ``overlap`` frames with
    the one before; the last one is moved back to end with the shot (leading in through frames
    already out where it reaches them: its ``skip``). A shot no
    longer than a window is one window of its length. ``multiple``: a model that takes
    ``multiple * k + 1`` frames (Wan: 4) needs ``size`` of that form; a short shot's window is
    then the longest such length (the caller holds the last frame for the rest)."""
    if frames < 1:
        raise InvalidArgumentError("the shot has no frames to restyle")
    if size < 1 or (size - 1) % multiple:
        form = f"{multiple}k+1 (e.g. {multiple * 4 + 1})" if multiple > 1 else "at least 1"
        raise InvalidArgumentError(f"--window {size}: this model takes windows of {form} frames")
    if frames <= size:
        return [Window(0, frames)]
    if not 1 <= overlap < size:
        raise InvalidArgumentError(f"--overlap {overlap} must be between 1 and the window ({size}) - 1",
                                   hint="windows must share frames so their seams blend")
    windows = [Window(0, size)]
    for start in [*range(size - overlap, frames - size, size - overlap), frames - size]:
        before = windows[-1]
        skip = max(0, before.blend_from + before.shared - start)  # the last one, moved back
        windows.append(Window(start, start + size, before.stop - start - skip, skip))
    return windows


def check_window(frames: int, size: int) -> None:
    """A window longer than the shot is refused (one line) when the user asked for it."""
    if size > frames:
        raise InvalidArgumentError(f"--window {size} is longer than the shot ({frames} frames)",
                                   hint=f"give --window {frames} or less")


def crossfade(earlier: Sequence[np.ndarray], later: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Shared frames made by two windows, blended from the ``earlier`` window's towards the
    ``later`` one's (``uint8``)."""
    n = len(earlier)
    out = []
    for j, (a, b) in enumerate(zip(earlier, later, strict=True)):
        t = (j + 1) / (n + 1)
        out.append(np.clip(np.rint(a * (1 - t) + b.astype(np.float32) * t), 0, 255).astype(np.uint8))
    return out


class Stitcher:
    """Each window's frames in, the shot's frames out in order: the frames a window shares
    with the next are held until the next one comes, then crossfaded."""

    def __init__(self) -> None:
        self.held: list[np.ndarray] = []
        self.held_from = 0

    def add(self, window: Window, frames: Sequence[np.ndarray],
            next_window: Window | None) -> Iterator[tuple[int, np.ndarray]]:
        """Frames finished once ``window``'s ``frames`` are in: the shared ones crossfaded with
        the held ones, then those not shared with ``next_window`` (held for it)."""
        if len(frames) != window.stop - window.start:
            raise ValueError(f"window {window} got {len(frames)} frames")
        first, shared = window.skip, window.shared
        if shared != len(self.held) or (shared and self.held_from != window.blend_from):
            raise ValueError(f"window {window} does not follow the one before")
        if shared:
            for k, image in enumerate(crossfade(self.held, frames[first:first + shared])):
                yield window.blend_from + k, image
        keep = 0 if next_window is None else window.stop - next_window.blend_from
        for k in range(first + shared, len(frames) - keep):
            yield window.start + k, np.asarray(frames[k])
        self.held = [np.asarray(f) for f in frames[len(frames) - keep:]] if keep else []
        self.held_from = window.stop - keep


def frame_seed(seed: int, index: int) -> int:
    """The seed of frame ``index``'s starting noise in a shot made with ``seed``."""
    return (seed * 1_000_003 + index) % 2**63


def frame_noise(seed: int, indices: Sequence[int], shape: tuple[int, ...]) -> Any:
    """Starting noise for the frames ``indices`` of a shot, stacked on a new first axis: each
    frame's from its own CPU generator (:func:`frame_seed`), so a frame gets the same noise in
    every window and on every device."""
    import torch

    return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(
        frame_seed(seed, i))) for i in indices])
