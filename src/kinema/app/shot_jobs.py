"""Find a video's shots: decode it small, run :class:`kinema.search.shots.ShotDetector` over it.

:func:`detect_shots` returns a :class:`ShotList`: shots as frame ranges, the transitions that
begin them, and exact times from the reader's timestamps (``to_dict`` gives the JSON form).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError
from kinema.search.shots import Shot, ShotDetector, Transition, shots_from_transitions

if TYPE_CHECKING:
    pass

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


def detect_shots(path: str | os.PathLike[str], *, width: int = DEFAULT_WIDTH,
                 progress: Callable[[int, int], None] | None = None, proxy: bool = False,
                 **options: Any) -> ShotList:
    """Shots of the video at ``path``, decoded at ``width`` pixels wide (aspect kept).

    ``progress(done, total)`` is called every few dozen frames and at the end. With ``proxy``
    frames come from the video's all-intra proxy (built if missing), which decodes faster than
    most sources. ``options`` go to :class:`~kinema.search.shots.ShotDetector`
    (``cut_threshold``, ``cut_ratio``, ``flash_frames``, ``gradual``).
    """
    from kinema.media.reader import open_video

    if not 16 <= width <= 1024:
        raise InvalidArgumentError(f"width must be 16 to 1024 pixels, got {width}", path=path)
    detector = ShotDetector(**options)
    with open_video(path, proxy=proxy, prefetch=False) as reader:
        total = len(reader)
        w, h = reader.size
        size = (width, max(2, round(h * width / w / 2) * 2)) if width < w else (w, h)
        transitions: list[Transition] = []
        for i, frame in enumerate(reader.frames(size=size)):
            transitions.extend(detector.push(i, frame))
            if progress is not None and (i + 1) % PROGRESS_EVERY == 0:
                progress(i + 1, total)
        transitions.extend(detector.flush())
        shots = shots_from_transitions(transitions, total)
        times = [reader.timestamp(s.start) for s in shots] + [reader.duration]
        fps = reader.fps
    if progress is not None:
        progress(total, total)
    return ShotList(Path(path), fps, total, shots, transitions, times)
