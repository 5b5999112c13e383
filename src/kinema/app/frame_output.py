"""Frames a use case makes, written in order as they come: one PNG each into a folder, or a
movie (ProRes 4444 with a matte as alpha where there is one).

:func:`write_frames` takes a stream of ``(frame, image)`` and yields a progress event per frame
written; :class:`~kinema.core.jobs.Progress` events in the stream (a model's steps between
frames) pass through. A folder is built under a temporary name and committed whole
(:func:`kinema.core.atomic.commit_frames`); a movie's writer discards a partial file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.core.jobs import Progress, Steps

FRAME_NAME = "{frame:05d}.png"
"""A frame's file name in a folder output: its index (``00024.png``)."""

Stream = Iterable["tuple[int, np.ndarray] | Progress"]


def write_frames(stream: Stream, target: Path, *, fps: Fraction, size: tuple[int, int], total: int,
                 alpha: Callable[[int], np.ndarray] | None = None, overwrite: bool = False,
                 folder: bool | None = None) -> Steps[None]:
    """Each ``(frame, image)`` of ``stream`` into ``target``: a ``folder`` (by default: a path
    without a suffix) of PNGs named by frame, or a movie at ``fps`` of ``size`` with
    ``alpha(frame)`` (0-1) as its alpha channel when given. One progress event per frame, of
    ``total``."""
    as_folder = target.suffix == "" if folder is None else folder
    sink = _folder(target, overwrite) if as_folder else _movie(target, fps, size, alpha, overwrite)
    with sink as put:
        done = 0
        for item in stream:
            if isinstance(item, Progress):
                yield item
                continue
            put(*item)
            done += 1
            yield Progress(done, total, "frames")


@contextmanager
def _folder(target: Path, overwrite: bool) -> Iterator[Callable[[int, np.ndarray], None]]:
    """A temporary folder to put PNGs in, committed as ``target`` when the block ends well."""
    from kinema.core import atomic
    from kinema.media.image import encode_png

    temp = atomic.temp_path_for(target)

    def put(i: int, image: np.ndarray) -> None:
        with atomic.naming_errors(target):
            (temp / FRAME_NAME.format(frame=i)).write_bytes(encode_png(image))

    try:
        with atomic.naming_errors(target):
            temp.mkdir()
        yield put
        with atomic.naming_errors(target):
            atomic.commit_frames(temp, target, overwrite)
    except BaseException:
        atomic.discard(temp)
        raise


@contextmanager
def _movie(target: Path, fps: Fraction, size: tuple[int, int],
           alpha: Callable[[int], np.ndarray] | None,
           overwrite: bool) -> Iterator[Callable[[int, np.ndarray], None]]:
    """A movie writer to put frames in (with ``alpha(frame)`` as alpha when given)."""
    from kinema.media.writer import VideoWriter

    with VideoWriter(target, fps, size, alpha=alpha is not None, overwrite=overwrite) as writer:
        def put(i: int, image: np.ndarray) -> None:
            if alpha is not None:
                image = np.dstack([image, np.rint(alpha(i) * 255).astype(np.uint8)])
            writer.write(image)

        yield put
