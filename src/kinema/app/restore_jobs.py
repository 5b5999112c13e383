"""Interpolate, upscale and find speech: use cases over the interpolate, upscale and speech backends.

``interpolate_video`` and ``upscale_media`` are generators of ``core.jobs.Progress`` (one event per
frame written) that write their output atomically and keep the source's sound in sync;
``speech_spans`` reads a file's sound at 16 kHz mono and returns where someone speaks.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Progress, Steps

if TYPE_CHECKING:
    from kinema.search.speech import Span

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")
WRITABLE_IMAGES = (".png", ".exr")


def output_rate(source: Fraction, factor: int | None, fps: Fraction | float | str | None) -> Fraction:
    """The output frame rate: ``source * factor`` or ``fps`` (exactly one of them)."""
    from kinema.core.timebase import to_fraction

    if (factor is None) == (fps is None):
        raise InvalidArgumentError("give --factor or --fps (one of them)")
    if factor is not None:
        if factor < 2:
            raise InvalidArgumentError(f"--factor must be 2 or more, got {factor}")
        return source * factor
    rate = to_fraction(fps)  # type: ignore[arg-type]
    if rate <= 0:
        raise InvalidArgumentError(f"--fps must be positive, got {fps}")
    return rate


def interpolate_video(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      factor: int | None = None, fps: Fraction | float | str | None = None,
                      backend: str = "rife", codec: str | None = None, overwrite: bool = False,
                      device: Any = None, interpolator: Any = None) -> Steps[Fraction]:
    """``src`` at a new frame rate, in-betweens made by ``backend``; returns the output rate.

    Output frame ``k`` shows the source at ``k / rate`` seconds: a source frame where one falls
    there, else the in-between at the fraction of the way to the next frame. The output lasts as
    long as the source (its last frame is held) and carries its sound from the same start.
    """
    from kinema.core.atomic import check_not_input
    from kinema.media import open_video
    from kinema.media.codecs import codec_for
    from kinema.media.container import has_audio
    from kinema.media.writer import VideoWriter
    from kinema.models import backends

    target = Path(dst)
    check_not_input(target, [src])
    with open_video(src, prefetch=False) as reader:
        rate = output_rate(reader.fps, factor, fps)
        n = len(reader)
        count = max(1, int(n * rate / reader.fps))
        model = interpolator or backends.create("interpolate", backend, device=device)
        spec = codec_for(target, codec, False)
        audio = src if not spec.image_sequence and has_audio(src) else None
        pair: dict[int, Any] = {}

        def frame(i: int) -> Any:
            i = min(i, n - 1)
            if i not in pair:
                for old in [k for k in pair if k < i - 1]:
                    del pair[old]
                pair[i] = reader[i]
            return pair[i]

        with VideoWriter(target, rate, reader.size, codec=spec.name, audio_from=audio,
                         audio_start=reader.start_time, overwrite=overwrite) as writer:
            for k in range(count):
                at = Fraction(k) * reader.fps / rate  # in source frames
                i, t = int(at), at - int(at)
                if t == 0 or i >= n - 1:
                    writer.write(frame(i))
                else:
                    writer.write(model.interpolate(frame(i), frame(i + 1), float(t)))
                yield Progress(k + 1, count, "frames")
    return rate


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_TYPES


def upscale_media(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, scale: int = 4,
                  model: str = "x4plus", codec: str | None = None, overwrite: bool = False,
                  upscaler: Any = None) -> Steps[tuple[int, int]]:
    """``src`` (an image or a video) ``scale`` times larger with backend ``model``; returns the
    output size. Videos keep their rate and sound; images go to ``.png`` or ``.exr``."""
    from kinema.core.atomic import check_can_write, check_not_input
    from kinema.models import backends

    target = Path(dst)
    check_not_input(target, [src])
    if is_image(src) != is_image(target) and not (is_image(src) and target.suffix == ""):
        raise InvalidArgumentError("an image upscales to an image (.png, .exr) and a video to a video",
                                   path=target)
    if is_image(src):
        from kinema.media.image import read_image, write_image

        if target.suffix.lower() not in WRITABLE_IMAGES:
            raise InvalidArgumentError(f"cannot write {target.suffix or 'an image without a type'}",
                                       path=target, hint="use .png or .exr")
        check_can_write(target, overwrite)
        image = read_image(src)
        if image.dtype != "uint8":
            raise InvalidArgumentError("only 8-bit images can be upscaled", path=src)
        if image.ndim == 2:
            import numpy as np

            image = np.dstack([image] * 3)
        net = upscaler or backends.create("upscale", model, scale)
        out = net.upscale(image)
        write_image(target, out)
        yield Progress(1, 1, "frames")
        return out.shape[1], out.shape[0]

    from kinema.media import open_video
    from kinema.media.codecs import codec_for
    from kinema.media.container import has_audio
    from kinema.media.writer import VideoWriter

    with open_video(src, prefetch=False) as reader:
        size = (reader.size[0] * scale, reader.size[1] * scale)
        spec = codec_for(target, codec, False)
        audio = src if not spec.image_sequence and has_audio(src) else None
        net = upscaler or backends.create("upscale", model, scale)
        with VideoWriter(target, reader.fps, size, codec=spec.name, audio_from=audio,
                         audio_start=reader.start_time, overwrite=overwrite) as writer:
            total = len(reader)
            for k, frame in enumerate(reader.frames()):
                writer.write(net.upscale(frame))
                yield Progress(k + 1, total, "frames")
    return size


def speech_spans(path: str | os.PathLike[str], *, backend: str = "silero",
                 threshold: float = 0.5) -> list[Span]:
    """Where someone speaks in ``path``'s first audio stream: spans in seconds from its start."""
    from kinema.core.errors import UnsupportedMediaError
    from kinema.media.audio import read_audio
    from kinema.media.probe import probe
    from kinema.models import backends
    from kinema.search.speech import RATE, find_speech

    info = probe(path)
    if not info.audio:
        raise UnsupportedMediaError("has no sound to look for speech in", path=path)
    duration = info.audio[0].duration or info.duration
    if not duration:
        return []
    samples = read_audio(path, Fraction(0), Fraction(duration).limit_denominator(RATE), rate=RATE,
                         channels=1)[0]
    vad = backends.create("speech", backend)
    return find_speech(samples, vad, rate=RATE, threshold=threshold)
