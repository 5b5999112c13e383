"""Planning edits: exact durations, diversity, cuts on beats; beat tracking on a click track."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.search.beats import find_beats, snap_to_onsets
from kinema.search.cutting import Piece, beat_cuts, fit_duration, most_relevant_diverse

FPS = Fraction(30)


def pieces() -> list[Piece]:
    # five shots of one 25 fps source, 2 s each, with scores
    return [Piece("a.mp4", 50 * k, 50 * k + 50, Fraction(25), score=s, order=k)
            for k, s in enumerate([0.1, 0.9, 0.3, 0.8, 0.5])]


def test_fit_duration_is_exact_and_ordered():
    cuts = fit_duration(pieces(), 150, FPS)  # 5 s at 30 fps out of 2 s shots
    assert sum(c.frames for c in cuts) == 150
    assert [c.start for c in cuts] == [50, 150, 200]  # the best three, in story order
    assert [c.frames for c in cuts] == [60, 60, 30]  # the third one trimmed to fit
    ranked = fit_duration(pieces(), 150, FPS, order="ranked")
    assert [c.start for c in ranked] == [50, 150, 200]
    with pytest.raises(InvalidArgumentError, match="needs 400"):
        fit_duration(pieces(), 400, FPS)


def test_mmr_prefers_relevant_then_different():
    e = np.array([[1, 0], [0.99, 0.14], [0, 1]], np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    order = most_relevant_diverse(e, np.array([0.9, 0.89, 0.5]), balance=0.5)
    assert order == [0, 2, 1]  # the near-duplicate of the first waits for the different one


def test_beat_cuts_land_on_the_nearest_frame():
    beats = [0.5, 1.0, 1.52, 2.0]
    cuts = beat_cuts(beats, Fraction(5, 2), pieces(), FPS)
    points = np.cumsum([0] + [c.frames for c in cuts])
    assert list(points) == [0, 15, 30, 46, 60, 75]  # 1.52 s -> frame 46 (45.6)
    every2 = beat_cuts(beats, Fraction(5, 2), pieces(), FPS, every=2)
    assert list(np.cumsum([0] + [c.frames for c in every2])) == [0, 15, 46, 75]
    with pytest.raises(InvalidArgumentError, match="long enough"):
        beat_cuts([5.0], Fraction(10), pieces(), FPS)


def click_track(seconds: float, period: float, rate: int = 44100) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * rate))
    y = 0.01 * np.random.default_rng(0).normal(size=len(t))
    beats = np.arange(period, seconds - 0.2, period)
    for b in beats:
        i = int(b * rate)
        y[i:i + 300] += np.hanning(300) * 0.9
    return y.astype(np.float32), beats


def test_beats_of_a_click_track_within_a_frame():
    y, truth = click_track(8.0, 0.5)
    found = find_beats(y, 44100)
    assert found.tempo == pytest.approx(120, rel=0.03)
    inner = [t for t in truth if 1.0 <= t <= 7.0]
    for t in inner:
        assert np.min(np.abs(found.times - t)) < 1 / 30  # every beat found within one frame
    assert len(found.times) <= len(truth) + 1
    assert list(snap_to_onsets(np.array([1.0, 2.0]), np.array([1.03, 2.5]))) == [1.03, 2.0]


def test_no_sliver_at_the_end():
    cuts = fit_duration(pieces(), 125, FPS, min_frames=12)  # 60 + 60 would leave 5
    assert [c.frames for c in cuts] == [60, 53, 12] and sum(c.frames for c in cuts) == 125


def test_beat_cuts_show_each_moment_once():
    # two clips of one 4 s shot each (25 fps) cut every 0.5 s for 6 s at 30 fps: the clips take
    # turns and each turn continues where the last one left off
    clips = [Piece(name, 0, 100, Fraction(25), order=k) for k, name in enumerate(("a.mp4", "b.mp4"))]
    cuts = beat_cuts([0.5 * k for k in range(1, 12)], Fraction(6), clips, FPS)
    assert [c.source for c in cuts] == ["a.mp4", "b.mp4"] * 6
    # 15 output frames are 12.5 source frames: the next piece starts on the frame after
    assert [c.start for c in cuts if c.source == "a.mp4"] == [0, 13, 26, 39, 52, 65]
    for name in ("a.mp4", "b.mp4"):
        spans = sorted((c.start, c.start + c.frames * Fraction(25) / FPS) for c in cuts if c.source == name)
        assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans))  # never overlapping
    # once all the footage has been shown it comes round again from the start
    again = beat_cuts([0.5 * k for k in range(1, 24)], Fraction(12), clips, FPS)
    assert len(again) == 24 and again[-2].start < again[10].start


def test_beats_at_the_start_and_in_silence():
    y, truth = click_track(6.0, 0.5)
    y[: 300] += np.hanning(300).astype(np.float32) * 0.9  # a click on the very first sample
    found = find_beats(y, 44100)
    assert found.times[0] < 1 / 30 and np.all(np.abs(found.times[1:4] - truth[:3]) < 1 / 30)
    silence = find_beats(np.zeros(44100 * 3, np.float32), 44100)
    assert silence.tempo is None and len(silence.times) == 0
    assert silence.to_json() == {"tempo": None, "beats": []}
    hiss = find_beats((1e-4 * np.random.default_rng(1).normal(size=44100 * 3)).astype(np.float32), 44100)
    assert hiss.tempo is None and len(hiss.times) == 0  # below -60 dBFS: silence too
