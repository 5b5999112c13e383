"""Mask tracks: exact round trips, one chunk rewritten per frame edit, keyframe bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.document.masktrack import CHUNK, FrameState, MaskTrackStore


def disc(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A disc that moves with the frame number: each frame's mask is different."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - (10 + i % 70)) ** 2 + (yy - 32) ** 2 < (6 + i % 9) ** 2


def test_masks_round_trip_exactly_in_any_order(tmp_path: Path):
    track = MaskTrackStore(tmp_path / "t1", frames=100, width=96, height=64, create=True)
    track.write_many(0, [disc(i) for i in range(100)])
    reopened = MaskTrackStore(tmp_path / "t1", frames=100, width=96, height=64)
    for i in np.random.default_rng(0).permutation(100):
        assert np.array_equal(reopened.read(int(i)), disc(int(i)))
    raw = 100 * 96 * 64
    stored = sum(p.stat().st_size for p in (tmp_path / "t1").iterdir())
    assert stored < raw / 10  # bit-packed and compressed


def test_one_frame_edit_rewrites_one_chunk(tmp_path: Path):
    track = MaskTrackStore(tmp_path / "t", frames=3 * CHUNK, width=96, height=64, create=True)
    track.write_many(0, [disc(i) for i in range(3 * CHUNK)])
    before = {p.name: p.read_bytes() for p in (tmp_path / "t").glob("chunk_*.npz")}
    edited = ~disc(CHUNK + 5)
    track.write(CHUNK + 5, edited, FrameState.KEYFRAME)
    after = {p.name: p.read_bytes() for p in (tmp_path / "t").glob("chunk_*.npz")}
    changed = [name for name in before if before[name] != after[name]]
    assert changed == ["chunk_000001.npz"]
    assert np.array_equal(track.read(CHUNK + 5), edited)
    assert np.array_equal(track.read(CHUNK + 6), disc(CHUNK + 6))


def test_states_and_keyframes(tmp_path: Path):
    track = MaskTrackStore(tmp_path / "t", frames=50, width=96, height=64, create=True)
    assert track.read(3) is None and track.keyframes() == []
    track.write(10, disc(10), FrameState.KEYFRAME)
    track.write_many(11, [disc(i) for i in range(11, 20)])
    track.write(30, disc(30), FrameState.KEYFRAME)
    assert track.keyframes() == [10, 30]
    assert track.state(15) == FrameState.PROPAGATED and track.state(25) == FrameState.EMPTY
    track.clear(11, 20)
    assert track.read(12) is None and track.state(10) == FrameState.KEYFRAME
    reopened = MaskTrackStore(tmp_path / "t", frames=50, width=96, height=64)
    assert reopened.keyframes() == [10, 30] and reopened.read(15) is None


def test_bad_writes_are_refused(tmp_path: Path):
    track = MaskTrackStore(tmp_path / "t", frames=10, width=96, height=64, create=True)
    with pytest.raises(InvalidArgumentError, match="96x64"):
        track.write(0, np.zeros((64, 95), bool))
    with pytest.raises(IndexError, match="10 frames"):
        track.write(10, disc(0))
    assert not list((tmp_path / "t").glob("chunk_*"))
