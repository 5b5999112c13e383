"""Frame-accurate random access to a video: ``open_video(path)[i]`` is exactly frame ``i``."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from fractions import Fraction
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from kinema.core.errors import CorruptMediaError, InvalidArgumentError
from kinema.core.frames import Frame
from kinema.core.timebase import snap_rate, to_fraction
from kinema.media.cache import ByteLRU, FrameCache, shared_cache
from kinema.media.container import open_input, video_stream
from kinema.media.convert import display_size, to_rgb, to_yuv
from kinema.media.decoder import Decoder, has_alpha
from kinema.media.hwaccel import choose_hwaccel, make_hwaccel
from kinema.media.index import load_or_build_index

if TYPE_CHECKING:
    import av

log = logging.getLogger("kinema.media")

# Decoding this many frames forward costs about as much as a seek and the start of a GOP.
SEEK_COST_FRAMES = 4
# A jump decodes every frame only this close before its target; further back it skips the
# frames nothing refers to, and the prefetcher fills them in afterwards.
JUMP_KEEP_BEHIND = 8
# glibc's mallopt parameters, and the largest mmap threshold it accepts on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


class VideoReader:
    """A video as a sequence of RGB ``uint8 (H, W, 3)`` frames in presentation order.

    With ``alpha=True`` frames are RGBA ``(H, W, 4)``; ``has_alpha`` says whether the source
    carries alpha (ProRes 4444, VP9 with alpha, PNG) or is opaque.

    Random access decodes from the right keyframe and keeps the frames around the playhead in
    a cache bounded in bytes, shared by all readers of the process (``$KINEMA_FRAME_CACHE_MB``)
    unless ``cache_bytes`` gives this reader a budget of its own. After the first read a
    background thread fills that window, so stepping and scrubbing around a position is
    instant. :meth:`frames` streams sequentially at full decoder speed.
    """

    def __init__(self, path: str | os.PathLike[str], *, decode_path: str | os.PathLike[str] | None = None,
                 cache_bytes: int | None = None, prefetch: bool = True,
                 hwaccel: str | None = None, alpha: bool = False) -> None:
        self.path = Path(path)
        self.alpha = alpha
        self.decode_path = Path(decode_path) if decode_path is not None else self.path
        container = open_input(self.decode_path)
        try:
            stream = video_stream(container, self.decode_path)
            self.codec: str = stream.codec_context.name
            self.pix_fmt: str | None = stream.codec_context.pix_fmt
            self._coded_size = (stream.codec_context.width, stream.codec_context.height)
            self._average_rate = stream.average_rate or stream.guessed_rate
            self._index = load_or_build_index(container, stream, self.decode_path)
        finally:
            container.close()
        self._device = choose_hwaccel(self.codec, self.pix_fmt, *self._coded_size,
                                      preference=hwaccel)
        self._cache: FrameCache[av.VideoFrame] = FrameCache(
            shared_cache() if cache_bytes is None else ByteLRU(cache_bytes))
        self._lock = threading.RLock()
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._decoders = [self._new_decoder()]
        self._bad: set[int] = set()
        self._unprefetchable: set[int] = set()
        self._last_request = 0
        self._direction = 1
        self._closed = False
        self._frame_bytes = 0
        self.cache_misses = 0
        """Reads that had to wait for the decoder (for tests and benchmarks)."""
        self._wake = threading.Event()
        first = self._decode_frame(0)
        self.rotation: int = int(getattr(first, "rotation", 0) or 0)
        self.has_alpha: bool = has_alpha(first.format.name)
        self._frame_bytes = _nbytes(first)
        w, h = self.size
        _keep_frame_buffers(w * h * (4 if alpha else 3))
        self._prefetch = prefetch
        self._prefetcher: threading.Thread | None = None
        if self._index.truncated:
            log.warning("%s: file is truncated; %d frames readable, it stops at %.3f s",
                        self.path, len(self), float(self.duration))

    # -- sequence protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> Frame: ...
    @overload
    def __getitem__(self, i: slice) -> np.ndarray: ...

    def __getitem__(self, i: int | slice) -> Frame | np.ndarray:
        """Frame ``i`` as RGB ``uint8``; a slice gives an ``(N, H, W, 3)`` array."""
        if isinstance(i, slice):
            idx = range(len(self))[i]
            h, w = self.size[1], self.size[0]
            if not idx:
                return np.empty((0, h, w, 4 if self.alpha else 3), np.uint8)
            if idx.step > 0:
                return np.stack(list(self.frames(idx.start, idx.stop, idx.step)))
            return np.stack([self[j] for j in idx])
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame indices must be integers or slices, not {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame {int(i)} out of range for {self.path.name} ({n} frames)")
        frame = self._decode_frame(j)
        self._note_request(j)
        return to_rgb(frame, self.rotation, alpha=self.alpha)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    # -- time --------------------------------------------------------------------------

    @property
    def fps(self) -> Fraction:
        """Nominal frame rate; exact for constant-rate streams (e.g. ``30000/1001``).

        Where timestamps are rounded (Matroska and WebM count milliseconds), the container's
        declared rate is used when the measured one agrees with it to within that rounding.
        """
        pts = self._index.pts
        if len(pts) < 2:
            return Fraction(self._average_rate) if self._average_rate else Fraction(0)
        steps = np.diff(pts)
        if (steps == steps[0]).all():
            return 1 / (int(steps[0]) * self._index.time_base)
        span = (int(pts[-1]) - int(pts[0])) * self._index.time_base
        measured = (len(pts) - 1) / span
        if self._average_rate:
            declared = snap_rate(Fraction(self._average_rate))
            rounding = self._index.time_base / (span / (len(pts) - 1)) + Fraction(1, 10**6)
            if abs(measured / declared - 1) <= rounding:
                return declared
        return snap_rate(measured)

    @property
    def is_vfr(self) -> bool:
        """True when frame durations vary by more than timestamp rounding."""
        return not self._index.is_constant_rate()

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames this reader returns (rotation applied)."""
        return display_size(*self._coded_size, self.rotation)

    @property
    def duration(self) -> Fraction:
        """Seconds from the first frame's start to the last frame's end."""
        last = len(self) - 1
        return self._index.time(last) + self._index.frame_duration(last)

    @property
    def time_base(self) -> Fraction:
        """The stream's time base: ``start_time + timestamp(i)`` is a whole number of these."""
        return self._index.time_base

    @property
    def start_time(self) -> Fraction:
        """Absolute time of frame 0 in the file (streams need not start at zero)."""
        return int(self._index.pts[0]) * self._index.time_base

    @property
    def keyframes(self) -> list[int]:
        """Indices of the keyframes (random-access points)."""
        return self._index.keyframes.tolist()

    @property
    def bad_frames(self) -> frozenset[int]:
        """Frames that failed to decode; reading them returns the nearest good frame."""
        return frozenset(self._bad)

    @property
    def truncated(self) -> bool:
        return self._index.truncated

    @property
    def hwaccel(self) -> str | None:
        """The hardware decoder in use, or ``None`` for software."""
        return self._device

    def timestamp(self, i: int) -> Fraction:
        """Exact time of frame ``i`` in seconds from frame 0 (from the pts map, so VFR-exact)."""
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"frame {i} out of range for {self.path.name} ({n} frames)")
        return self._index.time(j)

    def index_at(self, seconds: Real | Fraction | str) -> int:
        """Index of the frame on screen at ``seconds`` from the start."""
        t = to_fraction(seconds)
        if t < 0 or t >= self.duration:
            raise IndexError(f"time {float(t):.3f}s is outside {self.path.name} "
                             f"(0 to {float(self.duration):.3f}s)")
        return self._index.index_at(t)

    # -- sequential access -------------------------------------------------------------

    def frames(self, start: int = 0, stop: int | None = None, step: int = 1, *,
               size: tuple[int, int] | None = None) -> Iterator[Frame]:
        """Frames ``start, start+step, ...`` before ``stop``, decoded sequentially and threaded.

        ``size`` ``(w, h)`` resizes (area averaging) to that displayed size.
        """
        n = len(self)
        if step < 1:
            raise InvalidArgumentError(f"step must be >= 1, got {step}")
        start, stop, _ = slice(start, stop).indices(n)
        if start >= stop:
            return
        scale = self._coded_scale(size) if size is not None else (None, None)
        for i, frame in self._sequential(start, stop):
            if (i - start) % step == 0:
                yield to_rgb(frame, self.rotation, width=scale[0], height=scale[1],
                             alpha=self.alpha)

    def analysis_frames(self, size: tuple[int, int], start: int = 0,
                        stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``[start, stop)`` for detectors, fast: small full-range YCbCr at the displayed
        ``size`` ``(w, h)`` (see :func:`kinema.media.convert.to_yuv`), decoded without the
        deblocking filter. Close to the true frames, not exact: for analysis, never display."""
        start, stop, _ = slice(start, stop).indices(len(self))
        w, h = self._coded_scale(size)
        for _, frame in self._sequential(start, stop, draft=True):
            yield to_yuv(frame, w, h, self.rotation)

    def _coded_scale(self, size: tuple[int, int]) -> tuple[int, int]:
        """The pre-rotation ``(w, h)`` that becomes ``size`` once rotated for display."""
        w, h = size
        return (h, w) if display_size(1, 2, self.rotation) == (2, 1) else (w, h)

    def _sequential(self, start: int, stop: int, *, draft: bool = False
                    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """``(index, decoded frame)`` for every index in ``[start, stop)``, gaps filled."""
        dec = self._new_decoder(draft=draft)
        try:
            dec.seek(self._index.keyframe_for(start))
            expected, last_good = start, None
            while expected < stop:
                item = dec.next()
                if item is None:
                    break
                j, frame = item
                if j < expected:
                    continue
                if last_good is None:
                    last_good = frame
                while expected < min(j, stop):  # frames that never came out of the decoder
                    self._mark_bad(expected)
                    yield expected, last_good
                    expected += 1
                if expected < stop:
                    last_good = frame
                    yield expected, frame
                    expected += 1
            for k in range(expected, stop):
                if last_good is None:
                    raise CorruptMediaError(f"no frame from {start} on decodes", path=self.path)
                self._mark_bad(k)
                yield k, last_good
        finally:
            dec.close()

    # -- thumbnails --------------------------------------------------------------------

    def thumbnail_indices(self, n: int, *, exact: bool = False) -> list[int]:
        """Evenly spaced frame indices for ``n`` thumbnails (snapped to keyframes unless exact)."""
        if n < 1:
            raise InvalidArgumentError(f"thumbnail count must be >= 1, got {n}")
        spots = np.linspace(0, len(self) - 1, n).round().astype(int).tolist()
        return spots if exact else [self._index.keyframe_for(i) for i in spots]

    def thumbnails(self, n: int, height: int = 90, *, exact: bool = False) -> np.ndarray:
        """``(n, height, w, 3)`` RGB filmstrip at :meth:`thumbnail_indices` positions."""
        if height < 2:
            raise InvalidArgumentError(f"thumbnail height must be >= 2, got {height}")
        w, h = self.size
        tw = max(2, round(height * w / h / 2) * 2)
        sw, sh = self._coded_scale((tw, height))
        out = np.empty((n, height, tw, 3), np.uint8)
        for k, i in enumerate(self.thumbnail_indices(n, exact=exact)):
            out[k] = to_rgb(self._decode_frame(i), self.rotation, width=sw, height=sh)
        return out

    # -- decoding ----------------------------------------------------------------------

    def _new_decoder(self, *, draft: bool = False) -> Decoder:
        return Decoder(self.decode_path, self._index, hwaccel=make_hwaccel(self._device), draft=draft)

    def _decode_frame(self, i: int) -> av.VideoFrame:
        """Decoded frame ``i`` from the cache or the decoder; bad frames give their neighbour."""
        hit = self._cache.get(i)
        if hit is None:
            self.cache_misses += 1
            with self._waiting_lock:
                self._waiting += 1
            try:
                with self._lock:
                    hit = self._cache.get(i)
                    if hit is None:
                        hit = self._decode_until(i)
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
        return hit

    def _decode_until(self, i: int) -> av.VideoFrame:
        """Decode frame ``i`` (caller holds the lock); a frame that will not decode is marked
        bad and its nearest good neighbour, earlier first, stands in for it."""
        frame = self._attempt(i)
        if frame is not None:
            return frame
        self._mark_bad(i)
        for j in itertools.chain(range(i - 1, -1, -1), range(i + 1, len(self))):
            if j not in self._bad:
                frame = self._cache.get(j) or self._attempt(j)
                if frame is not None:
                    self._cache.put(i, frame, self._frame_bytes or _nbytes(frame))
                    return frame
                self._mark_bad(j)
        raise CorruptMediaError("no frame decodes", path=self.path,
                                hint="the video stream is damaged beyond repair; re-export it")

    def _attempt(self, i: int) -> av.VideoFrame | None:
        """Decode up to frame ``i``, caching the frames near it; ``None`` if it never appears."""
        kf = self._index.keyframe_for(i)
        dec = self._decoder_for(i, kf)
        fresh = not self._can_continue(dec, i, kf)
        if fresh:
            self._seek(dec, kf, i)
        for _ in range(3):
            overshot = False
            while dec.last < i:
                item = dec.next()
                if item is None:
                    break
                j, frame = item
                if self._near(j, i):
                    self._cache.put(j, frame, self._frame_bytes or _nbytes(frame))
                # A demuxer that lands after the keyframe we asked for: go back one more.
                overshot, fresh = fresh and j > i, False
                if overshot:
                    break
            frame = self._cache.get(i)
            if frame is not None or not overshot or kf == 0:
                return frame
            kf = self._index.previous_keyframe(kf) or 0
            self._seek(dec, kf, i)
            fresh = True
        return None

    def _seek(self, dec: Decoder, kf: int, target: int) -> None:
        """Seek ``dec`` to keyframe ``kf`` for a jump to ``target``, skipping the frames nothing
        refers to until ``JUMP_KEEP_BEHIND`` before it: a jump decodes about a third fewer
        frames with B-frames, and the prefetcher fills the skipped ones in afterwards."""
        dec.seek(kf)
        dec.skip_before = target - JUMP_KEEP_BEHIND

    MAX_DECODERS = 3

    def _decoder_for(self, i: int, kf: int) -> Decoder:
        """The decoder to reach ``i`` with: one that can decode on to it; else one whose place
        is worth nothing (its next frames are cached or outside the window), a new one while
        there are fewer than ``MAX_DECODERS``, or the one farthest from the playhead."""
        for dec in self._decoders:
            if self._can_continue(dec, i, kf):
                return dec
        for dec in self._decoders:
            if not self._useful(dec):
                return dec
        if len(self._decoders) < self.MAX_DECODERS:
            self._decoders.append(self._new_decoder())
            return self._decoders[-1]
        return max(self._decoders, key=lambda d: abs(d.last - self._last_request))

    def _useful(self, dec: Decoder) -> bool:
        """Whether decoding on from ``dec``'s place would soon produce a missing frame we want."""
        start = dec.last + 1
        return any(self._near(j, self._last_request) and j not in self._cache
                   for j in range(start, min(start + SEEK_COST_FRAMES * 4, len(self))))

    def _near(self, j: int, center: int) -> bool:
        """Whether frame ``j`` is inside the prefetch window around ``center``.

        Frames decoded on the way to a far target are dropped rather than cached: keeping a
        whole GOP costs fresh memory on every jump and evicts frames near the playhead.
        """
        return abs(j - center) <= self._window()

    def _window(self) -> int:
        """Frames kept on each side of the playhead: ``PREFETCH_WINDOW`` within the cache budget."""
        max_frames = max(1, self._cache.max_bytes // max(1, self._frame_bytes))
        return min(self.PREFETCH_WINDOW, max_frames // 3)

    @staticmethod
    def _can_continue(dec: Decoder, i: int, kf: int) -> bool:
        """Whether decoding on from ``dec``'s position beats seeking to keyframe ``kf``."""
        return dec.last < i and i - dec.last <= i - kf + SEEK_COST_FRAMES

    def _mark_bad(self, i: int) -> None:
        if i not in self._bad:
            self._bad.add(i)
            log.warning("%s: frame %d is corrupt and cannot be decoded; showing its neighbour",
                        self.path, i)

    # -- prefetch ----------------------------------------------------------------------

    PREFETCH_WINDOW = 64

    def _note_request(self, i: int) -> None:
        step = i - self._last_request
        if step and abs(step) <= self.PREFETCH_WINDOW:
            self._direction = 1 if step > 0 else -1
        self._last_request = i
        if self._prefetch and self._prefetcher is None:
            # Started by the first read, so sequential-only use never pays for it.
            # The thread holds only a weak reference, so a reader nobody closed is still freed.
            self._prefetcher = threading.Thread(target=_prefetch_worker,
                                                args=(weakref.ref(self), self._wake), daemon=True,
                                                name=f"kinema-prefetch-{self.path.name}")
            self._prefetcher.start()
        self._wake.set()

    def _prefetch_target(self) -> int | None:
        """The next frame worth decoding around the playhead: nearest first, the playback side
        first at equal distance. Behind counts as much as ahead: a scrub goes both ways, and
        the GOP behind takes longest to fill."""
        c, d, n = self._last_request, self._direction, len(self)
        for dist in range(1, self._window() + 1):
            for j in (c + d * dist, c - d * dist):
                if 0 <= j < n and j not in self._unprefetchable and j not in self._cache:
                    return j
        return None

    def _prefetch_until_idle(self) -> None:
        """Fill the window around the playhead, yielding to foreground reads between frames."""
        while not self._closed:
            if self._waiting:  # a foreground read holds or wants the decoder: let it run
                time.sleep(0.002)
                continue
            target = self._prefetch_target()
            if target is None:
                break
            with self._lock:
                if self._closed:
                    return
                if self._waiting or target in self._cache:
                    continue
                self._prefetch_step(target)

    def _prefetch_step(self, target: int) -> None:
        """Decode one frame toward ``target`` so a foreground request can cut in between frames."""
        kf = self._index.keyframe_for(target)
        dec = self._decoder_for(target, kf)
        fresh = not self._can_continue(dec, target, kf)
        if fresh:
            dec.seek(kf)
        item = dec.next()
        if item is not None:
            j, frame = item
            if j == target or self._near(j, self._last_request):
                self._cache.put(j, frame, self._frame_bytes or _nbytes(frame))
        if (item is None or j > target) and target not in self._cache:
            # Past it without producing it: leave it to a foreground read, which retries.
            self._unprefetchable.add(target)

    # -- lifetime ----------------------------------------------------------------------

    def clear_cache(self) -> None:
        """Drop every decoded frame; the next read seeks afresh (for benchmarks and memory)."""
        with self._lock:
            self._cache.clear()
            for dec in self._decoders:
                dec.last = len(self)

    def close(self) -> None:
        """Stop prefetching and release the decoder."""
        if self._closed:
            return
        self._closed = True
        if self._prefetcher is not None:
            self._wake.set()
            if self._prefetcher is not threading.current_thread():
                self._prefetcher.join(timeout=5)
        with self._lock:
            for dec in self._decoders:
                dec.close()
            self._cache.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: modules may be gone
            self.close()

    def __repr__(self) -> str:
        w, h = self.size
        return (f"VideoReader({str(self.path)!r}, {len(self)} frames, {w}x{h}, "
                f"{self.fps} fps{', proxy' if self.decode_path != self.path else ''})")


def _prefetch_worker(ref: weakref.ref[VideoReader], wake: threading.Event) -> None:
    """Prefetch thread body: wakes on each read, exits when its reader is closed or gone."""
    while True:
        wake.wait(timeout=1.0)
        wake.clear()
        reader = ref()
        if reader is None or reader._closed:
            return
        reader._prefetch_until_idle()
        del reader


def _nbytes(frame: av.VideoFrame) -> int:
    return sum(p.buffer_size for p in frame.planes)


_heap_threshold = 0  # the mmap threshold set so far (0: glibc's own)


def _keep_frame_buffers(frame_bytes: int) -> None:
    """Have glibc's malloc keep freed buffers of ``frame_bytes`` for reuse.

    Every converted frame is a new buffer of the same size. glibc's dynamic thresholds settle
    near one such buffer to map and two to trim, so, depending on what the process freed
    before, a run of frames is either served from reused heap or mapped, zero-filled and
    page-faulted anew every frame: 1500 faults for a 1080p frame, which nearly doubled the
    CPU time of a sequential read. Thresholds above one frame and a few frames make the fast
    case certain. Only ever raised; Linux (glibc) only.
    """
    global _heap_threshold
    threshold = min(frame_bytes + frame_bytes // 4, _MMAP_THRESHOLD_MAX)
    if threshold <= _heap_threshold or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    if mallopt(_M_MMAP_THRESHOLD, threshold) and mallopt(_M_TRIM_THRESHOLD, 4 * threshold):
        _heap_threshold = threshold
