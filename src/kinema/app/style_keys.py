"""Styled key frames: where they come from and the checks every command makes of them.

A key is a whole styled frame of the footage, an RGB image (an 8- or 16-bit PNG, or an EXR
in linear light; read as 8-bit sRGB, the footage's depth) named by the frame it styles:
``kinema restyle -o KEYS`` writes ``KEYS/00024.png`` for frame 24, an artist gives
``24=painted.png`` or ``24=painted.exr``. ``kinema propagate`` carries keys through a shot;
``kinema export ebsynth`` hands them to EbSynth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from kinema.core.errors import InvalidArgumentError, MediaOpenError

KEY_NAME = re.compile(r"^(\d+)\.png$")
"""A key's file name in a keys folder: its frame number (``00024.png``)."""


def keys_in_folder(folder: str | os.PathLike[str]) -> dict[int, Path]:
    """The keys of a restyle output folder by frame (``00024.png`` is frame 24)."""
    path = Path(folder)
    if not path.is_dir():
        raise MediaOpenError("keys folder not found", path=path,
                             hint="give the folder kinema restyle -o wrote, or FRAME=IMAGE")
    found = {int(m.group(1)): entry for entry in sorted(path.iterdir())
             if (m := KEY_NAME.match(entry.name)) and entry.is_file()}
    if not found:
        raise InvalidArgumentError("holds no keys named by frame (00024.png)", path=path,
                                   hint="give the folder kinema restyle -o wrote, or FRAME=IMAGE")
    return found


def parse_keys(values: Iterable[str], option: str = "--keys") -> dict[int, Path]:
    """Key options, each a keys folder or ``FRAME=IMAGE``, as key images by frame; two keys
    for one frame are an error."""
    found: dict[int, Path] = {}
    for value in values:
        frame, equals, image = value.partition("=")
        if equals:
            if not image or not frame.strip().isdigit():
                raise InvalidArgumentError(f"{option} {value!r} is neither a folder nor FRAME=IMAGE",
                                           hint=f"e.g. {option} keys/ or {option} 24=painted.png")
            more = {int(frame): Path(image)}
        else:
            more = keys_in_folder(value)
        for k, path in more.items():
            if k in found:
                raise InvalidArgumentError(f"frame {k} has two keys", path=path,
                                           hint="give one key per frame")
            found[k] = path
    return found


def read_key(frame: int, path: str | os.PathLike[str], *, size: tuple[int, int], frames: int,
             start: int, end: int, footage: str | os.PathLike[str]) -> np.ndarray:
    """Key ``path`` of ``frame``, checked, as RGB ``uint8``: an RGB image of the footage's
    ``size`` on a frame inside the clip's ``frames`` and the range ``[start, end)``."""
    from kinema.media.image import read_image

    path, name = Path(path), Path(footage).name
    if not path.is_file():
        raise MediaOpenError("key image not found", path=path, hint="give a PNG of a styled frame")
    if not 0 <= frame < frames:
        raise InvalidArgumentError(f"is the key of frame {frame}, but {name} has frames 0-{frames - 1}",
                                   path=path, hint="name a frame inside the clip")
    if not start <= frame < end:
        raise InvalidArgumentError(f"is the key of frame {frame}, outside the range {start}:{end}",
                                   path=path, hint="widen --start/--end or leave this key out")
    try:
        image = read_image(path)
    except Exception as exc:  # any decoder's complaint, as one line
        raise MediaOpenError(f"cannot be read as an image: {exc}", path=path, hint="give a PNG") from exc
    if image.dtype == np.uint16:  # a 16-bit painting: to the footage's 8 bits
        image = np.rint(image / np.float32(257)).astype(np.uint8)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise InvalidArgumentError(f"is a {image.dtype} image, not RGB", path=path,
                                   hint="save the key as an RGB PNG or EXR")
    if (image.shape[1], image.shape[0]) != tuple(size):
        raise InvalidArgumentError(f"is {image.shape[1]}x{image.shape[0]} but {name} is {size[0]}x{size[1]}",
                                   path=path, hint="give keys of the footage's size (whole frames)")
    return np.ascontiguousarray(image[..., :3])
