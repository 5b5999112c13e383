"""Find a video's shots: decode it small, run :class:`kinema.search.shots.ShotDetector` over it.

:func:`detect_shots` returns a :class:`ShotList`: shots as frame ranges, the transitions that
begin them, and exact times from the reader's timestamps (``to_dict`` gives the JSON form).
:func:`find_shots` is the same work as a use case that reports every frame, for a progress bar.
Frames come from :meth:`kinema.media.VideoReader.analysis_frames`: scaled straight from the
decoder's YUV, no RGB, no deblocking.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinema.core.errors import InvalidArgumentError, UnsupportedMediaError
from kinema.core.jobs import Progress, Steps, run
from kinema.search.shots import MIN_SIDE, Shot, ShotDetector, Transition, shots_from_transitions

DEFAULT_WIDTH = 192


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


def find_shots(path: str | os.PathLike[str], *, width: int = DEFAULT_WIDTH, proxy: bool = False,
               **options: Any) -> Steps[ShotList]:
    """:func:`detect_shots` as a use case: decodes the video, yielding progress after every
    frame, and returns the :class:`ShotList`. Arguments are checked before any decoding."""
    if not 16 <= width <= 1024:
        raise InvalidArgumentError(f"width must be 16 to 1024 pixels, got {width}", path=path)
    detector = ShotDetector(pixels="yuv", **options)
    return _find(Path(path), width, proxy, detector)


def _find(path: Path, width: int, proxy: bool, detector: ShotDetector) -> Steps[ShotList]:
    from kinema.media import open_video

    with open_video(path, proxy=proxy, prefetch=False) as reader:
        total = len(reader)
        transitions: list[Transition] = []
        for i, frame in enumerate(reader.analysis_frames(_work_size(path, reader.size, width))):
            transitions.extend(detector.push(i, frame))
            yield Progress(i + 1, total)
        transitions.extend(detector.flush())
        shots = shots_from_transitions(transitions, total)
        times = [reader.timestamp(s.start) for s in shots] + [reader.duration]
        return ShotList(path, reader.fps, total, shots, transitions, times)


def _work_size(path: Path, size: tuple[int, int], width: int) -> tuple[int, int]:
    """The size frames are decoded to: ``width`` wide (even height, aspect kept), or as they
    are when smaller; a picture too small to compare is an error naming the file."""
    w, h = size
    if min(w, h) < MIN_SIDE:
        raise UnsupportedMediaError(
            f"the picture is {w}x{h} pixels, too small to find shots in "
            f"(at least {MIN_SIDE}x{MIN_SIDE})", path=path,
            hint="give the full-size footage, not a thumbnail or placeholder")
    if width >= w:
        return w, h
    return width, max(MIN_SIDE, round(h * width / w / 2) * 2)


def detect_shots(path: str | os.PathLike[str], *, width: int = DEFAULT_WIDTH, proxy: bool = False,
                 **options: Any) -> ShotList:
    """Shots of the video at ``path``, decoded at ``width`` pixels wide (aspect kept).

    With ``proxy`` frames come from the video's all-intra proxy (built if missing), which
    decodes faster than most sources. ``options`` go to
    :class:`~kinema.search.shots.ShotDetector` (``cut_threshold``, ``cut_ratio``,
    ``flash_frames``, ``gradual``). :func:`find_shots` is the same with progress.
    """
    return run(find_shots(path, width=width, proxy=proxy, **options))
