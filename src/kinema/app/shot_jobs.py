"""Find a video's shots: decode it small, run :class:`kinema.search.shots.ShotDetector` over it.

:func:`detect_shots` returns a :class:`ShotList`: shots as frame ranges, the transitions that
begin them, and exact times from the reader's timestamps (``to_dict`` gives the JSON form).
:class:`ShotJob` is the same work as a job that reports every frame, for a progress bar.
Frames come from :meth:`kinema.media.VideoReader.analysis_frames`: scaled straight from the
decoder's YUV, no RGB, no deblocking.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinema.core.errors import InvalidArgumentError, UnsupportedMediaError
from kinema.search.shots import MIN_SIDE, Shot, ShotDetector, Transition, shots_from_transitions

DEFAULT_WIDTH = 192
PROGRESS_EVERY = 64  # frames between progress calls


@dataclass(frozen=True)
class ShotList:
    """The shots of ``path``: ``times[i]`` is when shot ``i`` starts (seconds from frame 0,
    exact) and ``times[-1]`` the video's duration, so shot ``i`` lasts ``times[i + 1] - times[i]``."""

    path: Path
    fps: Fraction
    frames: int
    shots: list[Shot]
    transitions: list[Transition]
    times: list[Fraction]

    def ranges(self) -> list[tuple[int, int]]:
        """Each shot as ``(first frame, end frame exclusive)``."""
        return [(s.start, s.end) for s in self.shots]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"fps": "30000/1001", "shots": [{"start", "end", "start_time",
        "end_time", "transition"}]}``; frames are indices (end exclusive), times seconds."""
        return {
            "fps": str(self.fps),
            "shots": [{"start": s.start, "end": s.end, "start_time": float(self.times[k]),
                       "end_time": float(self.times[k + 1]), "transition": s.transition}
                      for k, s in enumerate(self.shots)],
        }


class ShotJob:
    """Finding the shots of the video at ``path`` as a job: iterating it decodes the video and
    yields ``(done, total)`` frames after each one; :attr:`result` is then the
    :class:`ShotList`. Arguments as for :func:`detect_shots`, checked here."""

    def __init__(self, path: str | os.PathLike[str], *, width: int = DEFAULT_WIDTH,
                 proxy: bool = False, **options: Any) -> None:
        if not 16 <= width <= 1024:
            raise InvalidArgumentError(f"width must be 16 to 1024 pixels, got {width}", path=path)
        self.path = Path(path)
        self.width = width
        self.proxy = proxy
        self.detector = ShotDetector(pixels="yuv", **options)
        self.result: ShotList | None = None

    def __iter__(self) -> Iterator[tuple[int, int]]:
        from kinema.media import open_video

        with open_video(self.path, proxy=self.proxy, prefetch=False) as reader:
            total = len(reader)
            transitions: list[Transition] = []
            for i, frame in enumerate(reader.analysis_frames(self._work_size(reader.size))):
                transitions.extend(self.detector.push(i, frame))
                yield i + 1, total
            transitions.extend(self.detector.flush())
            shots = shots_from_transitions(transitions, total)
            times = [reader.timestamp(s.start) for s in shots] + [reader.duration]
            self.result = ShotList(self.path, reader.fps, total, shots, transitions, times)

    def _work_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size frames are decoded to: ``width`` wide (even height, aspect kept), or as
        they are when smaller; a picture too small to compare is an error naming the file."""
        w, h = size
        if min(w, h) < MIN_SIDE:
            raise UnsupportedMediaError(
                f"the picture is {w}x{h} pixels, too small to find shots in "
                f"(at least {MIN_SIDE}x{MIN_SIDE})", path=self.path,
                hint="give the full-size footage, not a thumbnail or placeholder")
        if self.width >= w:
            return w, h
        return self.width, max(MIN_SIDE, round(h * self.width / w / 2) * 2)


def detect_shots(path: str | os.PathLike[str], *, width: int = DEFAULT_WIDTH,
                 progress: Callable[[int, int], None] | None = None, proxy: bool = False,
                 **options: Any) -> ShotList:
    """Shots of the video at ``path``, decoded at ``width`` pixels wide (aspect kept).

    ``progress(done, total)`` is called every few dozen frames and at the end. With ``proxy``
    frames come from the video's all-intra proxy (built if missing), which decodes faster than
    most sources. ``options`` go to :class:`~kinema.search.shots.ShotDetector`
    (``cut_threshold``, ``cut_ratio``, ``flash_frames``, ``gradual``).
    """
    job = ShotJob(path, width=width, proxy=proxy, **options)
    for done, total in job:
        if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
            progress(done, total)
    assert job.result is not None
    return job.result
