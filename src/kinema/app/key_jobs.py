"""Key frames picked where the footage changes most: ``kinema keys``, ``kinema propagate --keys
auto N`` and ``kinema restyle --frames auto N``.

:func:`pick_frames` streams a range of the footage once, as small grey thumbnails (the reader's
analysis frames), through :class:`kinema.vision.keyframes.ChangeMeter` and places the keys with
:func:`kinema.vision.keyframes.pick_keys`: each key covers an equal share of the change, so keys
are dense where the footage moves and sparse where it is still. With the object's masks (a
``kinema track -o`` label map, or a project's mask track) only the change on the object counts,
and only frames where the object is become keys.

:func:`make_keys` writes the picked frames as a keys folder (``00024.png`` is frame 24, the
names ``kinema restyle -o`` writes and ``--keys DIR`` reads): the source frames as they are, for
an artist to paint over, or in a classical look (:mod:`kinema.generate.looks`), in mask mode
only inside the object's feathered matte. The folder is a kinema folder output, written
atomically; ``KEYS.provenance.json`` beside it holds the
:class:`~kinema.document.recipes.KeysRecipe`.

:func:`propagate_auto` makes such keys into ``OUT.keys/`` beside the output and carries them
through the range with :func:`kinema.app.propagate_jobs.propagate_video`; repaint a key there and
run ``kinema propagate --keys OUT.keys/`` again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.app.propagate_jobs import check_object_masks, open_object_masks
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Progress, Steps, mapped

if TYPE_CHECKING:
    from kinema.app.propagate_jobs import Propagated
    from kinema.app.restyle_jobs import MaskSource

MEASURE = "grey-mad"
"""The change measure recorded in a :class:`~kinema.document.recipes.KeysRecipe`: the mean
absolute difference of consecutive small grey frames (:mod:`kinema.vision.keyframes`)."""


@dataclass(frozen=True)
class Keys:
    """What :func:`make_keys` wrote: the keys folder, the key frames, the range ``[start,
    end)`` they were picked from and the provenance record."""

    output: Path
    frames: tuple[int, ...]
    start: int
    end: int
    record: Path


@dataclass(frozen=True)
class AutoPropagated:
    """What :func:`propagate_auto` wrote: the keys it made and the propagation."""

    keys: Keys
    propagated: Propagated


def keys_folder(output: str | os.PathLike[str]) -> Path:
    """Where :func:`propagate_auto` puts the keys it makes for ``output``: ``OUT.keys`` beside it."""
    from kinema.core.atomic import output_path

    target = output_path(output)
    return target.with_name(target.name + ".keys")


def check_count(count: int, frames: int | None = None, where: str = "") -> int:
    """``count`` keys can be picked (from ``frames`` frames, when known)."""
    if count < 1:
        raise InvalidArgumentError(f"cannot pick {count} key frames", hint="ask for 1 or more")
    if frames is not None and count > frames:
        where = f" {where}" if where else ""
        raise InvalidArgumentError(f"cannot pick {count} key frames from the {frames} frames{where}",
                                   hint=f"ask for at most {frames}, or widen the range")
    return count


def pick_frames(reader: Any, count: int, start: int, end: int,
                masks: MaskSource | None = None, *, total: int | None = None) -> Steps[list[int]]:
    """``count`` key frames of ``reader``'s frames ``[start, end)`` where the footage changes
    most (with ``masks``: the object changes most, on frames where it is). One pass over the
    range, as thumbnails; one progress event per frame, out of ``total`` (default: the
    range's frames) when the caller has more to do."""
    from kinema.vision.keyframes import THUMB, ChangeMeter, pick_keys

    check_count(count, end - start, f"{start}:{end}")
    width, height = reader.size
    scale = THUMB / max(width, height)
    size = (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))
    meter, usable = ChangeMeter(), []
    for done, (i, frame) in enumerate(zip(range(start, end),
                                          reader.analysis_frames(size, start, end), strict=False), 1):
        mask = None if masks is None else masks.read(i)
        if masks is not None:
            mask = np.zeros(masks.size[::-1], bool) if mask is None else mask
            usable.append(bool(mask.any()))
        meter.add(frame[..., 0], mask)
        yield Progress(done, total or end - start, "frames")
    if len(meter.scores) < end - start:
        raise InvalidArgumentError(f"only {len(meter.scores)} of the frames {start}:{end} could "
                                   "be decoded", path=getattr(reader, "path", None))
    if masks is not None and sum(usable) < count:
        raise InvalidArgumentError(
            f"the object is on {sum(usable)} of the frames {start}:{end}, too few for {count} keys",
            path=masks.name, hint="ask for fewer keys, or track the object on more frames")
    return pick_keys(meter.scores, count, start=start, usable=usable if masks is not None else None)


def make_keys(video: str | os.PathLike[str], output: str | os.PathLike[str], *, count: int,
              look: str | None = None, start: int = 0, end: int | None = None,
              mask: str | os.PathLike[str] | None = None,
              project: str | os.PathLike[str] | None = None, track: str | None = None,
              overwrite: bool = False) -> Steps[Keys]:
    """``count`` key frames of ``video``'s frames ``[start, end)``, picked where the footage
    changes most, written into the folder ``output`` named by frame (``00024.png``): the source
    frames, or in ``look``; with ``mask`` (a label map) or ``project``'s mask track ``track`` the
    picking follows the object and the look styles only its matte. One progress event per frame
    read and per key written."""
    from kinema.app import operation_records as records
    from kinema.core import atomic

    target = atomic.output_path(output)
    atomic.check_not_input(target, [video, mask, project])
    if look is not None:
        from kinema.generate.looks import check_look

        check_look(look)
    check_count(count)
    atomic.check_can_write(target, overwrite, folder=True)
    masks, track_id = open_object_masks(mask, project, track)
    try:
        frames, start, end = yield from _write_keys(video, target, count, look, start, end,
                                                    masks, overwrite)
    finally:
        if masks is not None:
            masks.close()
    sources = [records.Source.of(p) for p in (video, mask) if p is not None]
    recipe = _recipe(target, frames, count, start, end, look, track_id, sources)
    record = records.write_record(target, recipe, sources)
    return Keys(target, tuple(frames), start, end, record)


def _write_keys(video: str | os.PathLike[str], target: Path, count: int, look: str | None,
                start: int, end: int | None, masks: MaskSource | None,
                overwrite: bool) -> Steps[tuple[list[int], int, int]]:
    """Pick the keys, then write each (styled) into a folder committed when complete."""
    from kinema.app.frame_output import write_frames
    from kinema.app.propagate_jobs import object_mattes
    from kinema.app.restyle_jobs import READ_CACHE_BYTES
    from kinema.core.frames import frame_range
    from kinema.media import open_video

    with open_video(video, prefetch=False, cache_bytes=READ_CACHE_BYTES) as reader:
        start, end = frame_range(len(reader), start, end, path=video)
        check_count(count, end - start, f"{start}:{end}")
        if masks is not None:
            check_object_masks(masks, reader.size, end, video)
        total = end - start + count
        picked = yield from pick_frames(reader, count, start, end, masks, total=total)
        mattes = object_mattes(masks)
        keys = ((i, _key_image(np.asarray(reader[i])[..., :3], look, mattes(i) if mattes else None))
                for i in picked)
        written = write_frames(keys, target, fps=reader.fps, size=reader.size, total=count,
                               overwrite=overwrite, folder=True)
        yield from mapped(written, lambda e: replace(e, done=e.done + end - start, total=total))
    return picked, start, end


def _key_image(frame: np.ndarray, look: str | None, matte: np.ndarray | None) -> np.ndarray:
    """A frame as a key: as it is, or in ``look`` (only inside the object's ``matte``)."""
    if look is None:
        return np.ascontiguousarray(frame)
    from kinema.generate.looks import apply_look

    return apply_look(look, frame, matte)


def _recipe(target: Path, frames: list[int], count: int, start: int, end: int, look: str | None,
            track_id: str | None, sources: list[Any]) -> Any:
    """The :class:`~kinema.document.recipes.KeysRecipe` of this run."""
    from kinema.document.recipes import KeysRecipe

    return KeysRecipe(id=f"keys-{target.name}", inputs=[s.as_input() for s in sources],
                      frames=list(frames), count=count, start=start, end=end, measure=MEASURE,
                      look=look, track_id=track_id)


def propagate_auto(video: str | os.PathLike[str], output: str | os.PathLike[str], *, count: int,
                   look: str | None = None, mask: str | os.PathLike[str] | None = None,
                   project: str | os.PathLike[str] | None = None, track: str | None = None,
                   start: int = 0, end: int | None = None, quality: str = "fast",
                   overwrite: bool = False) -> Steps[AutoPropagated]:
    """``count`` keys picked and made as :func:`make_keys` does into ``OUT.keys/`` beside
    ``output`` (refused if it exists, unless ``overwrite`` and kinema wrote it), then carried
    through ``[start, end)`` into ``output`` by
    :func:`~kinema.app.propagate_jobs.propagate_video`. Progress runs over both."""
    from kinema.app.propagate_jobs import propagate_video
    from kinema.core import atomic
    from kinema.generate.propagate import QUALITIES

    target = atomic.output_path(output)
    folder = keys_folder(target)
    atomic.check_not_input(target, [video, mask, project])
    if quality not in QUALITIES:
        raise InvalidArgumentError(f"unknown quality {quality!r}", hint="use fast or best")
    atomic.check_can_write(target, overwrite, folder=target.suffix == "")
    made = yield from make_keys(video, folder, count=count, look=look, start=start, end=end,
                                mask=mask, project=project, track=track, overwrite=overwrite)
    before = made.end - made.start + len(made.frames)
    keys = {frame: folder / _key_name(frame) for frame in made.frames}
    job = propagate_video(video, target, keys=keys, mask=mask, project=project, track=track,
                          start=made.start, end=made.end, quality=quality, overwrite=overwrite)
    propagated = yield from mapped(job, lambda e: replace(e, done=e.done + before,
                                                      total=e.total + before))
    return AutoPropagated(made, propagated)


def _key_name(frame: int) -> str:
    from kinema.app.restyle_jobs import KEY_NAME

    return KEY_NAME.format(frame=frame)


def restyle_frames(source: str | os.PathLike[str], count: int, *, track: str | None = None,
                   mask: str | os.PathLike[str] | None = None) -> Steps[list[int]]:
    """``count`` key frames for ``kinema restyle`` of ``source`` (a video with ``mask``, or a
    project with ``track``), picked over the whole footage where the object changes most, on
    frames where it is."""
    from kinema.app import restyle_jobs
    from kinema.app.restyle_jobs import READ_CACHE_BYTES
    from kinema.document.store import DOCUMENT, SUFFIX
    from kinema.media import open_video

    check_count(count)
    path = Path(source)
    if path.suffix == SUFFIX or (path / DOCUMENT).is_file():
        if track is None or mask is not None:
            raise InvalidArgumentError("a project takes --track OBJ (its mask track), not --mask")
        masks, footage, _track_id = restyle_jobs.project_track(source, track)
    else:
        if mask is None or track is not None:
            raise InvalidArgumentError("a video takes --mask MASKS.npz (from kinema track -o); "
                                       "--track names a project's mask track")
        masks, footage = restyle_jobs.LabelFile(mask), Path(source)
    try:
        with open_video(footage, prefetch=False, cache_bytes=READ_CACHE_BYTES) as reader:
            end = min(len(reader), masks.frames)
            if masks.size != reader.size:
                check_object_masks(masks, reader.size, end, footage)
            return (yield from pick_frames(reader, count, 0, end, masks))
    finally:
        masks.close()
