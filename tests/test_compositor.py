"""The compositor against a plain float64 reference written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.render.compositor import Layer, Placement, composite

W, H = 64, 48


def reference(canvas, layers, background=(0, 0, 0, 255)):
    """Inverse-mapped bilinear sampling of premultiplied layers, then W3C blending, in float64."""
    cw, ch = canvas
    bg = np.array(background, float) / 255
    acc = np.zeros((ch, cw, 4))
    acc[..., :3] = bg[:3] * bg[3]
    acc[..., 3] = bg[3]
    ys, xs = np.mgrid[0:ch, 0:cw].astype(float)
    for layer in layers:
        px = layer.pixels.astype(float) / 255
        if px.shape[2] == 3:
            px = np.concatenate([px, np.ones(px.shape[:2] + (1,))], axis=-1)
        pre = np.concatenate([px[..., :3] * px[..., 3:], px[..., 3:]], axis=-1)
        h, w = pre.shape[:2]
        p = layer.placement or Placement.centered(canvas)
        m = np.vstack([p.matrix((w, h)), [0, 0, 1]])
        inv = np.linalg.inv(m)
        lx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
        ly = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
        x0, y0 = np.floor(lx).astype(int), np.floor(ly).astype(int)
        fx, fy = (lx - x0)[..., None], (ly - y0)[..., None]

        src = ((1 - fx) * (1 - fy) * _tap(pre, y0, x0) + fx * (1 - fy) * _tap(pre, y0, x0 + 1)
               + (1 - fx) * fy * _tap(pre, y0 + 1, x0) + fx * fy * _tap(pre, y0 + 1, x0 + 1))
        k = layer.opacity * (layer.matte[..., None] if layer.matte is not None else 1)
        src = src * k
        sa, da = src[..., 3:], acc[..., 3:]
        if layer.blend_mode == "normal":
            acc = src + acc * (1 - sa)
            continue
        cs = np.where(sa > 0, src[..., :3] / np.maximum(sa, 1e-12), 0)
        cb = np.where(da > 0, acc[..., :3] / np.maximum(da, 1e-12), 0)
        mixed = {"multiply": cb * cs, "screen": cb + cs - cb * cs}[layer.blend_mode]
        rgb = src[..., :3] * (1 - da) + acc[..., :3] * (1 - sa) + sa * da * mixed
        acc = np.concatenate([rgb, sa + da * (1 - sa)], axis=-1)
    return np.clip(acc[..., :3] * 255 + 0.5, 0, 255).astype(np.uint8)


def _tap(pre, yy, xx):
    """Pixels of ``pre`` at integer coordinates, transparent outside it."""
    h, w = pre.shape[:2]
    inside = ((xx >= 0) & (xx < w) & (yy >= 0) & (yy < h))[..., None]
    return np.where(inside, pre[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0)


def rgba_blob(w=24, h=16, color=(230, 40, 20), soft=True):
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((xx - (w - 1) / 2) / (w / 2), (yy - (h - 1) / 2) / (h / 2))
    alpha = np.clip((1 - d) * 3, 0, 1) if soft else (d < 0.8).astype(float)
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3] = color
    img[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return img


def gradient(w=W, h=H):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([xx * 255 // (w - 1), yy * 255 // (h - 1),
                      np.full((h, w), 90)]).astype(np.uint8)


def test_alpha_over_with_whole_pixel_moves_matches_to_rounding():
    layers = [Layer(gradient()),
              Layer(rgba_blob(), Placement(position=(20, 15))),
              Layer(rgba_blob(color=(20, 200, 240)), Placement(position=(30, 20)), opacity=0.5)]
    diff = np.abs(composite((W, H), layers).astype(int) - reference((W, H), layers))
    # float32 against float64: a value that lands on .5 may round the other way, nothing more.
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_masks_and_blend_modes_match_the_reference():
    xx = np.mgrid[0:H, 0:W][1]
    feathered = np.clip((xx - 20) / 16, 0, 1).astype(np.float32)
    layers = [Layer(gradient()),
              Layer(np.full((H, W, 3), (200, 120, 60), np.uint8), blend_mode="multiply",
                    matte=feathered),
              Layer(rgba_blob(), Placement(position=(40, 24)), blend_mode="screen")]
    got, want = composite((W, H), layers).astype(int), reference((W, H), layers).astype(int)
    assert np.abs(got - want).max() <= 1


def test_bilinear_transforms_match_the_reference():
    layers = [Layer(gradient()),
              Layer(rgba_blob(32, 20), Placement(position=(33.5, 22.25), scale=(1.5, 0.75),
                                                  rotation=30))]
    got, want = composite((W, H), layers).astype(int), reference((W, H), layers).astype(int)
    assert np.abs(got - want).max() <= 3  # OpenCV interpolates in 1/32-pixel steps
    assert np.abs(got - want).mean() < 0.3


def test_soft_edges_have_no_dark_fringe():
    # White with a soft alpha edge over white stays white however it is resampled: the test
    # that premultiplied compositing passes and straight-alpha resampling fails.
    white = rgba_blob(color=(255, 255, 255))
    for rotation in (0, 17, 45):
        frame = composite((W, H), [Layer(white, Placement(position=(31.3, 22.7), scale=(1.7, 1.7),
                                                         rotation=rotation))],
                          background=(255, 255, 255, 255))
        assert frame.min() >= 254


def test_cutout_over_transparency_keeps_straight_alpha():
    blob = rgba_blob(soft=False)
    frame = composite((24, 16), [Layer(blob)], background=(0, 0, 0, 0), alpha=True)
    assert np.array_equal(frame[..., 3], blob[..., 3])
    inside = blob[..., 3] == 255
    assert np.array_equal(frame[inside][:, :3], blob[inside][:, :3])


def test_unknown_blend_mode_is_refused():
    with pytest.raises(InvalidArgumentError, match="unknown blend mode"):
        composite((W, H), [Layer(gradient()), Layer(gradient(), blend_mode="glow")])


def test_placement_matrix_rotates_clockwise_about_the_centre():
    m = Placement(position=(50, 50), rotation=90).matrix((11, 11))
    # The layer's right-middle pixel (10, 5) ends up below the centre after a clockwise turn.
    x, y = m @ np.array([10, 5, 1.0])
    assert math.isclose(x, 49.5, abs_tol=1e-9) and math.isclose(y, 54.5, abs_tol=1e-9)


@pytest.mark.parametrize(("grow", "feather"), [(0, 0), (3, 0), (-2, 4), (5.5, 9.5)])
def test_matte_from_a_crop_equals_the_whole_frame(grow, feather):
    """Mattes are computed on the mask's neighbourhood only; the result must not change."""
    import cv2

    from kinema.render.mattes import matte_from_mask

    mask = np.zeros((120, 160), bool)
    mask[3:40, 100:158] = True  # near the top and right edges
    mask[80:90, 20:30] = True
    m = mask.astype(np.uint8)
    if grow:
        r = int(round(abs(grow)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m = cv2.dilate(m, kernel) if grow > 0 else cv2.erode(m, kernel)
    want = m.astype(np.float32)
    if feather:
        want = cv2.GaussianBlur(want, (0, 0), sigmaX=feather / 2, borderType=cv2.BORDER_REPLICATE)
    got = matte_from_mask(mask, grow=grow, feather=feather)
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(matte_from_mask(mask, grow=grow, feather=feather, invert=True) - (1 - want)).max() < 1e-6
    assert not matte_from_mask(np.zeros((8, 8), bool), feather=3).any()
