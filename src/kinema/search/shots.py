"""Shot boundaries from a stream of small frames: hard cuts, dissolves and fades. No I/O.

:class:`ShotDetector` is fed frames in order (``push``, then ``flush`` at the end) and returns
each transition once it is settled, at most :attr:`ShotDetector.lag` frames behind the newest
(a fade waits for the end of its black). It wants small frames, about 160 to 256 pixels wide
(larger ones are shrunk first, and at least ``MIN_SIDE`` on each side), in RGB or, from a
decoder, straight as YCbCr (``pixels="yuv"``). Per frame it keeps a 32x18 YCbCr thumbnail,
the luma mean and variance, and the thumbnail's distance to the previous one,
motion-compensated (the best of shifts up to a tenth of the picture, so pans and shake cost
little).

- A **cut** at frame ``t`` is a peak of that distance standing ``cut_ratio`` times above the
  distances around it (so steady fast motion does not count), after which no frame of the next
  few matches one of the last few before it (so a flash, or something passing in front of the
  lens, that gives the old picture back within ``flash_frames`` is not a cut).
- A **dissolve** is a window whose ends differ strongly while its middle frame is a mix of the
  ends: on the line between them, the same share of the way all over the picture, in order
  with the frames around it, matched by no shift of either end, and with the loss of contrast
  that superimposing two unrelated pictures gives (which motion does not).
- A **fade** is a run of near-black frames entered by a ramp of darkening frames (or a cut)
  and left by a ramp of brightening ones (or a cut); cuts and dissolves inside it are part of
  it. Black at the start or the end of the stream (with its ramp) belongs to the first or last
  shot and is not a transition.

A transition's ``boundary`` is the first frame of the new shot: the cut frame, the middle of a
dissolve's span, or the middle of a fade's span kept within its black frames.
:func:`shots_from_transitions` turns transitions into shots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median
from typing import Literal

import cv2
import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import check_frame

TransitionKind = Literal["cut", "dissolve", "fade"]
Pixels = Literal["rgb", "yuv"]

MAX_WIDTH, WORK_WIDTH = 320, 192  # frames wider than MAX_WIDTH are shrunk to WORK_WIDTH first
MIN_SIDE = 16  # smaller frames hold too little picture to compare (a 1x1 video has no contrast)
THUMB = (32, 18)
SHIFT = (3, 2)  # largest (x, y) shift, in thumbnail pixels, the motion compensation tries
WINDOW = 6  # frames each side a cut is compared with
DISSOLVE_HALVES = (3, 5, 8, 12, 16, 24)  # half-lengths of the windows tried for dissolves
MIX_DIFFERENCE = 20.0  # least RMS difference (0-255) of a dissolve's ends
MIX_RESIDUAL = 0.5  # how far (relative to the ends' difference) a dissolve's middle may be off the mix
MIX_UNIFORMITY = 0.1  # spread of that share over the parts of the picture
MIX_CONTRAST = 0.85  # a dissolve's middle has at most this share of the contrast its ends suggest
MIN_DIP = 0.01  # a mix of flat pictures has no contrast at all; its score stops at 1 / MIN_DIP
DARK_MEAN, DARK_STD = 20.0, 12.0  # luma of a near-black frame (0-255)
RAMP_STEP = 0.01  # a fade's frames change luma by at least this fraction each
MAX_RAMP = 120  # longest fade ramp followed, in frames


@dataclass(frozen=True)
class Transition:
    """How one shot gives way to the next.

    ``start``/``end`` span the frames that belong to the transition (``end`` exclusive; a cut is
    ``[t, t + 1)``); ``boundary`` is the first frame of the new shot; ``score`` is how clearly it
    stood out (a ratio, larger is surer).
    """

    kind: TransitionKind
    start: int
    end: int
    boundary: int
    score: float = 0.0


@dataclass(frozen=True)
class Shot:
    """Frames ``[start, end)`` of one shot; ``transition`` is how it begins (``"cut"`` for the
    first shot, which begins with the video)."""

    start: int
    end: int
    transition: TransitionKind = "cut"

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class _Frame:
    thumb: np.ndarray  # (18, 32, 3) float32 YCbCr, luma first
    luma: float  # mean (0-255)
    var: float  # luma variance over the whole (small) frame
    moved: float  # RMS distance to the previous thumbnail, motion-compensated (0 for the first)
    centered: np.ndarray  # thumb less each channel's mean
    energy: float  # squared norm of centered

    @property
    def dark(self) -> bool:
        return self.luma < DARK_MEAN and self.var < DARK_STD**2


@dataclass(frozen=True)
class _Mix:
    center: int
    half: int
    dip: float  # the middle's contrast over what its ends suggest (lower: surer)
    start: int
    end: int


@dataclass
class _Fade:
    start: int  # first frame of the darkening ramp (the black's first frame after a cut)
    black_start: int
    black_end: int  # first frame after the black (-1 while it lasts)
    before_luma: float
    black_luma: float


class ShotDetector:
    """Streaming shot-transition detector: ``push`` frames in order, then ``flush``.

    Frames are RGB (or RGBA) ``uint8``, or with ``pixels="yuv"`` full-range YCbCr (luma
    first, as :meth:`kinema.media.VideoReader.analysis_frames` gives), all the same size and at
    least ``MIN_SIDE`` on each side, indexed consecutively from the first index pushed.
    ``cut_threshold`` is the least RMS thumbnail change (0-255) a cut can have;
    ``cut_ratio`` how far above the changes around it it must stand; ``flash_frames`` how long
    an interruption can last and still not count; ``gradual=False`` finds hard cuts only.
    """

    def __init__(self, *, cut_threshold: float = 8.0, cut_ratio: float = 3.0, flash_frames: int = 4,
                 gradual: bool = True, pixels: Pixels = "rgb") -> None:
        if cut_threshold <= 0 or cut_ratio < 1 or flash_frames < 0:
            raise InvalidArgumentError(
                f"cut_threshold must be > 0, cut_ratio >= 1 and flash_frames >= 0, got "
                f"{cut_threshold}, {cut_ratio}, {flash_frames}")
        if pixels not in ("rgb", "yuv"):
            raise InvalidArgumentError(f"pixels must be 'rgb' or 'yuv', got {pixels!r}")
        self.pixels = pixels
        self.cut_threshold = cut_threshold
        self.cut_ratio = cut_ratio
        self.flash_frames = flash_frames
        self.gradual = gradual
        self._frames: dict[int, _Frame] = {}
        self._first: int | None = None
        self._last = -1
        self._size: tuple[int, int] | None = None
        self._pending: list[Transition] = []
        self._cut_next = 0  # next frame to decide a cut at
        self._center_next = 0  # next dissolve centre to look at
        self._run: list[_Mix] = []  # consecutive frames that look like the middle of a dissolve
        self._dark: _Fade | None = None  # while near-black frames come
        self._fade: _Fade | None = None  # while frames brighten after them
        self._quiet: list[tuple[int, int]] = []  # fades' frames, where no cut or dissolve can be
        self._flushed = False

    # -- public -------------------------------------------------------------------------------

    @property
    def lag(self) -> int:
        """How many frames behind the newest one transitions can still appear (fades aside)."""
        return 2 * max(DISSOLVE_HALVES) + WINDOW + 2 if self.gradual else WINDOW + self.flash_frames + 2

    def push(self, index: int, frame: np.ndarray) -> list[Transition]:
        """Add frame ``index``; returns the transitions now settled, in order."""
        if self._flushed:
            raise InvalidArgumentError("the detector was flushed; make a new one for another video")
        if self._first is None:
            self._first = self._cut_next = self._center_next = int(index)
            self._last = int(index) - 1
        elif index != self._last + 1:
            raise InvalidArgumentError(f"frames must come in order: expected frame {self._last + 1}, "
                                       f"got {index}")
        frame = check_frame(frame)
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            if min(size) < MIN_SIDE:
                raise InvalidArgumentError(f"frames of {size[0]}x{size[1]} are too small to find shots "
                                           f"in (at least {MIN_SIDE}x{MIN_SIDE})")
            self._size = size
        elif size != self._size:
            raise InvalidArgumentError(f"frame {index} is {size[0]}x{size[1]}, the first was "
                                       f"{self._size[0]}x{self._size[1]}")
        self._last = int(index)
        self._frames[self._last] = self._features(frame)
        self._advance(final=False)
        return self._emit(self._horizon())

    def flush(self) -> list[Transition]:
        """Decide everything left at the end of the stream; returns the remaining transitions."""
        if self._flushed or self._first is None:
            self._flushed = True
            return []
        self._advance(final=True)
        self._flushed = True
        return self._emit(self._last + 1)

    # -- features -----------------------------------------------------------------------------

    def _features(self, frame: np.ndarray) -> _Frame:
        small = frame[..., :3]
        if small.shape[1] > MAX_WIDTH:
            h = max(2, round(small.shape[0] * WORK_WIDTH / small.shape[1]))
            small = cv2.resize(small, (WORK_WIDTH, h), interpolation=cv2.INTER_AREA)
        ycc = small if self.pixels == "yuv" else cv2.cvtColor(np.ascontiguousarray(small),
                                                                cv2.COLOR_RGB2YCrCb)
        mean, std = cv2.meanStdDev(cv2.extractChannel(ycc, 0))
        thumb = cv2.resize(ycc, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        prev = self._frames.get(self._last - 1)
        moved = 0.0 if prev is None else _distances(thumb, prev.thumb)[1]
        centered = thumb - thumb.mean(axis=(0, 1))
        return _Frame(thumb, float(mean[0, 0]), float(std[0, 0]) ** 2, moved, centered,
                      float(np.vdot(centered, centered)))

    # -- scheduling ---------------------------------------------------------------------------

    def _advance(self, *, final: bool) -> None:
        last = self._last
        cut_until = last if final else last - max(WINDOW, self.flash_frames)
        while self._cut_next <= cut_until:
            self._check_cut(self._cut_next)
            self._cut_next += 1
        if self.gradual:
            center_until = last if final else last - max(DISSOLVE_HALVES)
            while self._center_next <= center_until:
                self._check_dissolve(self._center_next)
                self._center_next += 1
            if final:
                self._close_fade()
            else:
                self._track_fade()
            if final and self._run:
                self._finish_dissolve()
        # One frame a push falls out of what is kept: the dissolve windows and a fade's ramp.
        self._frames.pop(last - max(2 * max(DISSOLVE_HALVES) + WINDOW, MAX_RAMP) - 4, None)

    def _horizon(self) -> int:
        """Transitions ending before this frame are settled."""
        horizon = self._last - self.lag
        if self._run:
            horizon = min(horizon, self._run[0].center - max(DISSOLVE_HALVES) - 1)
        for fade in (self._dark, self._fade):
            if fade is not None:
                horizon = min(horizon, fade.start - 1)
        return horizon

    def _emit(self, horizon: int) -> list[Transition]:
        ready = sorted((t for t in self._pending if t.end <= horizon), key=lambda t: t.boundary)
        self._pending = [t for t in self._pending if t.end > horizon]
        return ready

    # -- cuts ---------------------------------------------------------------------------------

    def _check_cut(self, t: int) -> None:
        frames, first = self._frames, self._first
        assert first is not None
        if t <= first:
            return
        score = frames[t].moved
        if score < self.cut_threshold:
            return
        # A peak: above the two frames before, not below the two after.
        if any(frames[i].moved >= score for i in range(max(first + 1, t - 2), t)):
            return
        if any(frames[i].moved > score for i in range(t + 1, min(self._last, t + 2) + 1)):
            return
        before = [frames[i].moved for i in range(max(first + 1, t - WINDOW), t)]
        after = [frames[i].moved for i in range(t + 1, min(self._last, t + WINDOW) + 1)]
        ref = max(median(before) if before else 0.0, median(after) if after else 0.0)
        if score < self.cut_ratio * ref:
            return
        if self._returns(t, score):
            return
        if any(qs <= t <= qe for qs, qe in self._quiet):
            return
        self._pending.append(Transition("cut", t, t + 1, t, round(score / max(ref, 1.0), 2)))

    def _returns(self, t: int, score: float) -> bool:
        """Whether a frame soon after ``t`` matches one shortly before it: a flash, not a cut."""
        f = self.flash_frames
        for n in range(f + 1):
            if t + n > self._last:
                break
            for m in range(f + 1 - n):
                if (n, m) == (0, 0) or t - 1 - m < (self._first or 0):
                    continue
                if _distances(self._frames[t + n].thumb, self._frames[t - 1 - m].thumb)[1] < 0.5 * score:
                    return True
        return False

    # -- dissolves ----------------------------------------------------------------------------

    def _check_dissolve(self, c: int) -> None:
        found = self._dissolve_at(c)
        if found is not None:
            self._run.append(found)
        elif self._run:
            self._finish_dissolve()

    def _dissolve_at(self, c: int) -> _Mix | None:
        """Whether frame ``c`` is the middle of a mix of the frames ``h`` before and after it,
        for some ``h``; the window kept is the smallest that shows (nearly) the deepest dip."""
        frames, first = self._frames, self._first
        assert first is not None
        mid = frames[c]
        if mid.dark:
            return None
        found: list[tuple[int, float, float]] = []  # (h, contrast dip, RMS difference of the ends)
        for h in DISSOLVE_HALVES:
            if c - h < first or c + h > self._last:
                break
            a, b = frames[c - h], frames[c + h]
            if a.dark or b.dark:
                break
            span = b.thumb - a.thumb
            d2 = float(np.vdot(span, span))
            if d2 < MIX_DIFFERENCE**2 * span.size:
                continue
            # Ends that are one picture at two brightnesses are a fade (or exposure), not a mix.
            if float(np.vdot(a.centered, b.centered)) > 0.9 * math.sqrt(a.energy * b.energy):
                continue
            alpha = float(np.vdot(mid.thumb - a.thumb, span)) / d2
            if not 0.3 <= alpha <= 0.7 or not _uniform_mix(mid.thumb - a.thumb, span):
                continue
            off = mid.thumb - a.thumb - alpha * span
            if float(np.vdot(off, off)) > MIX_RESIDUAL**2 * d2:
                continue
            q = max(1, h // 2)
            a1 = float(np.vdot(frames[c - q].thumb - a.thumb, span)) / d2
            a3 = float(np.vdot(frames[c + q].thumb - a.thumb, span)) / d2
            if not a1 < alpha < a3:
                continue
            # Superimposed unrelated pictures lose contrast; a pan or a zoom keeps it.
            dip = mid.var / max(1e-6, (1 - alpha) * a.var + alpha * b.var)
            if dip > MIX_CONTRAST:
                continue
            # Half of each picture: no shift of either end matches the middle (as after motion).
            rms = math.sqrt(d2 / span.size)
            if min(_distances(mid.thumb, a.thumb)[1], _distances(mid.thumb, b.thumb)[1]) < 0.25 * rms:
                continue
            found.append((h, dip, rms))
        if not found:
            return None
        deepest = min(dip for _, dip, _ in found)
        h, dip, _ = next(f for f in found if f[1] <= deepest + 0.05)
        return _Mix(c, h, deepest, *self._dissolve_span(c, h))

    def _dissolve_span(self, c: int, h: int) -> tuple[int, int]:
        """Where the mix leaves the first picture and reaches the second, between ``c -/+ h``."""
        a, b = self._frames[c - h].thumb, self._frames[c + h].thumb
        span = b - a
        d2 = float(np.vdot(span, span))

        def alpha(i: int) -> float:
            return float(np.vdot(self._frames[i].thumb - a, span)) / d2

        s = c
        while s - 1 > c - h and alpha(s - 1) > 0.1:
            s -= 1
        e = c
        while e < c + h and alpha(e) < 0.9:
            e += 1
        return s, e

    def _finish_dissolve(self) -> None:
        run, self._run = self._run, []
        if len(run) < 2:
            return
        # Each middle frame's own estimate of the span can run into motion next to it; the median
        # of them all is steady.
        s = min(int(median(m.start for m in run)), run[0].center)
        e = max(int(median(m.end for m in run)), run[-1].center + 1)
        dip = min(m.dip for m in run)
        if (any(t.kind == "cut" and s <= t.boundary <= e for t in self._pending)
                or any(qs <= e and qe >= s for qs, qe in self._quiet)):
            return
        self._pending.append(Transition("dissolve", s, e, (s + e) // 2, round(1 / max(dip, MIN_DIP), 2)))

    # -- fades --------------------------------------------------------------------------------

    def _track_fade(self) -> None:
        """Follow near-black runs and the ramps into and out of them, one frame at a time."""
        frames, last = self._frames, self._last
        cur = frames[last]
        if self._fade is not None:
            u = last - 1  # still brightening if the frame after it is brighter
            brighter = cur.luma > frames[u].luma * (1 + RAMP_STEP)
            if cur.dark or not brighter or u - self._fade.black_end >= MAX_RAMP:
                self._finish_fade(u)
        if cur.dark:
            if self._dark is None:
                s = self._ramp_out(last)
                before = frames[s - 1].luma if s - 1 in frames else frames[s].luma
                self._dark = _Fade(s, last, -1, before, cur.luma)
            else:
                self._dark.black_luma = max(self._dark.black_luma, cur.luma)
        elif self._dark is not None:
            self._fade, self._dark = self._dark, None
            self._fade.black_end = last

    def _close_fade(self) -> None:
        """At the end: a ramp still brightening ends there; black to the end closes the last shot."""
        if self._fade is not None:
            self._finish_fade(self._last + 1)
        if self._dark is not None:
            self._absorb(self._dark.start, self._last + 1)
            self._dark = None

    def _ramp_out(self, a: int) -> int:
        """The first of the frames before ``a`` that each got darker than the one before."""
        frames, first = self._frames, self._first
        assert first is not None
        s, darker = a, 1 - RAMP_STEP
        while s - 1 > first and a - s < MAX_RAMP and frames[s - 1].luma < frames[s - 2].luma * darker:
            s -= 1
        return s

    def _finish_fade(self, e: int) -> None:
        """The brightening ramp ended at ``e`` (its first clean frame)."""
        fade, self._fade = self._fade, None
        assert fade is not None
        self._absorb(fade.start, e)
        # Black from the first frame on opens the first shot; a blink is no transition either.
        if fade.black_start > (self._first or 0) and not self._blinked(fade, e):
            after = self._frames[min(e, self._last)].luma
            boundary = min(max((fade.start + e) // 2, fade.black_start), fade.black_end)
            score = min(fade.before_luma, after) / max(1.0, fade.black_luma)
            self._pending.append(Transition("fade", fade.start, e, boundary, round(score, 2)))

    def _blinked(self, fade: _Fade, e: int) -> bool:
        """Whether black as short as a flash gave back the picture from before it."""
        frames = self._frames
        if e - fade.start > self.flash_frames + 1 or e > self._last or fade.start - 1 not in frames:
            return False
        before = frames[fade.start - 1].thumb
        depth = _distances(before, frames[fade.black_start].thumb)[1]
        return _distances(frames[e].thumb, before)[1] < max(self.cut_threshold, 0.3 * depth)

    def _absorb(self, s: int, e: int) -> None:
        """Cuts and dissolves within a fade's frames ``[s, e]`` are part of it."""
        self._pending = [t for t in self._pending
                         if not (t.kind == "cut" and s <= t.boundary <= e)
                         and not (t.kind == "dissolve" and t.start <= e and t.end >= s)]
        self._quiet = [q for q in self._quiet if q[1] >= self._last - 4 * self.lag] + [(s, e)]


def _distances(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """RMS difference of two thumbnails over their middle: as they are, and with ``b`` shifted
    by up to ``SHIFT`` pixels to best match ``a``."""
    sx, sy = SHIFT
    core = a[sy:-sy, sx:-sx]
    sq = cv2.matchTemplate(b, core, cv2.TM_SQDIFF)
    n = core.size
    return math.sqrt(max(0.0, float(sq[sy, sx])) / n), math.sqrt(max(0.0, float(sq.min())) / n)


def _uniform_mix(towards: np.ndarray, span: np.ndarray) -> bool:
    """Whether the middle went the same share of the way from one end to the other all over the
    picture (a dissolve), rather than here but not there (something moving in or out)."""
    h, w = THUMB[1] // 2, THUMB[0] // 4
    dots = (towards * span).reshape(2, h, 4, w, 3).sum(axis=(1, 3, 4)).ravel()
    energy = (span * span).reshape(2, h, 4, w, 3).sum(axis=(1, 3, 4)).ravel()
    strong = energy >= 0.25 * energy.mean()
    return float(np.std(dots[strong] / energy[strong])) <= MIX_UNIFORMITY


def detect_transitions(frames: Iterable[np.ndarray], *, start: int = 0,
                       **options: object) -> list[Transition]:
    """All transitions in a sequence of small frames (``options`` go to :class:`ShotDetector`)."""
    detector = ShotDetector(**options)  # type: ignore[arg-type]
    out: list[Transition] = []
    for i, frame in enumerate(frames, start):
        out.extend(detector.push(i, frame))
    out.extend(detector.flush())
    return out


def shots_from_transitions(transitions: Iterable[Transition], frames: int, *, start: int = 0) -> list[Shot]:
    """Shots covering frames ``[start, start + frames)``, split at each transition's boundary.

    Each shot's ``transition`` is the kind of the transition it begins with; the first shot's is
    ``"cut"``. Boundaries outside the range, or repeated, are ignored.
    """
    if frames < 0:
        raise InvalidArgumentError(f"frame count must be >= 0, got {frames}")
    stop = start + frames
    shots: list[Shot] = []
    begin, kind = start, "cut"
    for t in sorted(transitions, key=lambda t: t.boundary):
        if t.kind not in ("cut", "dissolve", "fade"):
            raise InvalidArgumentError(f"unknown transition kind {t.kind!r}")
        if begin < t.boundary < stop:
            shots.append(Shot(begin, t.boundary, kind))  # type: ignore[arg-type]
            begin, kind = t.boundary, t.kind
    if frames:
        shots.append(Shot(begin, stop, kind))  # type: ignore[arg-type]
    return shots
