"""Restyle an object on key frames: inpaint inside its matte, leave every other pixel alone.

For each key, the frame is cut around the object's matte (with some context), scaled to the
working size, inpainted inside the object's region with the key's ControlNet conditions cut
and scaled the same way, scaled back and composited through the matte: where the matte is 0
the key is the source frame, bit for bit. Every key is cut at the same size in frame pixels
and worked on at the same size in model pixels (:func:`plan_window`), so with one seed every
key starts from the same initial noise, at the same scale: the keys look like one style.

With ``grid`` > 1, ``grid`` x ``grid`` keys are tiled into one picture and inpainted in one
call (each tile a ``grid``-th of the working size), which makes them more alike still.

Arrays in, arrays out; keys are taken from an iterable and given back one at a time, so a
caller can stream frames from a video and write each key when it is done.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.generate.sdxl import Control, ImageGenerator, Request, StepCallback

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, end excluded."""


@dataclass(frozen=True)
class KeyControl:
    """A ControlNet condition of one key: the loaded ControlNet ``net``, its control image (a
    full-frame array, cut and scaled like the frame, or a function making it from the cut and
    scaled frame, such as canny edges at the model's scale), weight and range (0 to 1)."""

    net: str
    image: np.ndarray | Callable[[np.ndarray], np.ndarray]
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass(frozen=True)
class Key:
    """A frame to restyle: its index, pixels ``(H, W, 3) uint8``, the ``region`` the model
    repaints (``bool (H, W)``: the object's mask grown by the margin), the ``alpha`` the result
    is composited through (``float (H, W)`` in [0, 1]: the region feathered; where it is 0 the
    source stays) and its conditions."""

    frame: int
    image: np.ndarray
    region: np.ndarray
    alpha: np.ndarray
    controls: Sequence[KeyControl] = ()


@dataclass(frozen=True)
class Settings:
    """How to restyle: prompts, seed, how far from the source (``strength``), and sampling
    (unset: the model's card)."""

    prompt: str
    negative: str = ""
    seed: int = 0
    strength: float = 0.7
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None


@dataclass(frozen=True)
class Window:
    """What every key is cut to: ``crop`` (w, h) frame pixels around its matte, worked on at
    ``size`` (w, h) model pixels per key, ``grid`` x ``grid`` keys per picture."""

    crop: tuple[int, int]
    size: tuple[int, int]
    grid: int = 1

    @property
    def cells(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class Restyled:
    """A finished key: its frame index and the frame with the object restyled."""

    frame: int
    image: np.ndarray


def matte_box(alpha: np.ndarray) -> Box | None:
    """The bounds of ``alpha``'s non-zero pixels, or ``None`` when it is all zero."""
    rows = np.flatnonzero(np.asarray(alpha).any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(np.asarray(alpha)[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def plan_window(boxes: Sequence[Box], frame_size: tuple[int, int], *, area: int,
                context: float = 0.125, grid: int = 1) -> Window:
    """The window every key is cut to: the largest matte box's width and height plus
    ``context`` of the larger side on every side (at least 8 pixels), within the frame; worked
    on at the same aspect in multiples of 8 whose ``grid`` x ``grid`` tiles fill ``area``."""
    if not boxes:
        raise InvalidArgumentError("no key frames to restyle")
    if grid < 1:
        raise InvalidArgumentError(f"a grid of {grid} x {grid} keys is no grid")
    width, height = frame_size
    box_w = max(b[2] - b[0] for b in boxes)
    box_h = max(b[3] - b[1] for b in boxes)
    pad = max(8, math.ceil(context * max(box_w, box_h)))
    crop = (min(width, box_w + 2 * pad), min(height, box_h + 2 * pad))
    tile_area = area / (grid * grid)
    aspect = crop[0] / crop[1]
    size = (_multiple_of_8(math.sqrt(tile_area * aspect)), _multiple_of_8(math.sqrt(tile_area / aspect)))
    return Window(crop, size, grid)


def _multiple_of_8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


def crop_box(box: Box, crop: tuple[int, int], frame_size: tuple[int, int]) -> Box:
    """A ``crop``-sized box centred on ``box``, moved inside the frame."""
    (cw, ch), (width, height) = crop, frame_size
    x = min(max(0, (box[0] + box[2] - cw) // 2), width - cw)
    y = min(max(0, (box[1] + box[3] - ch) // 2), height - ch)
    return x, y, x + cw, y + ch


def restyle_keys(generator: ImageGenerator, keys: Iterable[Key], window: Window, settings: Settings,
                 on_step: StepCallback | None = None) -> Iterator[Restyled]:
    """Each key of ``keys`` restyled, in order, as soon as its picture is made (``grid`` x
    ``grid`` keys at a time); ``on_step`` after each denoising step of each picture."""
    keys = iter(keys)
    while group := list(islice(keys, window.cells)):
        yield from _restyle_group(generator, group, window, settings, on_step)


def _restyle_group(generator: ImageGenerator, group: list[Key], window: Window, settings: Settings,
                   on_step: StepCallback | None) -> Iterator[Restyled]:
    boxes = [_key_box(key, window) for key in group]
    cuts = [_cut_key(key, box, window.size) for key, box in zip(group, boxes, strict=True)]
    nets = list(dict.fromkeys(c.net for key in group for c in key.controls))
    controls = []
    for net in nets:
        first = next(c for key in group for c in key.controls if c.net == net)
        images = [cut[2].get(net) for cut in cuts]
        controls.append(Control(net, _tile(images, window), first.weight, first.start, first.end))
    picture = _tile([cut[0] for cut in cuts], window)
    mask = _tile([cut[1] for cut in cuts], window)
    request = Request(settings.prompt, settings.negative, settings.seed, settings.steps,
                      settings.guidance, settings.scheduler, size=(picture.shape[1], picture.shape[0]),
                      image=picture, mask=mask, strength=settings.strength, controls=controls)
    made = generator.generate(request, on_step)
    for k, (key, box) in enumerate(zip(group, boxes, strict=True)):
        yield Restyled(key.frame, composite(key, _untile(made, k, window), box))


def _key_box(key: Key, window: Window) -> Box:
    box = matte_box(key.alpha)
    if box is None:
        raise InvalidArgumentError(f"the matte of key frame {key.frame} is empty",
                                   hint="restyle frames where the object is")
    height, width = key.image.shape[:2]
    return crop_box(box, window.crop, (width, height))


def _cut_key(key: Key, box: Box,
             size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The key's picture, repaint mask and control images cut to ``box`` and scaled to ``size``."""
    x0, y0, x1, y1 = box
    picture = resize(key.image[y0:y1, x0:x1], size)
    mask = resize(key.region[y0:y1, x0:x1].astype(np.float32), size)
    controls = {c.net: (c.image(picture) if callable(c.image) else resize(c.image[y0:y1, x0:x1], size))
                for c in key.controls}
    return picture, mask, controls


def _tile(images: list[np.ndarray | None], window: Window) -> np.ndarray:
    """``images`` (each ``window.size``; ``None`` is black: no condition, nothing repainted)
    laid out ``grid`` x ``grid``, row by row; a single key as it is."""
    w, h = window.size
    first = next(i for i in images if i is not None)
    if window.grid == 1:
        return first
    out = np.zeros((h * window.grid, w * window.grid, *first.shape[2:]), first.dtype)
    for k, image in enumerate(images):
        if image is not None:
            row, col = divmod(k, window.grid)
            out[row * h:(row + 1) * h, col * w:(col + 1) * w] = image
    return out


def _untile(picture: np.ndarray, k: int, window: Window) -> np.ndarray:
    w, h = window.size
    row, col = divmod(k, window.grid)
    return picture[row * h:(row + 1) * h, col * w:(col + 1) * w]


def composite(key: Key, made: np.ndarray, box: Box) -> np.ndarray:
    """``made`` (the restyled cut of ``key``) scaled back into ``box`` of the key's frame
    through its alpha; every pixel where alpha is 0 is the source's, unchanged."""
    x0, y0, x1, y1 = box
    out = key.image.copy()
    alpha = np.asarray(key.alpha[y0:y1, x0:x1], np.float32)[..., None]
    source = key.image[y0:y1, x0:x1]
    back = resize(made, (x1 - x0, y1 - y0)).astype(np.float32)
    mixed = np.round(alpha * back + (1 - alpha) * source).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(alpha > 0, mixed, source)
    return out


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (w, h): area averaging to shrink, bicubic (clipped to the input's
    range) to enlarge; as it is when already that size."""
    import cv2

    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    out = cv2.resize(np.ascontiguousarray(image), size,
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if image.dtype.kind == "f":  # bicubic overshoots; a mask stays in [0, 1]
        out = np.clip(out, 0.0, 1.0)
    return out
