"""Mask clean-ups and soft mattes on masks with known answers."""

from __future__ import annotations

import numpy as np

from kinema.vision.maskops import (
    drop_islands,
    fill_holes,
    iou,
    largest_component,
    soft_matte,
    temporal_smooth,
)


def ring() -> np.ndarray:
    m = np.zeros((40, 40), bool)
    m[5:35, 5:35] = True
    m[15:20, 15:20] = False  # a small hole
    m[22:32, 22:32] = False  # a big hole
    return m


def test_fill_holes_up_to_a_size():
    m = ring()
    assert fill_holes(m).sum() == 30 * 30
    partly = fill_holes(m, max_area=30)
    assert partly[17, 17] and not partly[25, 25]
    edge = np.zeros((10, 10), bool)
    edge[:, 3] = True  # the background on both sides touches the border: nothing to fill
    assert np.array_equal(fill_holes(edge), edge)


def test_islands_and_components():
    m = np.zeros((30, 30), bool)
    m[2:20, 2:20] = True
    m[25:27, 25:27] = True  # 4 px island
    assert drop_islands(m, 10).sum() == 18 * 18
    keep = np.zeros_like(m)
    keep[26, 26] = True
    assert drop_islands(m, 10, keep=keep)[26, 26]
    assert largest_component(m).sum() == 18 * 18


def test_temporal_smoothing_removes_one_frame_flicker_only():
    base = np.zeros((8, 8), bool)
    base[2:6, 2:6] = True
    flicker = base.copy()
    flicker[0, 0] = True  # appears on one frame
    moved = np.roll(base, 2, axis=1)  # a real move, kept from frame 3 on
    masks = [base, base, flicker, moved, moved, moved]
    out = temporal_smooth(masks, radius=1)
    assert not out[2][0, 0]
    assert np.array_equal(out[5], moved) and np.array_equal(out[0], base)


def test_soft_matte_follows_a_soft_edge_in_the_picture():
    x = np.linspace(0, 1, 64, dtype=np.float32)
    ramp = np.clip((x - 0.4) / 0.2, 0, 1)  # a blurred edge between 0.4 and 0.6 of the width
    frame = np.repeat((ramp * 255).astype(np.uint8)[None, :, None], 32, axis=0).repeat(3, axis=2)
    mask = np.zeros((32, 64), bool)
    mask[:, 32:] = True
    matte = soft_matte(frame, mask, radius=6)
    row = matte[16]
    assert row[5] < 0.05 and row[60] > 0.95
    assert 0.2 < row[32] < 0.8  # soft across the picture's soft edge
    assert np.all(np.diff(row[20:45]) >= -1e-3)  # and monotonic, like the edge


def test_iou():
    a = np.zeros((4, 4), bool)
    assert iou(a, a) == 1.0
    b = a.copy()
    b[0, :2] = True
    a[0, 1:3] = True
    assert iou(a, b) == 1 / 3
