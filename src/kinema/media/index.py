"""The frame index: every frame's exact pts in presentation order, and where to start decoding it.

Built by demuxing packets without decoding them, so it is fast and exact for B-frames, open
GOPs, variable frame rate and streams whose first pts is not zero.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.errors import CorruptMediaError
from kinema.media.stamp import cache_name, cache_root, source_stamp

if TYPE_CHECKING:
    import av.container
    import av.video.stream

log = logging.getLogger("kinema.media")


@dataclass(frozen=True)
class FrameIndex:
    """Presentation-ordered pts of every frame and the keyframes to seek to."""

    time_base: Fraction
    pts: np.ndarray  # int64, strictly increasing
    keyframes: np.ndarray  # int64 frame indices of keyframes, increasing
    truncated: bool = False
    _lookup: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lookup.update({int(p): i for i, p in enumerate(self.pts)})

    def __len__(self) -> int:
        return len(self.pts)

    def index_of_pts(self, pts: int | None) -> int | None:
        """Frame index of an exact pts, or ``None`` for a pts the index does not hold."""
        return None if pts is None else self._lookup.get(int(pts))

    def keyframe_for(self, i: int) -> int:
        """Index of the keyframe to start decoding from to reach frame ``i``.

        The last keyframe at or before ``i`` in presentation order. Leading pictures of an
        open GOP come before their I-frame in presentation order, so they get the previous
        keyframe, whose GOP decodes through them correctly.
        """
        k = int(np.searchsorted(self.keyframes, i, side="right")) - 1
        return int(self.keyframes[max(k, 0)]) if len(self.keyframes) else 0

    def previous_keyframe(self, kf: int) -> int | None:
        """The keyframe before keyframe ``kf``, or ``None`` at the first."""
        k = int(np.searchsorted(self.keyframes, kf, side="left")) - 1
        return int(self.keyframes[k]) if k >= 0 else None

    def time(self, i: int) -> Fraction:
        """Seconds from the first frame to frame ``i``, exact."""
        return (int(self.pts[i]) - int(self.pts[0])) * self.time_base

    def frame_duration(self, i: int) -> Fraction:
        """Display duration of frame ``i``: the gap to the next pts (the last repeats the median)."""
        if i + 1 < len(self.pts):
            return (int(self.pts[i + 1]) - int(self.pts[i])) * self.time_base
        if len(self.pts) > 1:
            return int(np.median(np.diff(self.pts))) * self.time_base
        return Fraction(0)

    def index_at(self, seconds: Fraction) -> int:
        """Index of the frame on screen ``seconds`` after the first frame: the last to start by then."""
        target = Fraction(seconds) / self.time_base + int(self.pts[0])
        # pts are integers; the frame shown at t is the last with pts <= t.
        i = int(np.searchsorted(self.pts, int(np.floor(target)), side="right")) - 1
        return max(i, 0)

    def is_constant_rate(self) -> bool:
        """True when every frame lasts the same number of ticks (±1 tick of rounding)."""
        if len(self.pts) < 3:
            return True
        d = np.diff(self.pts)
        return int(d.max() - d.min()) <= 1


INDEX_VERSION = 2
# B-frame reordering shows a frame at most this many places from where it is stored.
REORDER_WINDOW = 16
# Indexing takes about 15-35 us a frame; below this it is not worth a file in the cache.
CACHE_MIN_SECONDS = 0.25


def load_or_build_index(container: av.container.InputContainer,
                        stream: av.video.stream.VideoStream, path: Path) -> FrameIndex:
    """The index of ``path``: from the on-disk cache when its stamp still matches the file,
    otherwise built by demuxing (and cached when that took long: hours of footage)."""
    cached = _index_cache_path(path)
    stamp = {"version": INDEX_VERSION, "stream": stream.index, **source_stamp(path)}
    index = _load_cached(cached, stamp)
    if index is not None:
        return index
    start = time.perf_counter()
    index = build_index(container, stream, str(path))
    if time.perf_counter() - start >= CACHE_MIN_SECONDS:
        _save_cached(cached, stamp, index)
    return index


def _index_cache_path(path: Path) -> Path:
    return cache_root("index") / cache_name(path, ".index.npz")


def _load_cached(cached: Path, stamp: dict[str, object]) -> FrameIndex | None:
    try:
        with np.load(cached, allow_pickle=False) as data:
            if json.loads(str(data["stamp"])) != stamp:
                return None
            num, den = (int(x) for x in data["time_base"])
            return FrameIndex(time_base=Fraction(num, den), pts=data["pts"],
                              keyframes=data["keyframes"], truncated=bool(data["truncated"]))
    except (OSError, KeyError, ValueError):  # missing, stale format or damaged: rebuild
        return None


def _save_cached(cached: Path, stamp: dict[str, object], index: FrameIndex) -> None:
    import io

    from kinema.core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, stamp=json.dumps(stamp), pts=index.pts, keyframes=index.keyframes,
             time_base=np.array([index.time_base.numerator, index.time_base.denominator]),
             truncated=index.truncated)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, buf.getvalue())
    except OSError as exc:  # a read-only cache only costs the next open its time
        log.debug("cannot cache the frame index at %s: %s", cached, exc)


def build_index(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                path: str) -> FrameIndex:
    """Demux every packet of ``stream`` and build the :class:`FrameIndex`."""
    import av

    others = [s for s in container.streams if s.index != stream.index]
    for s in others:
        s.discard = av.stream.Discard.all
    pts_list: list[int] = []
    key_pts: list[int] = []
    dts_only = False
    truncated = False
    corrupt_tail = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            pts = packet.pts
            if pts is None:
                pts, dts_only = packet.dts, True
            if pts is None:
                continue
            corrupt_tail = corrupt_tail + 1 if packet.is_corrupt else 0
            pts_list.append(int(pts))
            if packet.is_keyframe:
                key_pts.append(int(pts))
    except av.error.FFmpegError as exc:
        truncated = True
        log.warning("%s: stops early at packet %d (%s); using the frames before it",
                    path, len(pts_list), exc)
    finally:
        for s in others:
            s.discard = av.stream.Discard.default
    if corrupt_tail:
        # A file cut mid-packet ends with clipped packets: they cannot decode, so drop them.
        truncated = True
        del pts_list[-corrupt_tail:]
    if dts_only and stream.codec_context.has_b_frames:
        raise CorruptMediaError("packets carry no presentation timestamps", path=path,
                                hint="remux it into .mkv or .mp4 (e.g. ffmpeg -i IN -c copy OUT.mkv)")
    if not pts_list:
        raise CorruptMediaError("has no video frames", path=path,
                                hint="the file is empty or truncated; re-export it")
    pts = np.unique(np.asarray(pts_list, dtype=np.int64))
    tb = Fraction(stream.time_base or Fraction(1, 1))
    truncated = truncated or _shorter_than_declared(container, stream, pts, tb)
    if truncated:
        pts = drop_ragged_tail(pts)
    key_pts_kept = [p for p in key_pts if p <= pts[-1]] or [int(pts[0])]
    keys = np.unique(np.searchsorted(pts, np.asarray(key_pts_kept, dtype=np.int64)))
    if keys[0] != 0:
        # Frames before the first keyframe: decoding starts at the file start for them.
        keys = np.concatenate([[0], keys])
    return FrameIndex(time_base=tb, pts=pts, keyframes=keys.astype(np.int64), truncated=truncated)


def drop_ragged_tail(pts: np.ndarray) -> np.ndarray:
    """``pts`` of a cut-off stream without the frames after a hole among its last ones.

    Packets are stored in decode order, so a file cut mid-GOP keeps a P-frame but loses the
    B-frames shown before it: holes in presentation order that would read as a frame-rate
    change. Only a stream whose frames are otherwise evenly spaced is trimmed, where a long
    gap can only be frames that are missing.
    """
    body = pts[:-REORDER_WINDOW]
    if len(body) < 3:
        return pts
    steps = np.diff(body)
    if int(steps.max() - steps.min()) > 1:  # variable frame rate: a long frame may be real
        return pts
    holes = np.flatnonzero(np.diff(pts[len(body) - 1:]) > steps.max())
    return pts[:len(body) + int(holes[0])] if len(holes) else pts


def _shorter_than_declared(container: av.container.InputContainer,
                           stream: av.video.stream.VideoStream, pts: np.ndarray,
                           tb: Fraction) -> bool:
    """Whether the header promises more than the packets deliver (a cut-off file)."""
    import av

    if stream.frames and len(pts) < stream.frames:
        return True
    tagged = _tagged_duration(stream)
    if stream.duration:
        declared = stream.duration * tb
    elif tagged is not None:
        declared = tagged
    elif container.duration and len(container.streams) == 1:
        declared = Fraction(container.duration, av.time_base)
    else:  # other streams may run longer than the video: no trustworthy figure
        return False
    if len(pts) < 2:
        return False
    found = (int(pts[-1]) - int(pts[0])) * tb
    step = Fraction(int(np.median(np.diff(pts)))) * tb
    return found + max(Fraction(1, 10), 3 * step) < declared


def _tagged_duration(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's length from a Matroska ``DURATION`` tag ("00:00:04.004000000"), if any."""
    from kinema.core.errors import InvalidArgumentError
    from kinema.core.timebase import parse_time

    tag = stream.metadata.get("DURATION")
    if not tag:
        return None
    try:
        return parse_time(tag)
    except InvalidArgumentError:  # a tag some other tool wrote its own way
        return None
