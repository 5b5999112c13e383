"""Carry styled key frames through a video: ``kinema propagate``.

:func:`propagate_video` checks everything first (the keys' size and frames, the masks' shape,
the output), then streams the range through :func:`kinema.generate.propagate.propagate`: source
frames are decoded once, in order, and kept on disk in a temporary folder only until the passes
that need them are done (a gap between two keys is synthesised backward from the later key
before the forward pass meets it), so memory stays flat however long the clip.

Keys are PNGs by frame: ``--key FRAME=IMAGE`` or a restyle output folder, whose ``00024.png``
styles frame 24 (:data:`kinema.app.restyle_jobs.KEY_NAME`). With masks (a ``kinema track -o``
label map, or a project's mask track) only the object's matte, feathered along its edge, is
styled; every pixel outside it is the decoded source, bit for bit.

Output: a folder gets one PNG per frame of the range, named like the keys, written atomically
as a kinema folder output; a movie goes through :class:`kinema.media.writer.VideoWriter`
(ProRes 4444 with the matte as alpha in mask mode). Key frames come out as given. The
:class:`~kinema.document.recipes.PropagateRecipe` goes to ``OUT.provenance.json``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.app.style_keys import read_key
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Steps

if TYPE_CHECKING:
    from kinema.app.restyle_jobs import MaskSource
    from kinema.generate.propagate import Mattes, Quality, Synth

FEATHER = 2.0
"""Pixels over which the matte's edge is feathered in mask mode."""


@dataclass(frozen=True)
class Propagated:
    """What :func:`propagate_video` wrote: the output, the range ``[start, end)``, the key
    frames and the provenance record."""

    output: Path
    start: int
    end: int
    keys: tuple[int, ...]
    record: Path


def propagate_video(video: str | os.PathLike[str], output: str | os.PathLike[str], *,
                    keys: Mapping[int, str | os.PathLike[str]],
                    mask: str | os.PathLike[str] | None = None,
                    project: str | os.PathLike[str] | None = None, track: str | None = None,
                    start: int = 0, end: int | None = None, quality: str = "fast",
                    overwrite: bool = False) -> Steps[Propagated]:
    """Frames ``[start, end)`` of ``video`` styled from ``keys`` (key images by frame), into
    ``output`` (a folder of PNGs or a movie); in mask mode only the object (``mask``, a label
    map, or ``project``'s mask track ``track``) is styled. One progress event per frame."""
    from kinema.app import operation_records as records
    from kinema.core import atomic
    from kinema.core.frames import frame_range
    from kinema.generate.propagate import QUALITIES
    from kinema.media import open_video

    target = atomic.output_path(output)
    atomic.check_not_input(target, [video, mask, project, *keys.values()])
    if quality not in QUALITIES:
        raise InvalidArgumentError(f"unknown quality {quality!r}", hint="use fast or best")
    if not keys:
        raise InvalidArgumentError("no key frames given",
                                   hint="give --key FRAME=IMAGE or --keys DIR (a restyle output)")
    folder = target.suffix == ""
    atomic.check_can_write(target, overwrite, folder=folder)
    masks, track_id = open_object_masks(mask, project, track)
    try:
        with open_video(video, prefetch=False) as reader:
            start, end = frame_range(len(reader), start, end, path=video)
            images = {k: read_key(k, path, size=reader.size, frames=len(reader), start=start,
                                  end=end, footage=video) for k, path in sorted(keys.items())}
            if masks is not None:
                check_object_masks(masks, reader.size, end, video)
            with tempfile.TemporaryDirectory(prefix="kinema-propagate-") as scratch:
                yield from _write(reader, images, masks, start, end, QUALITIES[quality], target,
                                  overwrite, Path(scratch))
    finally:
        if masks is not None:
            masks.close()
    sources = [records.Source.of(p) for p in (video, mask) if p is not None]
    key_sources = {frame: records.Source.of(path) for frame, path in sorted(keys.items())}
    recipe = _recipe(target, key_sources, sources, track_id, start, end, quality)
    record = records.write_record(target, recipe, [*sources, *key_sources.values()])
    return Propagated(target, start, end, tuple(sorted(keys)), record)


def open_object_masks(mask: str | os.PathLike[str] | None, project: str | os.PathLike[str] | None,
                      track: str | None) -> tuple[MaskSource | None, str | None]:
    """The object's masks, a label map file's or ``project``'s mask track ``track``'s (none:
    the whole frame), and a project track's id."""
    from kinema.app import restyle_jobs

    if mask is not None and (project is not None or track is not None):
        raise InvalidArgumentError("give --mask MASKS.npz or --project P --track OBJ, not both")
    if mask is not None:
        return restyle_jobs.LabelFile(mask), None
    if (project is None) != (track is None):
        raise InvalidArgumentError("--project and --track go together",
                                   hint="give --project P --track OBJ (a mask track's name or id)")
    if project is None or track is None:
        return None, None
    masks, _footage, track_id = restyle_jobs.project_track(project, track)
    return masks, track_id


def check_object_masks(masks: MaskSource, size: tuple[int, int], end: int,
                       video: str | os.PathLike[str]) -> None:
    """The masks are the video's size and reach the range's end."""
    if masks.size != tuple(size):
        raise InvalidArgumentError(
            f"the masks are {masks.size[0]}x{masks.size[1]} but {Path(video).name} is "
            f"{size[0]}x{size[1]}", path=masks.name,
            hint="give masks tracked on this video (kinema track VIDEO -o masks.npz)")
    if masks.frames < end:
        raise InvalidArgumentError(f"the masks cover {masks.frames} frames, the range ends at {end}",
                                   path=masks.name, hint="track the whole range, or give --end")


class _Spilled:
    """Source frames decoded once, in order, each kept on disk until released."""

    def __init__(self, frames: Iterator[np.ndarray], start: int, folder: Path) -> None:
        self.frames = frames
        self.next = start
        self.folder = folder

    def _path(self, i: int) -> Path:
        return self.folder / f"frame-{i}.npy"

    def __getitem__(self, i: int) -> np.ndarray:
        while self.next <= i:
            np.save(self._path(self.next), np.asarray(next(self.frames))[..., :3])
            self.next += 1
        return np.load(self._path(i))

    def release(self, i: int) -> None:
        self._path(i).unlink(missing_ok=True)


class _SpilledSynths(MutableMapping[int, "Synth"]):
    """A backward pass's frames on disk (half precision) until the forward pass meets them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.held: set[int] = set()

    def _path(self, i: int) -> Path:
        return self.folder / f"synth-{i}.npz"

    def __setitem__(self, i: int, value: Synth) -> None:
        np.savez(self._path(i), image=value.image.astype(np.float16),
                 error=value.error.astype(np.float16))
        self.held.add(i)

    def __getitem__(self, i: int) -> Synth:
        from kinema.generate.propagate import Synth

        if i not in self.held:
            raise KeyError(i)
        with np.load(self._path(i)) as data:
            return Synth(data["image"].astype(np.float32), data["error"].astype(np.float32))

    def __delitem__(self, i: int) -> None:
        self.held.remove(i)
        self._path(i).unlink()

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.held))

    def __len__(self) -> int:
        return len(self.held)


def object_mattes(masks: MaskSource | None) -> Mattes | None:
    """Frame ``i``'s object matte from ``masks``, feathered by :data:`FEATHER` (a frame without
    a mask: nothing); ``None`` without masks (the whole frame is styled)."""
    from kinema.render.mattes import matte_from_mask

    if masks is None:
        return None

    def matte(i: int) -> np.ndarray:
        found = masks.read(i)
        return matte_from_mask(np.zeros(masks.size[::-1], bool) if found is None else found,
                               feather=FEATHER)

    return matte


def styled_frames(reader: Any, keys: Mapping[int, np.ndarray], mattes: Mattes | None,
                  start: int, end: int, quality: Quality,
                  scratch: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)`` of ``reader`` styled from ``keys`` (inside the range), in order:
    the source decoded once from ``start``, frames and backward passes spilled to ``scratch``."""
    from kinema.generate.propagate import propagate

    frames = _Spilled(reader.frames(start, end), start, scratch)
    return propagate(frames, keys, start, end, quality, mattes=mattes,
                     spill=_SpilledSynths(scratch))


def _write(reader: Any, keys: dict[int, np.ndarray], masks: MaskSource | None, start: int,
           end: int, quality: Quality, target: Path, overwrite: bool, scratch: Path) -> Steps[None]:
    """Propagate and write frame by frame: PNGs into a folder committed at the end, or a movie."""
    from kinema.app.frame_output import write_frames

    mattes = object_mattes(masks)
    stream = styled_frames(reader, keys, mattes, start, end, quality, scratch)
    yield from write_frames(stream, target, fps=reader.fps, size=reader.size, total=end - start,
                            alpha=mattes, overwrite=overwrite)


def _recipe(target: Path, keys: Mapping[int, Any], sources: list[Any], track_id: str | None,
            start: int, end: int, quality: str) -> Any:
    """The :class:`~kinema.document.recipes.PropagateRecipe` of this run."""
    from kinema.document.recipes import PropagateRecipe, StyleKey
    from kinema.generate.propagate import QUALITIES

    return PropagateRecipe(
        id=f"propagate-{target.name}", inputs=[s.as_input() for s in [*sources, *keys.values()]],
        keys=[StyleKey(frame=frame, sha256=source.sha256) for frame, source in keys.items()],
        track_id=track_id, start=start, end=end, quality=quality,  # type: ignore[arg-type]
        guides=QUALITIES[quality].guides())
