"""Planning edits from shots: which pieces, how long, in what order. Pure functions, no I/O.

A :class:`Cut` is a run of source frames; a plan is a list of cuts laid end to end. Durations
are counted in output frames and come out exact: the last piece of a highlight is trimmed to
fit, and beat cuts use the frame nearest each beat (so every cut is within half a frame of
its beat, and errors never accumulate).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from kinema.core.errors import InvalidArgumentError


@dataclass(frozen=True)
class Piece:
    """A shot that could go into an edit: ``source`` frames ``[start, end)`` at ``rate``,
    how well it matches (``score``) and its place in the footage (``order``)."""

    source: str
    start: int
    end: int
    rate: Fraction
    score: float = 0.0
    order: int = 0

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.end - self.start) / self.rate


@dataclass(frozen=True)
class Cut:
    """``frames`` output frames taken from ``source`` starting at source frame ``start``."""

    source: str
    start: int
    frames: int
    rate: Fraction  # the source's rate

    @property
    def source_seconds(self) -> Fraction:
        return Fraction(self.start) / self.rate


def _frames_at(seconds: Fraction, fps: Fraction) -> int:
    return int(seconds * fps)


def fit_duration(pieces: Sequence[Piece], total: int, fps: Fraction, *,
                 order: str = "chronological", min_frames: int = 12) -> list[Cut]:
    """Best-scoring pieces until they fill ``total`` output frames exactly (the last one cut
    short, never below ``min_frames``), laid out chronologically or best first (``ranked``)."""
    if order not in ("chronological", "ranked"):
        raise InvalidArgumentError(f"order is chronological or ranked, got {order!r}")
    if total < 1:
        raise InvalidArgumentError("the edit must last at least one frame")
    chosen: list[tuple[Piece, int]] = []
    left = total
    shortest = min(min_frames, total)
    for piece in sorted(pieces, key=lambda p: (-p.score, p.order)):
        length = _frames_at(piece.seconds, fps)
        if length < shortest:
            continue
        take = min(length, left)
        if take < shortest:
            # A sliver would read as a glitch: lengthen it by shortening the piece before.
            spare = chosen[-1][1] - shortest if chosen else 0
            need = shortest - take
            if spare < need:
                continue
            chosen[-1] = (chosen[-1][0], chosen[-1][1] - need)
            take, left = shortest, left + need
        chosen.append((piece, take))
        left -= take
        if left == 0:
            break
    if left:
        available = sum(_frames_at(p.seconds, fps) for p in pieces)
        raise InvalidArgumentError(f"the footage has {available} frames to choose from, the edit needs "
                                   f"{total}", hint="ask for a shorter duration or give more footage")
    if order == "chronological":
        chosen.sort(key=lambda pair: (pair[0].order, pair[0].start))
    return [Cut(p.source, p.start, take, p.rate) for p, take in chosen]


def most_relevant_diverse(embeddings: np.ndarray, relevance: np.ndarray, *,
                          balance: float = 0.7) -> list[int]:
    """Every index, in maximal-marginal-relevance order: each next pick maximises
    ``balance * relevance - (1 - balance) * (similarity to what is already picked)``."""
    n = len(relevance)
    if n == 0:
        return []
    picked: list[int] = [int(np.argmax(relevance))]
    similarity = embeddings @ embeddings.T
    while len(picked) < n:
        rest = [i for i in range(n) if i not in picked]
        redundancy = similarity[np.ix_(rest, picked)].max(axis=1)
        scores = balance * relevance[rest] - (1 - balance) * redundancy
        picked.append(rest[int(np.argmax(scores))])
    return picked


def beat_cuts(beats: Sequence[float], total_seconds: Fraction, pieces: Sequence[Piece], fps: Fraction,
              *, every: int = 1) -> list[Cut]:
    """Cuts that change on every ``every``-th beat (seconds) for ``total_seconds``: each span
    between cut points is filled from the next piece (in the given order, round and round)
    that has enough footage left. A piece that comes round again continues where it left off,
    so no moment is shown twice until every piece has been used up."""
    if every < 1:
        raise InvalidArgumentError(f"--every must be at least 1, got {every}")
    total = _frames_at(total_seconds, fps)
    points = sorted({int(round(Fraction(b).limit_denominator(100000) * fps))
                     for b in list(beats)[::every]} | {0, total})
    points = [p for p in points if 0 <= p <= total]
    cuts: list[Cut] = []
    used = [0] * len(pieces)  # source frames of each piece already in the edit
    k = 0
    for a, b in itertools.pairwise(points):
        length = b - a
        found = _next_with_room(pieces, used, k, length, fps)
        if found is None and any(used):  # everything has been shown: go round the footage again
            used = [0] * len(pieces)
            found = _next_with_room(pieces, used, k, length, fps)
        if found is None:
            raise InvalidArgumentError(f"no shot is long enough ({length} frames) for the gap between beats",
                                       hint="cut on every 2nd or 4th beat (--every), or give longer clips")
        piece = pieces[found]
        cuts.append(Cut(piece.source, piece.start + used[found], length, piece.rate))
        used[found] += math.ceil(Fraction(length) / fps * piece.rate)
        k = found + 1
    return cuts


def _next_with_room(pieces: Sequence[Piece], used: Sequence[int], k: int, length: int,
                    fps: Fraction) -> int | None:
    """The first piece from the ``k``-th on (round and round) with ``length`` output frames left."""
    for tries in range(len(pieces)):
        j = (k + tries) % len(pieces)
        left = Fraction(pieces[j].end - pieces[j].start - used[j]) / pieces[j].rate
        if _frames_at(left, fps) >= length:
            return j
    return None
