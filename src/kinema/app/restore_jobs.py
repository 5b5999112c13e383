"""Interpolate, upscale and find speech: use cases over the interpolate, upscale and speech backends.

``interpolate_video`` and ``upscale_media`` are generators of ``core.jobs.Progress`` (one event per
frame written) that write their output atomically, keep the source's sound in sync and record
their recipe beside the output (and in a project when given: :mod:`kinema.app.operation_records`);
``speech_spans`` reads a file's sound at 16 kHz mono and returns where someone speaks.

Interpolation times its in-betweens by the source's real presentation times when its rate
varies, and (with the cut guard, the default) repeats a source frame instead of blending two
shots across a hard cut that kinema's shot detector finds.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Progress, Steps, mapped

if TYPE_CHECKING:
    from kinema.search.speech import Span

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")
WRITABLE_IMAGES = (".png", ".exr")


@dataclass(frozen=True)
class Interpolated:
    """What :func:`interpolate_video` wrote: ``frames`` frames at ``rate``; ``cuts`` the source
    frames a hard cut begins at (found with the cut guard on), ``held`` the output frames that
    repeat a source frame there instead of an in-between; ``record`` the provenance record."""

    output: Path
    rate: Fraction
    frames: int
    vfr: bool
    cuts: tuple[int, ...]
    held: int
    record: Path


def output_rate(source: Fraction, factor: int | None, fps: Fraction | float | str | None) -> Fraction:
    """The output frame rate: ``source * factor`` or ``fps`` (exactly one of them)."""
    from kinema.core.timebase import to_fraction

    if (factor is None) == (fps is None):
        raise InvalidArgumentError("give --factor or --fps (one of them)")
    if factor is not None:
        if factor < 2:
            raise InvalidArgumentError(f"--factor must be 2 or more, got {factor}")
        return source * factor
    try:
        rate = to_fraction(fps)  # type: ignore[arg-type]
    except (ValueError, ZeroDivisionError) as exc:
        raise InvalidArgumentError(f"--fps is not a frame rate: {fps!r}",
                                   hint="give a number or a ratio, e.g. 60 or 60000/1001") from exc
    if rate <= 0:
        raise InvalidArgumentError(f"--fps must be positive, got {fps}")
    return rate


def source_positions(count: int, rate: Fraction, *, frames: int, fps: Fraction | None = None,
                     times: Sequence[Fraction] | None = None) -> Iterator[tuple[int, Fraction]]:
    """Where each of ``count`` output frames at ``rate`` falls in a source of ``frames`` frames:
    ``(i, t)``, the fraction ``t`` in [0, 1) of the way from source frame ``i`` to ``i + 1``.

    Output frame ``k`` shows the source at ``k / rate`` seconds after its first frame. Source
    frame ``i`` is at ``i / fps`` (a constant rate, exact whatever the container rounded its
    timestamps to) or, given ``times``, at its real presentation time ``times[i]`` (a variable
    rate: the weight of an in-between follows the real gap between the frames around it).
    From the last source frame on, that frame is held (``t == 0``).
    """
    if (fps is None) == (times is None):
        raise InvalidArgumentError("give the source's rate or its frame times (one of them)")
    last = frames - 1
    for k in range(count):
        at = Fraction(k) / rate
        if times is None:
            position = at * fps  # type: ignore[operator]
            i = int(position)
            t = position - i
        else:
            i = bisect_right(times, at) - 1
            t = (at - times[i]) / (times[i + 1] - times[i]) if 0 <= i < last else Fraction(0)
        yield (last, Fraction(0)) if i >= last else (max(i, 0), t)


def across_cut(i: int, t: Fraction, cuts: Container[int]) -> int | None:
    """The source frame to repeat for an in-between at ``t`` between frames ``i`` and ``i + 1``
    when a hard cut begins at ``i + 1`` (the nearer of the two, the earlier at the middle: what
    the source shows then); ``None`` where no cut lies between them."""
    if t == 0 or i + 1 not in cuts:
        return None
    return i + 1 if t > Fraction(1, 2) else i


def interpolate_video(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      factor: int | None = None, fps: Fraction | float | str | None = None,
                      backend: str = "flow", codec: str | None = None, overwrite: bool = False,
                      device: Any = None, interpolator: Any = None, cut_guard: bool = True,
                      project: str | os.PathLike[str] | None = None) -> Steps[Interpolated]:
    """``src`` at a new frame rate, in-betweens made by ``backend``.

    Output frame ``k`` shows the source at ``k / rate`` seconds (see :func:`source_positions`):
    a source frame where one falls there, else the in-between at the fraction of the way to the
    next frame, timed by the frames' real presentation times when the source has a variable
    rate. ``--factor N`` on such a source gives ``N`` times its average rate. The output lasts
    as long as the source (its last frame is held) and carries its sound from the same start.

    With ``cut_guard`` the source is first scanned for hard cuts (kinema's shot detector, hard
    cuts only); an in-between across a cut would be a ghost of two shots, so the nearer source
    frame is repeated there instead (:func:`across_cut`).

    ``OUT.provenance.json`` records the :class:`~kinema.document.recipes.InterpolateRecipe`;
    with ``project`` the recipe is stored there too and the output joins its media pool (see
    :mod:`kinema.app.operation_records`).
    """
    from kinema.app import operation_records as records
    from kinema.core.atomic import check_not_input
    from kinema.document.recipes import InterpolateRecipe
    from kinema.media import open_video
    from kinema.media.codecs import codec_for
    from kinema.media.container import has_audio
    from kinema.media.writer import VideoWriter
    from kinema.models import backends

    target = Path(dst)
    check_not_input(target, [src, project])
    records.check_project(project)
    with open_video(src, prefetch=False) as reader:
        rate = output_rate(reader.fps, factor, fps)
        n = len(reader)
        vfr = reader.is_vfr and n > 1
        times = [reader.timestamp(i) for i in range(n)] if vfr else None
        duration = reader.duration if vfr else n / reader.fps
        count = max(1, int(duration * rate))
        spec = codec_for(target, codec, False)
        model = interpolator or backends.create("interpolate", backend, device=device)
        audio = src if not spec.image_sequence and has_audio(src) else None
        sources = [records.Source.of(src)]
        guard = cut_guard and n > 1 and min(reader.size) >= _min_cut_side()
        total = (n if guard else 0) + count
        cuts: tuple[int, ...] = ()
        if guard:
            cuts = yield from _hard_cuts(src, total)
        frame = pair_reader(reader)
        held = 0
        with VideoWriter(target, rate, reader.size, codec=spec.name, audio_from=audio,
                         audio_start=reader.start_time, overwrite=overwrite) as writer:
            positions = source_positions(count, rate, frames=n, fps=None if vfr else reader.fps,
                                         times=times)
            for k, (image, repeated) in enumerate(in_betweens(positions, cuts, frame, model)):
                writer.write(image)
                held += repeated
                yield Progress(total - count + k + 1, total, "frames")
    recipe = InterpolateRecipe(id=f"interpolate-{target.name}", backend=backend, factor=factor,
                               rate=rate if factor is None else None, cut_guard=cut_guard,
                               model=records.model_of(model), **records.placement_of(model),
                               inputs=[s.as_input() for s in sources])
    record = records.write_record(target, recipe, sources)
    if project is not None:
        records.store_recipe(project, recipe, sources,
                             media=None if spec.image_sequence else target)
    notes = []
    if vfr and factor is not None:
        notes.append(f"{Path(src).name} has a variable frame rate: wrote {factor} x its average "
                     f"rate ({rate} fps), frames timed by their real timestamps (--fps R for "
                     "another rate)")
    if cuts:
        notes.append(f"cut guard: {len(cuts)} hard cut(s), at source frame(s) "
                     f"{', '.join(map(str, cuts))}; {held} frame(s) there repeat a source frame "
                     "(--no-cut-guard to interpolate across them)")
    for note in notes:
        yield Progress(total, total, "frames", note)
    return Interpolated(target, rate, count, vfr, cuts, held, record)


def in_betweens(positions: Iterable[tuple[int, Fraction]], cuts: Container[int],
                frame: Callable[[int], Any], model: Any) -> Iterator[tuple[Any, bool]]:
    """The frame at each ``(i, t)`` of ``positions`` (``t`` of the way from source frame ``i``
    to the next; ``frame`` reads source frames) and whether it repeats a source frame at a cut
    instead of an in-between by ``model``."""
    for i, t in positions:
        repeat = across_cut(i, t, cuts)
        if repeat is not None:
            yield frame(repeat), True
        elif t == 0:
            yield frame(i), False
        else:
            yield model.interpolate(frame(i), frame(i + 1), float(t)), False


def pair_reader(reader: Any) -> Callable[[int], Any]:
    """``reader``'s frames by index with the last two kept: in-betweens read each pair of
    neighbouring frames in turn, several times, in increasing order."""
    pair: dict[int, Any] = {}

    def frame(i: int) -> Any:
        if i not in pair:
            for old in [k for k in pair if k < i - 1]:
                del pair[old]
            pair[i] = reader[i]
        return pair[i]

    return frame


def _min_cut_side() -> int:
    """The smallest picture side the shot detector compares (smaller ones are not guarded)."""
    from kinema.search.shots import MIN_SIDE

    return MIN_SIDE


def _hard_cuts(src: str | os.PathLike[str], total: int) -> Steps[tuple[int, ...]]:
    """The source frames a hard cut begins at (kinema's shot detector, dissolves and fades
    left out: they blend two shots already), with progress out of ``total``."""
    from kinema.app.shot_jobs import find_shots

    shots = yield from mapped(find_shots(src, gradual=False),
                              lambda e: Progress(e.done, total, "frames", e.message))
    return tuple(sorted({t.boundary for t in shots.transitions if t.kind == "cut"}))


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_TYPES


def upscale_media(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, scale: int = 4,
                  model: str = "x4plus", codec: str | None = None, overwrite: bool = False,
                  upscaler: Any = None,
                  project: str | os.PathLike[str] | None = None) -> Steps[tuple[int, int]]:
    """``src`` (an image or a video) ``scale`` times larger with backend ``model``; returns the
    output size. Videos keep their rate (a variable-rate one each frame at its own time) and
    sound; images go to ``.png`` or ``.exr``.

    ``OUT.provenance.json`` records the :class:`~kinema.document.recipes.UpscaleRecipe`; with
    ``project`` the recipe is stored there too and a video output joins its media pool (see
    :mod:`kinema.app.operation_records`)."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import check_can_write, check_not_input
    from kinema.document.recipes import UpscaleRecipe
    from kinema.models import backends

    target = Path(dst)
    check_not_input(target, [src, project])
    if is_image(src) != is_image(target) and not (is_image(src) and target.suffix == ""):
        raise InvalidArgumentError("an image upscales to an image (.png, .exr) and a video to a video",
                                   path=target)
    records.check_project(project)
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
        sources = [records.Source.of(src)]
        out = net.upscale(image)
        write_image(target, out)
        yield Progress(1, 1, "frames")
        size = out.shape[1], out.shape[0]
        media = None
    else:
        size, net, sources, media = yield from _upscale_video(src, target, scale, model, codec,
                                                              overwrite, upscaler)
    recipe = UpscaleRecipe(id=f"upscale-{target.name}", backend=model, scale=scale,
                           model=records.model_of(net), **records.placement_of(net),
                           inputs=[s.as_input() for s in sources])
    records.write_record(target, recipe, sources)
    if project is not None:
        records.store_recipe(project, recipe, sources, media=media)
    return size


def _upscale_video(src: str | os.PathLike[str], target: Path, scale: int, model: str,
                   codec: str | None, overwrite: bool, upscaler: Any) -> Steps[Any]:
    from kinema.app import operation_records as records
    from kinema.media import open_video
    from kinema.media.codecs import codec_for
    from kinema.media.container import has_audio
    from kinema.media.writer import VideoWriter
    from kinema.models import backends

    with open_video(src, prefetch=False) as reader:
        size = (reader.size[0] * scale, reader.size[1] * scale)
        spec = codec_for(target, codec, False)
        audio = src if not spec.image_sequence and has_audio(src) else None
        net = upscaler or backends.create("upscale", model, scale)
        sources = [records.Source.of(src)]
        # Stamped k / fps, a variable-rate source's frames would drift away from its sound.
        vfr = reader.is_vfr
        with VideoWriter(target, reader.fps, size, codec=spec.name, audio_from=audio,
                         audio_start=reader.start_time, overwrite=overwrite,
                         time_base=reader.time_base if vfr else None) as writer:
            total = len(reader)
            for k, frame in enumerate(reader.frames()):
                writer.write(net.upscale(frame), reader.timestamp(k) if vfr else None)
                yield Progress(k + 1, total, "frames")
    return size, net, sources, None if spec.image_sequence else target


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
