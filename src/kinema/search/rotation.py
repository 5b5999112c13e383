"""A channel's rotation through a footage library: which shots, cut where. Pure functions, no I/O.

A channel made from the user's own footage plays segment after segment for ever. Each segment
is cut on beats of its music (:func:`beat_points`: a cut on a beat at least ``shot_frames``
after the one before) and filled with distinct shots (:func:`plan_segment`) taken in the
channel's order round and round. A :class:`Rotation` carries what must survive from one segment
to the next, and across restarts (it is JSON): where the order has got to, how much of each
shot has been shown (a shot that comes round again continues where it left off), and which
shots were on air recently (avoided while others fit).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kinema.core.errors import InvalidArgumentError
from kinema.search.cutting import Cut, Piece


def piece_key(piece: Piece) -> str:
    """A shot's name in a :class:`Rotation`: its file and first frame."""
    return f"{piece.source}#{piece.start}"


@dataclass
class Rotation:
    """Where a channel's rotation stands: the next place in the order (``cursor``), source
    frames of each shot already shown (``used``), the shots on air most recently (``recent``,
    oldest first) and how many segments were planned (``count``)."""

    cursor: int = 0
    used: dict[str, int] = field(default_factory=dict)
    recent: list[str] = field(default_factory=list)
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "used": dict(self.used), "recent": list(self.recent),
                "count": self.count}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rotation:
        return cls(int(data.get("cursor", 0)), {str(k): int(v) for k, v in data.get("used", {}).items()},
                   [str(k) for k in data.get("recent", [])], int(data.get("count", 0)))


def varied_order(pieces: Sequence[Piece], seed: str) -> list[Piece]:
    """``pieces`` in a deterministic order that varies: each source's shots shuffled (seeded by
    ``seed``, e.g. the theme), then the sources taking turns, so neighbours seldom share a file."""
    rng = random.Random(seed)
    by_source: dict[str, list[Piece]] = {}
    for piece in sorted(pieces, key=lambda p: (p.source, p.start)):
        by_source.setdefault(piece.source, []).append(piece)
    groups = list(by_source.values())
    for group in groups:
        rng.shuffle(group)
    rng.shuffle(groups)
    out: list[Piece] = []
    for k in range(max((len(g) for g in groups), default=0)):
        out += [g[k] for g in groups if k < len(g)]
    return out


def beat_points(beats: Sequence[float], start: Fraction, seconds: Fraction, fps: Fraction, *,
                shot_frames: int, min_frames: int | None = None) -> list[int]:
    """Output frames where a segment of ``seconds`` cuts, from 0 to its last frame (exclusive
    end included): the frame nearest each beat (song seconds; the segment starts ``start`` into
    the song) that is at least ``shot_frames`` after the previous cut and ``min_frames`` (default
    ``shot_frames // 2``) before the end."""
    total = int(seconds * fps)
    if total < 1:
        raise InvalidArgumentError("a segment must last at least one frame")
    least = shot_frames // 2 if min_frames is None else min_frames
    points, last = [0], 0
    for beat in sorted(beats):
        frame = int(round((Fraction(beat).limit_denominator(100000) - start) * fps))
        if frame - last >= shot_frames and total - frame >= max(least, 1):
            points.append(frame)
            last = frame
    return [*points, total]


def fewest_cuts(beats: Sequence[float], start: Fraction, seconds: Fraction, fps: Fraction, *,
                shot_frames: int, shots: int) -> list[int]:
    """:func:`beat_points` with ``shot_frames`` lengthened until there are no more spans than
    ``shots`` (each span gets a shot of its own)."""
    if shots < 1:
        raise InvalidArgumentError("the library has no shots to cut")
    length = max(1, shot_frames)
    while True:
        points = beat_points(beats, start, seconds, fps, shot_frames=length)
        if len(points) - 1 <= shots:
            return points
        length *= 2


def limit_spans(points: Sequence[int], longest: int) -> list[int]:
    """``points`` with spans longer than ``longest`` frames (the longest shot) split evenly, so
    every span has a shot that can fill it."""
    if longest < 1:
        raise InvalidArgumentError("the library has no shots to cut")
    out = [points[0]]
    for a, b in itertools.pairwise(points):
        parts = math.ceil((b - a) / longest)
        out += [a + round((b - a) * k / parts) for k in range(1, parts)] + [b]
    return out


def plan_segment(pieces: Sequence[Piece], points: Sequence[int], fps: Fraction,
                 rotation: Rotation, *, remember: int | None = None) -> tuple[list[Cut], list[str], Rotation]:
    """The cuts filling the spans between ``points`` (output frames at ``fps``), one shot each,
    no shot twice, the shots' keys (:func:`piece_key`) and the rotation after them. Shots are
    taken in ``pieces`` order from ``rotation.cursor`` on, round and round; the recently shown
    ones only when nothing else has room. A shot continues where it left off, and starts again
    once it has too little left. ``remember`` shots count as recent (default: half the library)."""
    if not pieces:
        raise InvalidArgumentError("the library has no shots to cut")
    remember = max(0, len(pieces) // 2) if remember is None else remember
    used = dict(rotation.used)
    recent = list(rotation.recent)
    cursor = rotation.cursor % len(pieces)
    taken: list[str] = []
    cuts: list[Cut] = []
    for a, b in itertools.pairwise(points):
        length = b - a
        found = _next_fitting(pieces, used, cursor, length, fps, taken, set(recent))
        if found is None:
            found = _next_fitting(pieces, used, cursor, length, fps, taken, set())
        if found is None:  # a library of few shots: one shows twice in the segment
            found = _next_fitting(pieces, used, cursor, length, fps, (), set())
        if found is None:
            raise InvalidArgumentError(f"no shot is long enough ({length} frames) for the gap "
                                       "between beats", hint="give the library longer clips")
        piece = pieces[found]
        key = piece_key(piece)
        if _left(piece, used.get(key, 0), fps) < length:  # shown to the end: start it again
            used[key] = 0
        cuts.append(Cut(piece.source, piece.start + used.get(key, 0), length, piece.rate))
        used[key] = used.get(key, 0) + math.ceil(Fraction(length) / fps * piece.rate)
        taken.append(key)
        recent = [k for k in recent if k != key] + [key]
        cursor = (found + 1) % len(pieces)
    recent = recent[-remember:] if remember else []
    return cuts, taken, Rotation(cursor, used, recent, rotation.count + 1)


def _left(piece: Piece, used: int, fps: Fraction) -> int:
    return int(Fraction(piece.end - piece.start - used) / piece.rate * fps)


def _next_fitting(pieces: Sequence[Piece], used: dict[str, int], cursor: int, length: int, fps: Fraction,
                  taken: Sequence[str], avoid: set[str]) -> int | None:
    for tries in range(len(pieces)):
        j = (cursor + tries) % len(pieces)
        key = piece_key(pieces[j])
        if key in taken or key in avoid:
            continue
        if _left(pieces[j], used.get(key, 0), fps) >= length or _left(pieces[j], 0, fps) >= length:
            return j
    return None
