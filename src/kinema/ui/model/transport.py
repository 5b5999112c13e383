"""The playhead and playback: seek, step, in/out points, play at the source rate, J/K/L."""

from __future__ import annotations

import math
import time
from fractions import Fraction

SHUTTLE = (1, 2, 4, 8)
"""Shuttle speeds, in frames of source per frame of time; each J or L press goes one up."""


class Transport:
    """Where the editor is in a clip of ``frames`` frames at ``fps``, and whether it plays."""

    def __init__(self, frames: int, fps: Fraction) -> None:
        self.frames, self.fps = frames, fps
        self.playhead = 0
        self.in_point, self.out_point = 0, frames
        self.playing = False
        self.speed = 1  # frames of source per frame of time; negative plays backwards
        self._clock: tuple[float, int] | None = None  # (when, frame) playback started from

    def seek(self, index: int) -> None:
        """Move the playhead to frame ``index`` (clamped to the clip)."""
        self.playhead = max(0, min(self.frames - 1, int(index)))
        if self.playing:
            self._clock = (time.monotonic(), self.playhead)

    def step(self, delta: int) -> None:
        """Stop and move ``delta`` frames."""
        self.playing = False
        self.seek(self.playhead + delta)

    def home(self) -> None:
        """To the in point."""
        self.seek(self.in_point)

    def end(self) -> None:
        """To the last frame before the out point."""
        self.seek(self.out_point - 1)

    def set_in(self) -> None:
        """The in point at the playhead."""
        self.in_point = min(self.playhead, self.out_point - 1)

    def set_out(self) -> None:
        """The out point just after the playhead."""
        self.out_point = max(self.playhead + 1, self.in_point + 1)

    def toggle_play(self) -> None:
        """Play or pause."""
        self.playing = not self.playing
        self.speed = 1 if self.speed == 0 else self.speed
        self._start_clock()

    def shuttle(self, key: str) -> None:
        """J/K/L: K stops; L plays forward, faster each press (1x, 2x, 4x, 8x); J backwards."""
        if key == "k":
            self.playing = False
            self._start_clock()
            return
        sign = 1 if key == "l" else -1
        if self.playing and self.speed * sign > 0:
            self.speed = sign * SHUTTLE[min(SHUTTLE.index(abs(self.speed)) + 1, len(SHUTTLE) - 1)]
        else:
            self.speed = sign
        self.playing = True
        self._start_clock()

    def tick(self, now: float | None = None) -> None:
        """Advance the playhead by the clock: frames the window could not draw in time are
        dropped, so playback never drifts from the source rate."""
        if not self.playing or self._clock is None:
            return
        t0, frame0 = self._clock
        elapsed = (time.monotonic() if now is None else now) - t0
        target = frame0 + math.floor(elapsed * float(self.fps) * self.speed)
        if target >= self.out_point or target < self.in_point:
            self.playing, self._clock = False, None
            target = self.out_point - 1 if target >= self.out_point else self.in_point
        self.playhead = target

    @property
    def time_label(self) -> str:
        """The playhead as ``H:MM:SS.mmm  frame N/LAST``."""
        from kinema.core.timebase import format_time

        return f"{format_time(Fraction(self.playhead) / self.fps)}  frame {self.playhead}/{self.frames - 1}"

    def _start_clock(self) -> None:
        self._clock = (time.monotonic(), self.playhead) if self.playing else None
