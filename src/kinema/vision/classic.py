"""The classical backend: no weights, real work. The embedded default and the fast preview.

Start: a mask as given; a box or clicks through GrabCut (clicks grow a box around themselves
until the object no longer touches its edge). Propagate, frame to frame:

1. Dense optical flow (OpenCV DIS) from the new frame back to the previous one, on a working
   copy at most ``work_width`` wide; the previous mask is pulled along it (inverse warping, so
   no holes) into a soft prior.
2. In a band around the warped boundary only, the prior is weighed against colour: a
   histogram of the object's colours and one of the background *near* the object, taken from
   the previous frame and mixed with the ones from the last keyframe (re-anchoring, so the
   models do not drift). Pixels whose flow fails the forward-backward check (occluded or
   disoccluded) trust colour more than motion.
3. Clean-up: small islands dropped, small holes filled; a result whose area jumps implausibly
   falls back to the warped mask.

Keyframes (prompts) reset the object on their frame; a prompt on a tracked frame is a
correction and the next propagation from there uses it.

The tracker holds, per object, its keyframes and the mask of the last frame it tracked, not
every mask it has produced: memory does not grow with the length of the shot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Frame, FrameSource, Mask
from kinema.vision.base import Candidate, ImageSegmenter, Prompt, VideoTracker
from kinema.vision.maskops import drop_islands, fill_holes

BINS = 16  # colour histogram bins per channel (16^3 cells)
MIN_FLOW_SIDE = 16  # DIS flow needs frames at least 12 px a side: smaller ones are enlarged


def _cv2():
    import cv2

    return cv2


# --- a first mask from a prompt ----------------------------------------------------------


def grabcut_mask(frame: Frame, prompt: Prompt, previous: Mask | None = None,
                 iterations: int = 5) -> Mask:
    """A mask for ``prompt`` on ``frame`` by GrabCut: inside the box (or around the clicks),
    positive clicks certain foreground, negative clicks certain background; ``previous`` (a
    mask being corrected) seeds the probable regions."""
    h, w = frame.shape[:2]
    if prompt.mask is not None:
        if prompt.mask.shape != (h, w):
            raise InvalidArgumentError(f"the prompt mask is {prompt.mask.shape[::-1]}, "
                                       f"the frame is {w}x{h}")
        return prompt.mask.astype(bool)
    if prompt.text:
        raise InvalidArgumentError("the classic backend cannot read text prompts",
                                   hint="turn the words into boxes with a detector first (--text does)")
    for x, y in prompt.points:
        if not (0 <= x < w and 0 <= y < h):
            raise InvalidArgumentError(f"point ({x:g}, {y:g}) is outside the {w}x{h} frame")
    positives = [p for p, label in zip(prompt.points, prompt.labels, strict=True) if label == 1]
    if prompt.box is not None:
        return _grabcut(frame, prompt, _clip_box(prompt.box, w, h), previous, iterations)
    if previous is not None and previous.any():
        return _grabcut(frame, prompt, _around(previous, positives, w, h), previous, iterations)
    if not positives:
        raise InvalidArgumentError("only background clicks: click on the object too")
    # Grow a box around the clicks until the object stops touching its edges.
    xs, ys = [p[0] for p in positives], [p[1] for p in positives]
    half_w, half_h = max(w // 8, 16), max(h // 6, 16)
    box = _clip_box((min(xs) - half_w, min(ys) - half_h, max(xs) + half_w, max(ys) + half_h), w, h)
    mask = np.zeros((h, w), bool)
    for _ in range(5):
        mask = _grabcut(frame, prompt, box, None, iterations)
        grown = _grow_box(box, mask, w, h)
        if grown == box:
            break
        box = grown
    return mask


def _grabcut(frame: Frame, prompt: Prompt, box: tuple[int, int, int, int],
             previous: Mask | None, iterations: int) -> Mask:
    cv2 = _cv2()
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    # A margin of background around the box gives GrabCut its background model.
    mx, my = max(8, (x1 - x0) // 4), max(8, (y1 - y0) // 4)
    rx0, ry0, rx1, ry1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    roi = np.ascontiguousarray(frame[ry0:ry1, rx0:rx1, :3])
    scale = min(1.0, 400 / max(roi.shape[:2]))  # GrabCut is slow; its answer is refined below
    small = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else roi
    sh, sw = small.shape[:2]
    init = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    bx0, by0 = int((x0 - rx0) * scale), int((y0 - ry0) * scale)
    bx1, by1 = max(bx0 + 1, int((x1 - rx0) * scale)), max(by0 + 1, int((y1 - ry0) * scale))
    init[by0:by1, bx0:bx1] = cv2.GC_PR_FGD if previous is None else cv2.GC_PR_BGD
    if previous is not None:
        prev = cv2.resize(previous[ry0:ry1, rx0:rx1].astype(np.uint8), (sw, sh),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
        init[prev] = cv2.GC_PR_FGD
    radius = max(2, int(round(min(sw, sh) * 0.02)))
    for (px, py), label in zip(prompt.points, prompt.labels, strict=True):
        cx, cy = int((px - rx0) * scale), int((py - ry0) * scale)
        if 0 <= cx < sw and 0 <= cy < sh:
            cv2.circle(init, (cx, cy), radius, cv2.GC_FGD if label else cv2.GC_BGD, -1)
    if not ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).any():
        return np.zeros((h, w), bool)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut starts its colour models with k-means: same input, same mask
    with contextlib.suppress(cv2.error):  # one colour only in the box: keep the seeds as they are
        cv2.grabCut(small, init, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.resize(fg, (rx1 - rx0, ry1 - ry0), interpolation=cv2.INTER_LINEAR) > 0
    mask = np.zeros((h, w), bool)
    mask[ry0:ry1, rx0:rx1] = fg
    keep = np.zeros((h, w), bool)
    for (px, py), label in zip(prompt.points, prompt.labels, strict=True):
        if label:
            keep[int(py), int(px)] = True
    mask = drop_islands(mask, max(64, mask.sum() // 20), keep=keep if keep.any() else None)
    return fill_holes(mask, max_area=max(64, mask.sum() // 50))


def _clip_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))


def _around(mask: Mask, points: list[tuple[float, float]], w: int, h: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    for px, py in points:
        x0, x1, y0, y1 = min(x0, px), max(x1, px + 1), min(y0, py), max(y1, py + 1)
    pad_x, pad_y = (x1 - x0) // 8 + 4, (y1 - y0) // 8 + 4
    return _clip_box((x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y), w, h)


def _grow_box(box: tuple[int, int, int, int], mask: Mask, w: int, h: int) -> tuple[int, int, int, int]:
    """``box`` widened on each side the mask touches (by half the box's size that way)."""
    x0, y0, x1, y1 = box
    if not mask.any():
        return box
    inner = mask[y0:y1, x0:x1]
    bw, bh = x1 - x0, y1 - y0
    if inner[:, 0].any():
        x0 -= bw // 2
    if inner[:, -1].any():
        x1 += bw // 2
    if inner[0, :].any():
        y0 -= bh // 2
    if inner[-1, :].any():
        y1 += bh // 2
    return _clip_box((x0, y0, x1, y1), w, h)


class GrabCutSegmenter(ImageSegmenter):
    """Single-frame masks from clicks, boxes or masks by GrabCut (one candidate)."""

    def segment(self, frame: Frame, prompt: Prompt) -> list[Candidate]:
        return [Candidate(grabcut_mask(frame, prompt), 1.0)]


# --- propagation ----------------------------------------------------------------------------


@dataclass
class _ColourModel:
    """Object and nearby-background colour histograms (``BINS``^3, normalised)."""

    fg: np.ndarray
    bg: np.ndarray

    @classmethod
    def learn(cls, frame: Frame, mask: Mask, ring: int) -> _ColourModel:
        cv2 = _cv2()
        y0, y1, x0, x1 = _bounds(mask, ring)
        frame, mask = frame[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8),
                          iterations=max(1, ring)).astype(bool) & ~mask
        idx = _colour_index(frame)
        fg = np.bincount(idx[mask], minlength=BINS**3).astype(np.float32)
        bg = np.bincount(idx[near], minlength=BINS**3).astype(np.float32)
        return cls(fg / max(fg.sum(), 1.0), bg / max(bg.sum(), 1.0))

    def mix(self, other: _ColourModel, weight: float) -> _ColourModel:
        return _ColourModel(self.fg * (1 - weight) + other.fg * weight,
                            self.bg * (1 - weight) + other.bg * weight)


def _bounds(mask: Mask, margin: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the mask's bounding box grown by ``margin``, inside the frame
    (the whole frame for an empty mask)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return 0, mask.shape[0], 0, mask.shape[1]
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    h, w = mask.shape
    return (max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin),
            max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin))


def _colour_index(frame: Frame) -> np.ndarray:
    q = (frame[..., :3] >> 4).astype(np.int32)  # 16 levels per channel
    return (q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]


class ClassicTracker(VideoTracker):
    """Masks that follow objects by optical flow and colour, with no model weights.

    ``work_width`` caps the width flow is computed at; ``band`` is how far (pixels) from the
    moved boundary colour may overrule motion; ``anchor_weight`` how much of the colour model
    comes from the last keyframe rather than the previous frame (higher: less drift, slower
    to follow lighting changes); ``motion_trust`` (0..1) how strongly the moved mask holds
    against colour inside the band (flow bleeds across boundaries, colour does not);
    ``prior_sigma`` how far (pixels) the moved mask is blurred into a prior (default
    ``band / 2``; smaller keeps thin parts motion carried).
    """

    def __init__(self, frames: FrameSource, *, work_width: int = 854, band: int = 14,
                 anchor_weight: float = 0.8, motion_trust: float = 1.0,
                 prior_sigma: float | None = None) -> None:
        super().__init__(frames)
        self.prior_sigma = prior_sigma
        self.motion_trust = motion_trust
        self.work_width = work_width
        self.band = band
        self.anchor_weight = anchor_weight
        self._keyframes: dict[int, dict[int, Mask]] = {}
        self._last: dict[int, tuple[int, Mask]] = {}  # each object's last tracked frame and mask
        self._anchors: dict[int, _ColourModel] = {}
        self._shapes: dict[int, Mask] = {}  # each object's whole shape, occluded parts included
        self._flow = None

    def add_prompt(self, prompt: Prompt) -> dict[int, Mask]:
        n = len(self.frames)
        if not 0 <= prompt.frame < n:
            raise InvalidArgumentError(f"frame {prompt.frame} is outside the video (0..{n - 1})")
        frame = self.frames[prompt.frame]
        previous = self.mask_on(prompt.object_id, prompt.frame)
        mask = grabcut_mask(frame, prompt, previous)
        self._keyframes.setdefault(prompt.object_id, {})[prompt.frame] = mask
        self._anchors[prompt.object_id] = _ColourModel.learn(frame, mask, self._ring(mask))
        self._shapes[prompt.object_id] = mask
        return self._masks_on(prompt.frame)

    def mask_on(self, obj: int, index: int) -> Mask | None:
        """``obj``'s mask on frame ``index`` if the tracker holds one: a keyframe's, or the
        last frame it was tracked to."""
        keyed = self._keyframes.get(obj, {}).get(index)
        if keyed is not None:
            return keyed
        last = self._last.get(obj)
        return last[1] if last is not None and last[0] == index else None

    def _masks_on(self, index: int) -> dict[int, Mask]:
        """Every object's mask on frame ``index`` that the tracker holds, by object id."""
        objects = sorted(self._keyframes.keys() | self._last.keys())
        found = {obj: self.mask_on(obj, index) for obj in objects}
        return {obj: mask for obj, mask in found.items() if mask is not None}

    def propagate(self, start: int, stop: int | None = None, *,
                  reverse: bool = False) -> Iterator[tuple[int, dict[int, Mask]]]:
        n = len(self.frames)
        step = -1 if reverse else 1
        end = (-1 if reverse else n) if stop is None else stop
        held = self._masks_on(start)
        if not held:
            raise InvalidArgumentError(f"no object has a mask on frame {start}",
                                       hint="add a prompt on that frame first")
        previous = self.frames[start]
        yield start, dict(held)
        for t in range(start + step, end, step):
            current = self.frames[t]
            flows = self._flows(previous, current)
            for obj, mask in held.items():
                keyed = self._keyframes.get(obj, {}).get(t)
                if keyed is not None:
                    held[obj] = keyed  # a keyframe re-anchors the object
                    self._shapes[obj] = keyed
                else:
                    held[obj] = self._step(obj, previous, current, mask, flows)
                self._last[obj] = (t, held[obj])
            yield t, dict(held)
            previous = current

    # -- one frame ------------------------------------------------------------------------

    def _ring(self, mask: Mask) -> int:
        return 3 * self.band

    def _work_scale(self, w: int, h: int) -> float:
        """How much frames are scaled for flow: down to ``work_width``, up to ``MIN_FLOW_SIDE``."""
        if min(w, h) < MIN_FLOW_SIDE:
            return MIN_FLOW_SIDE / min(w, h)
        return min(1.0, self.work_width / w)

    def _flows(self, previous: Frame, current: Frame) -> tuple[np.ndarray, np.ndarray, float]:
        """Flow current->previous and previous->current (pixels, at full size) and the scale."""
        cv2 = _cv2()
        h, w = current.shape[:2]
        scale = self._work_scale(w, h)
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))

        def gray(frame: Frame) -> np.ndarray:
            g = cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY)
            return cv2.resize(g, size, interpolation=cv2.INTER_AREA) if scale != 1 else g

        if self._flow is None:
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        a, b = gray(previous), gray(current)
        back = self._flow.calc(b, a, None)
        fwd = self._flow.calc(a, b, None)
        return back, fwd, scale

    def _step(self, obj: int, previous: Frame, current: Frame, mask: Mask,
              flows: tuple[np.ndarray, np.ndarray, float]) -> Mask:
        cv2 = _cv2()
        back, fwd, scale = flows
        h, w = current.shape[:2]
        shape = self._shapes.get(obj, mask)
        if not mask.any() and not shape.any():
            return mask
        sh, sw = back.shape[:2]

        def small(m: Mask) -> np.ndarray:
            f = m.astype(np.float32)
            return cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) if scale != 1 else f

        grid_x, grid_y = np.meshgrid(np.arange(sw, dtype=np.float32), np.arange(sh, dtype=np.float32))
        map_x, map_y = grid_x + back[..., 0], grid_y + back[..., 1]
        warped = cv2.remap(small(mask), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # Forward-backward check: where the round trip does not come back, motion is unreliable
        # (occlusion, disocclusion, motion boundaries).
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        unreliable = np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1]) > 1.5
        # The object's whole shape, moved rigidly by its dominant motion: where an occluder
        # hid part of it, that part is expected back when the occluder leaves.
        motion = _dominant_motion(small(mask) > 0.5, fwd, unreliable)
        moved = cv2.warpAffine(small(shape), motion, (sw, sh), flags=cv2.INTER_LINEAR) \
            if motion is not None else warped
        # Everything after this happens in the rectangle the object can reach.
        margin = int(np.ceil((3 * self.band + 4) * scale))
        sy0, sy1, sx0, sx1 = _bounds((warped > 0.5) | (moved > 0.5), margin)
        y0, y1 = int(sy0 / scale), h if sy1 == sh else min(h, int(round(sy1 / scale)))
        x0, x1 = int(sx0 / scale), w if sx1 == sw else min(w, int(round(sx1 / scale)))

        def crop(x: np.ndarray, interpolation: int) -> np.ndarray:
            part = x[sy0:sy1, sx0:sx1]
            if scale != 1:
                part = cv2.resize(part, (x1 - x0, y1 - y0), interpolation=interpolation)
            return part

        warped = crop(warped, cv2.INTER_LINEAR)
        moved = crop(moved, cv2.INTER_LINEAR)
        unreliable = crop(unreliable.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
        hard = warped > 0.5
        hidden = (moved > 0.5) & ~hard  # expected object the flow did not bring along
        if not hard.any() and not hidden.any():
            return np.zeros((h, w), bool)
        kernel = np.ones((3, 3), np.uint8)
        edge = cv2.morphologyEx(hard.astype(np.uint8), cv2.MORPH_GRADIENT, kernel)
        band = cv2.dilate(edge, kernel, iterations=self.band).astype(bool) | hidden
        near = cv2.dilate((hard | hidden).astype(np.uint8), kernel, iterations=2 * self.band).astype(bool)
        band |= unreliable & near
        prior = 0.5 + (cv2.GaussianBlur(warped, (0, 0), sigmaX=self.prior_sigma or self.band / 2)
                       - 0.5) * self.motion_trust
        prior = np.where(unreliable, 0.5 + (prior - 0.5) * 0.3, prior)  # lean on colour there
        prior = np.where(hidden, np.maximum(prior, 0.5), prior)  # colour decides hidden parts
        evidence = self._evidence(obj, current, (y0, y1, x0, x1), hard | hidden)
        if evidence is not None:  # a model's probability: it may also move the edge outside the band
            band |= near & ((evidence > 0.5) != hard)

        recent = _ColourModel.learn(previous, mask, self._ring(mask)) if mask.any() else None
        anchor = self._anchors.get(obj)
        model = (recent.mix(anchor, self.anchor_weight) if recent and anchor else recent or anchor)
        if model is None:
            return hard
        ys, xs = np.nonzero(band)
        idx = _colour_index(current[y0:y1, x0:x1][ys, xs])
        lf, lb = model.fg[idx] + 1e-4, model.bg[idx] + 1e-4
        p = prior[ys, xs]
        if evidence is not None:
            q, weight = evidence[ys, xs].clip(0.02, 0.98), self._evidence_weight(obj)
            lf, lb = lf * q**weight, lb * (1 - q)**weight
        posterior = p * lf / (p * lf + (1 - p) * lb)
        out = hard.copy()
        out[ys, xs] = posterior > 0.5
        out = cv2.morphologyEx(out.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
        area, expected = np.count_nonzero(out), np.count_nonzero(hard | hidden)
        if area > 1.6 * expected or area < 0.3 * np.count_nonzero(hard):
            out = hard  # colour disagreed wildly with motion: trust motion this frame
        core = cv2.erode(hard.astype(np.uint8), kernel, iterations=self.band).astype(bool)
        # Pieces motion does not vouch for must be a real part of the object to stay.
        out = drop_islands(out, max(16, int(0.1 * _largest_area(out))), keep=core)
        out = fill_holes(out, max_area=max(16, area // 100))
        shape = (moved > 0.5) | out
        if np.count_nonzero(shape) > 2.5 * max(np.count_nonzero(out), 1):
            shape = out  # more hidden than seen: the rigid fit has drifted, start again
        self._shapes[obj] = _placed(shape, (h, w), (y0, x0))
        return _placed(out, (h, w), (y0, x0))


    def _evidence(self, obj: int, current: Frame, box: tuple[int, int, int, int],
                  expected: Mask) -> np.ndarray | None:
        """A model's probability that each pixel of ``current[y0:y1, x0:x1]`` (``box``) is
        ``obj``, weighed with motion and colour (``expected``: where they put it); ``None``
        here: the classic tracker has no model (see :mod:`kinema.vision.guided`)."""
        return None

    def _evidence_weight(self, obj: int) -> float:
        return 1.0


def _placed(part: Mask, shape: tuple[int, int], at: tuple[int, int]) -> Mask:
    """``part`` put into an all-false mask of ``shape`` with its corner at ``at``."""
    out = np.zeros(shape, bool)
    out[at[0]:at[0] + part.shape[0], at[1]:at[1] + part.shape[1]] = part
    return out


def _largest_area(mask: Mask) -> int:
    cv2 = _cv2()
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int(stats[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0


def _dominant_motion(mask: Mask, fwd: np.ndarray, unreliable: np.ndarray) -> np.ndarray | None:
    """The similarity transform (2x3) that best explains how the masked pixels moved, from
    reliable flow vectors by RANSAC; ``None`` when too few are left to tell."""
    cv2 = _cv2()
    ys, xs = np.nonzero(mask & ~unreliable)
    if len(xs) < 12:
        return None
    step = max(1, len(xs) // 400)
    xs, ys = xs[::step], ys[::step]
    src = np.stack([xs, ys], axis=1).astype(np.float32)
    dst = src + fwd[ys, xs]
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                  ransacReprojThreshold=1.5)
    if matrix is None or inliers is None or inliers.sum() < 8:
        return None
    return matrix
