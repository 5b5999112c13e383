"""Windows over a long shot: every frame covered, the last window ending with the shot, shared
frames crossfaded (never a cut), per-frame noise the same in every window, memory held to one
window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.generate.video_windows import (
    Stitcher,
    Window,
    check_window,
    crossfade,
    frame_noise,
    plan_windows,
)


def test_windows_cover_the_shot_and_share_frames() -> None:
    assert plan_windows(40, 16, 4) == [Window(0, 16), Window(12, 28, 4), Window(24, 40, 4)]
    # the last window moves back to end with the shot: it leads in through frames already out
    # (12-15 were blended between the first two) and blends from frame 16 on
    assert plan_windows(30, 16, 4) == [Window(0, 16), Window(12, 28, 4), Window(14, 30, 12, 2)]
    assert plan_windows(10, 16, 4) == [Window(0, 10)]
    for frames in range(17, 120, 7):
        windows = plan_windows(frames, 17, 5, multiple=4)
        assert windows[0].start == 0 and windows[-1].stop == frames
        assert all(w.stop - w.start == 17 for w in windows)
        assert all(a.blend_from + a.shared <= b.blend_from < a.stop and b.shared >= 5
                   and b.blend_from + b.shared == a.stop
                   for a, b in itertools.pairwise(windows))


@pytest.mark.parametrize(("size", "overlap", "multiple", "message"), [
    (16, 16, 1, "between 1 and"), (16, 0, 1, "between 1 and"), (16, 4, 4, "4k\\+1")])
def test_bad_windows_are_one_line(size: int, overlap: int, multiple: int, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        plan_windows(100, size, overlap, multiple=multiple)
    with pytest.raises(InvalidArgumentError, match="longer than the shot"):
        check_window(8, 16)


def test_shared_frames_are_a_blend_not_a_cut() -> None:
    windows = plan_windows(40, 16, 6)
    assert [(w.start, w.shared, w.skip) for w in windows] == [(0, 0, 0), (10, 6, 0), (20, 6, 0),
                                                               (24, 10, 2)]
    stitcher = Stitcher()
    out = {}
    for k, window in enumerate(windows):
        frames = [np.full((2, 2, 3), 40 * (k + 1), np.uint8) for _ in window.frames]
        following = windows[k + 1] if k + 1 < len(windows) else None
        for i, image in stitcher.add(window, frames, following):
            assert i not in out
            out[i] = int(image[0, 0, 0])
    assert list(out) == list(range(40))  # every frame once, in order
    # window 0 alone on 0-9, the shared frames 10-15 rise from window 0's 40 to window 1's 80
    assert [out[i] for i in range(10)] == [40] * 10
    seam = [out[i] for i in range(10, 16)]
    assert all(40 < v < 80 for v in seam) and seam == sorted(seam) and len(set(seam)) == 6
    assert out[16] == 80 and all(120 < out[i] < 160 for i in range(26, 36)) and out[39] == 160


def test_crossfade_weights() -> None:
    a = [np.zeros((1, 1, 3), np.uint8)] * 3
    b = [np.full((1, 1, 3), 200, np.uint8)] * 3
    assert [int(f[0, 0, 0]) for f in crossfade(a, b)] == [50, 100, 150]


def test_a_frame_gets_the_same_noise_in_every_window() -> None:
    first = frame_noise(7, range(0, 16), (4, 8, 8))
    second = frame_noise(7, range(12, 28), (4, 8, 8))
    assert first.shape == (16, 4, 8, 8)
    assert (first[12:] == second[:4]).all() and not (first[0] == first[1]).all()
    assert not (frame_noise(8, [0], (4, 8, 8))[0] == first[0]).all()


def test_windows_out_of_order_are_refused() -> None:
    windows = plan_windows(40, 16, 4)
    stitcher = Stitcher()
    frames = [np.zeros((1, 1, 3), np.uint8)] * 16
    list(stitcher.add(windows[0], frames, windows[1]))
    with pytest.raises(ValueError, match="does not follow"):
        list(stitcher.add(windows[2], frames, None))
