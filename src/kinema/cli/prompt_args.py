"""Prompt options as typed on the command line, turned into :class:`Prompt` objects."""

from __future__ import annotations

from pathlib import Path

from kinema.core.errors import InvalidArgumentError
from kinema.vision.base import Prompt


def _numbers(text: str, count: int, option: str, shape: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise InvalidArgumentError(f"{option} {text!r} is not {shape}")
    return values


def _at(value: str, option: str, default_frame: int | None, shape: str) -> tuple[str, int]:
    """``VALUE@FRAME`` split; the frame may be left out when there is a default."""
    body, sep, frame = value.rpartition("@")
    if sep and frame.strip().lstrip("-").isdigit():
        return body, int(frame)
    if default_frame is None:
        raise InvalidArgumentError(f"{option} {value!r} does not say which frame",
                                   hint=f"write it as {shape}@FRAME, e.g. {option} {shape}@0")
    return value, default_frame


def parse_prompts(pairs: list[tuple[str, str]], default_frame: int | None) -> list[Prompt]:
    """One :class:`Prompt` per prompt option, in order; ``--object ID`` sets the object of the
    options after it. Frames come from ``@FRAME`` or ``default_frame``."""
    from kinema.media.image import read_labels

    object_id, prompts = 1, []
    for option, value in pairs:
        if option == "--object":
            try:
                object_id = int(value)
            except ValueError:
                raise InvalidArgumentError(f"--object {value!r} is not a number") from None
            continue
        if option in ("--point", "--neg"):
            body, frame = _at(value, option, default_frame, "X,Y")
            x, y = _numbers(body, 2, option, "X,Y")
            prompts.append(Prompt(frame=frame, object_id=object_id, points=((x, y),),
                                  labels=(1 if option == "--point" else 0,)))
        elif option == "--box":
            body, frame = _at(value, option, default_frame, "X0,Y0,X1,Y1")
            x0, y0, x1, y1 = _numbers(body, 4, option, "X0,Y0,X1,Y1")
            prompts.append(Prompt(frame=frame, object_id=object_id, box=(x0, y0, x1, y1)))
        elif option == "--text":
            body, frame = _at(value, option, default_frame, "WORDS")
            if not body.strip():
                raise InvalidArgumentError("--text needs words, e.g. --text person@0")
            prompts.append(Prompt(frame=frame, object_id=object_id, text=body.strip()))
        elif option == "--mask":
            body, frame = _at(value, option, default_frame, "MASK.png")
            if not Path(body).is_file():
                raise InvalidArgumentError("no such mask image", path=body)
            prompts.append(Prompt(frame=frame, object_id=object_id, mask=read_labels(body) > 0))
        else:
            raise InvalidArgumentError(f"unknown prompt option {option}")
    return prompts


def parse_range(text: str | None) -> tuple[int, int | None]:
    """``--range A:B`` as ``(A, B)``; either side may be left out (``None``: to the end)."""
    if text is None:
        return 0, None
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(a) if a else 0), (int(b) if b else None)
    except ValueError:
        raise InvalidArgumentError(f"not a frame range: {text!r} (use A:B, e.g. 0:100)") from None


def parse_lora(text: str) -> tuple[Path, float]:
    """``--lora FILE:W`` (or ``FILE``, at weight 1) as ``(FILE, W)``."""
    path, colon, weight = text.rpartition(":")
    if not colon or not path:
        return Path(text), 1.0
    try:
        return Path(path), float(weight)
    except ValueError:
        return Path(text), 1.0  # a colon in the file's name, no weight


def parse_at(at: str) -> tuple[float, float, int]:
    """``--at X,Y@FRAME`` as ``(x, y, frame)``."""
    body, frame = _at(at, "--at", None, "X,Y")
    x, y = _numbers(body, 2, "--at", "X,Y")
    return x, y, frame


def mask_pictures(pairs: list[tuple[str, str]]) -> list[Path | None]:
    """For each prompt of :func:`parse_prompts` (same order), the mask picture a ``--mask``
    option named, else ``None``: what a remote worker is sent instead of the array."""
    return [Path(_at(value, option, 0, "PNG")[0]) if option == "--mask" else None
            for option, value in pairs if option != "--object"]
