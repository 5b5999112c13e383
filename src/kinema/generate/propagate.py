"""Carry styled key frames through footage: example-based synthesis guided by the footage.

In the spirit of Jamriška et al. 2019, "Stylizing Video by Example": each frame's pixels take
the style of the key pixels whose surroundings match theirs, judged on guides: the source
frame's colour and edges against the key's source frame, a positional guide (where the flow
back to the key says the pixel came from) and a temporal guide (the previous styled frame
carried forward by the flow, against flicker). In mask mode the matte is a guide too.

The correspondence search is not PatchMatch (its randomised search is covered by Adobe's
US 8,861,869): every pixel starts from one of two flow hypotheses, the DIS optical flow chain
back to the key or the DIS flow straight from the frame to the key, whichever's patch matches
the key better (the chain drifts over many frames, the direct flow fails on large motion).
That position is refined by a small local search, coarse to fine: at each pyramid level the
whole field is displaced by each offset of a (2r+1)^2 window, patch distances come from a box
filter over the squared guide differences of the displaced key, and each pixel keeps its best
offset (a penalty on the offset keeps it near the start: the positional guide). The key's
style is then read at the found positions (averaged over the overlapping patches with
``vote``). The guide distance left is the patch synthesis's error.

Each key also gives a colour transfer (:class:`Transfer`): a table from source colour to the
mean style the key gives that colour, with the spread of those styles. A pass blends its patch
synthesis and the transfer per pixel, each over its error (the transfer's is its spread, so it
counts where the key styles a colour consistently and fades where the style depends on more
than colour): where the search finds no match (what the key does not show) the transfer fills
in, and where both agree their average is steadier than either.

Between two keys the frames are synthesised from each (forward from the earlier, backward from
the later) and blended per pixel by nearness to each key over error: where one key cannot see
what a frame shows (occluded there), the other's pixels win, without a seam or a ghost. The
nearness weight moves steadily through the gap, so the blend is temporally coherent. A gap
depends on its two keys only.

Arrays in, arrays out: :func:`propagate` takes frames and keys through small stores, so the
caller decides what stays in memory (the app spills to disk, so memory is flat with length).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

import numpy as np

from kinema.core.errors import InvalidArgumentError

_SQUARES = np.arange(256, dtype=np.float32) ** 2
MASK_WEIGHT = 10.0
"""How strongly the matte guide keeps a pixel of the object on the key's object (and off it
outside): far above any colour difference, so the style never crosses the matte's edge."""
EPS = 1e-4
"""Added to errors before they are inverted into weights."""
ANCHOR = 7
"""Side of the patches that choose between the flow chain and the direct flow to the key."""


@dataclass(frozen=True)
class Quality:
    """How hard the synthesis works: pyramid ``levels`` (searched from the coarsest down to
    level ``finest``, 0 the full size), search ``radius`` per level, ``patch``
    side of the patch distances, ``vote`` radius of the patch averaging, the DIS ``flow``
    preset, the guides' weights, and ``transfer``, the weight of the colour transfer against
    the patch synthesis."""

    levels: int
    finest: int
    radius: int
    patch: int
    vote: int
    flow: str
    colour: float = 1.0
    edges: float = 0.5
    position: float = 0.002
    temporal: float = 0.2
    transfer: float = 0.1

    def guides(self) -> dict[str, float]:
        """The guides' weights, as a recipe records them."""
        return {"colour": self.colour, "edges": self.edges, "position": self.position,
                "temporal": self.temporal, "transfer": self.transfer}


QUALITIES = {
    "fast": Quality(levels=3, finest=0, radius=1, patch=3, vote=1, flow="fast"),
    "best": Quality(levels=3, finest=0, radius=2, patch=3, vote=2, flow="medium"),
}


@dataclass(frozen=True)
class Key:
    """A styled key: its ``style`` (``uint8`` RGB), the ``source`` frame it styles, and in mask
    mode the object's ``matte`` there (``float32`` 0-1)."""

    style: np.ndarray
    source: np.ndarray
    matte: np.ndarray | None = None


@dataclass(frozen=True)
class Synth:
    """One pass's frame: the styled ``image`` (``float32`` RGB, 0-255) and its per-pixel
    ``error`` (positive, the inverse of the confidence of the synthesis and the colour transfer
    together), the lower the better."""

    image: np.ndarray
    error: np.ndarray


SHIFT = 3
"""Low bits dropped from each channel for the colour transfer's table (source colour to style
colour): 32 bins a channel."""
BINS = 256 >> SHIFT
PRIOR = 4
"""Pixels' worth of the key's overall spread that each bin's own spread starts from."""


@dataclass(frozen=True)
class Transfer:
    """A key's colour transfer: for each bin of source colours, the ``mean`` style colour the
    key gives its pixels there and the ``spread`` of those styles (squared, on the guides'
    scale; huge for a colour the key never shows)."""

    mean: np.ndarray
    spread: np.ndarray

    @classmethod
    def learn(cls, key: Key) -> Transfer:
        """The transfer ``key`` shows: its source colours against its style (in mask mode only
        on the object)."""
        index = _bins(key.source).ravel()
        style = key.style[..., :3].reshape(-1, 3).astype(np.float64)
        if key.matte is not None:
            inside = key.matte.ravel() > 0.5
            index, style = index[inside], style[inside]
        seen = np.bincount(index, minlength=BINS**3)
        sums = [np.bincount(index, style[:, c], minlength=BINS**3) for c in range(3)]
        squares = np.bincount(index, (style**2).sum(1), minlength=BINS**3)
        mean = np.stack(sums, 1) / np.maximum(seen, 1)[:, None]
        deviation = np.maximum(squares - seen * (mean**2).sum(1), 0)
        # a colour seen in a few pixels has an unreliable spread: draw it towards the key's
        overall = deviation.sum() / max(seen.sum(), 1)
        spread = (deviation + PRIOR * overall) / (seen + PRIOR) / (3 * 255**2)
        return cls(mean.astype(np.float32), np.where(seen > 0, spread, 1e3).astype(np.float32))

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``frame`` styled by colour alone, and the spread there."""
        index = _bins(frame)
        return self.mean[index], self.spread[index]


def _bins(image: np.ndarray) -> np.ndarray:
    """Each pixel's colour bin in :class:`Transfer`'s table."""
    r, g, b = (image[..., c].astype(np.int32) >> SHIFT for c in range(3))
    return (r * BINS + g) * BINS + b


class Frames(Protocol):
    """Source frames by index; ``release(i)`` says frame ``i`` is needed no more."""

    def __getitem__(self, i: int) -> np.ndarray: ...

    def release(self, i: int) -> None: ...


class ArrayFrames:
    """Frames held in a list (tests, benchmarks), frame ``i`` at ``frames[i - offset]``."""

    def __init__(self, frames: list[np.ndarray], offset: int = 0) -> None:
        self.frames = frames
        self.offset = offset

    def __getitem__(self, i: int) -> np.ndarray:
        return self.frames[i - self.offset]

    def release(self, i: int) -> None:
        """Nothing to do: the list is the caller's."""


def flow(a: np.ndarray, b: np.ndarray, preset: str = "fast") -> np.ndarray:
    """DIS optical flow from RGB frame ``a`` to ``b``: for each pixel of ``a``, its offset in
    ``b`` (``float32`` (H, W, 2))."""
    import cv2

    presets = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(presets[preset])
    return dis.calc(_gray(a), _gray(b), None)


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> np.ndarray:
    """Every pixel's own position, ``float32`` (H, W, 2) as x, y (read-only: it is shared)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def _remap(image: np.ndarray, positions: np.ndarray, fraction: np.ndarray | None = None) -> np.ndarray:
    """``image`` read at ``positions`` (bilinear, edges repeated): a float field, or the fixed
    point pair ``cv2.convertMaps`` makes of one."""
    import cv2

    out = cv2.remap(image, positions, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out if out.ndim == image.ndim else out[..., None]


def warp(image: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``image`` pulled along ``offsets`` (a flow from the output's frame into ``image``'s)."""
    height, width = offsets.shape[:2]
    return _remap(image, _grid(height, width) + offsets)


def _rgba(image: np.ndarray, fourth: np.ndarray | None = None) -> np.ndarray:
    """``uint8`` RGB with a fourth channel (zero by default): four channels remap fastest."""
    height, width = image.shape[:2]
    extra = np.zeros((height, width), np.uint8) if fourth is None else fourth
    return np.ascontiguousarray(np.dstack([image[..., :3], extra]))


def _guides(frame: np.ndarray, matte: np.ndarray | None, carried: np.ndarray) -> list[np.ndarray]:
    """A frame's guides as two ``uint8`` four-channel images: colour with edges (the gradient
    magnitude of a softened grey), and the temporal guide (``carried``) with the matte."""
    import cv2

    grey = cv2.GaussianBlur(_gray(frame).astype(np.float32), (0, 0), 1.0)
    edges = np.hypot(cv2.Sobel(grey, -1, 1, 0), cv2.Sobel(grey, -1, 0, 1))
    edges = np.clip(edges, 0, 255).astype(np.uint8)
    alpha = None if matte is None else np.rint(matte * 255).astype(np.uint8)
    return [_rgba(frame, edges), _rgba(carried, alpha)]


def _weights(quality: Quality, masked: bool, temporal: bool = True) -> list[np.ndarray]:
    """The channel weights of :func:`_guides` (per squared 0-255 step); the matte's only in
    mask mode, the temporal guide's unless ``temporal`` is off."""
    c, e, t = quality.colour, quality.edges, quality.temporal if temporal else 0.0
    m = MASK_WEIGHT if masked else 0.0
    return [np.float32([c, c, c, e]) / 255**2, np.float32([t, t, t, m]) / 255**2]


def _distance(a: list[np.ndarray], b: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """The weighted squared distance of two guide stacks, per pixel."""
    import cv2

    total = None
    for x, y, w in zip(a, b, weights, strict=True):
        part = cv2.transform(cv2.LUT(cv2.absdiff(x, y), _SQUARES), w[None])
        total = part if total is None else total + part
    return total


def _pyramid(images: list[np.ndarray], levels: int) -> list[list[np.ndarray]]:
    """Each of ``images`` and ``levels - 1`` halvings of them, finest first."""
    import cv2

    out = [images]
    for _ in range(levels - 1):
        h, w = out[-1][0].shape[:2]
        out.append([cv2.resize(i, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
                    for i in out[-1]])
    return out


def _resize_field(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """A position or offset field resized to ``width`` x ``height`` and scaled with it."""
    import cv2

    h, w = field.shape[:2]
    out = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    return out * np.array([width / w, height / h], np.float32)


def _search(current: list[np.ndarray], key: list[np.ndarray], weights: list[np.ndarray],
            positions: np.ndarray, radius: int, patch: int, penalty: float) -> np.ndarray:
    """Each pixel's best position in ``key`` within ``radius`` of ``positions``, by the box
    filtered distance of ``current``'s guides to the displaced key's, plus ``penalty`` per
    squared pixel of offset."""
    import cv2

    fixed = cv2.convertMaps(positions, None, cv2.CV_16SC2)
    height, width = key[0].shape[:2]
    padded = [cv2.copyMakeBorder(k, radius, radius, radius, radius, cv2.BORDER_REPLICATE)
              for k in key]
    offsets = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    costs = np.empty((len(offsets), *positions.shape[:2]), np.float32)
    for n, (dx, dy) in enumerate(offsets):
        # the key read at positions + (dx, dy) is the key shifted by (dx, dy) read at positions
        shifted = [_remap(np.ascontiguousarray(p[radius + dy:radius + dy + height,
                                                 radius + dx:radius + dx + width]), *fixed)
                   for p in padded]
        cost = cv2.boxFilter(_distance(shifted, current, weights), -1, (patch, patch))
        costs[n] = cost + penalty * (dx * dx + dy * dy)
    moves = np.array(offsets, np.float32)[np.argmin(costs, axis=0)]
    return positions + moves


def _vote(style: np.ndarray, positions: np.ndarray, radius: int) -> np.ndarray:
    """The style at ``positions``, averaged over the patches of side ``2 radius + 1`` that
    cover each pixel (each neighbour's position moved back by its offset); ``float32`` RGB."""
    import cv2

    height, width = positions.shape[:2]
    total = np.zeros((height, width, 4), np.float32)
    padded = cv2.copyMakeBorder(positions, radius, radius, radius, radius, cv2.BORDER_REPLICATE)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            neighbour = padded[radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            cv2.accumulate(_remap(style, cv2.subtract(neighbour, (dx, dy, 0, 0))), total)
    return total[..., :3] / (2 * radius + 1) ** 2


class Pass:
    """Synthesis from one key in one direction: feed it the following (or preceding) frames
    in order with :meth:`step`."""

    def __init__(self, key: Key, quality: Quality) -> None:
        height, width = key.source.shape[:2]
        self.quality = quality
        self.masked = key.matte is not None
        self.style = _rgba(key.style)
        self.guide = _guides(key.source, key.matte, key.style)
        self.key = _pyramid(self.guide, quality.levels)
        self.weights = _weights(quality, self.masked)
        self.positions = _grid(height, width)
        self.source = key.source
        self.transfer = Transfer.learn(key)
        self.previous = key.source
        self.output = self.style

    def step(self, frame: np.ndarray, matte: np.ndarray | None = None) -> Synth:
        """The next frame styled from the key, with its guide error."""
        import cv2

        q = self.quality
        back = flow(frame, self.previous, q.flow)  # each pixel of frame: where it was before
        positions = warp(self.positions, back)
        guide = _guides(frame, matte, warp(self.output, back))
        current = _pyramid(guide, q.levels)
        positions = self._anchor(frame, guide, positions)
        for level in reversed(range(q.finest, q.levels)):
            h, w = current[level][0].shape[:2]
            start = _resize_field(positions, h, w)
            found = _search(current[level], self.key[level], self.weights, start, q.radius,
                            q.patch, q.position * 4**level)
            positions = positions + _resize_field(found - start, *positions.shape[:2])
        self.positions = positions
        self.previous = frame
        image = _vote(self.style, positions, q.vote)
        self.output = _rgba(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        seen = [_remap(g, positions) for g in self.guide]
        error = _distance(seen, guide, _weights(q, self.masked, temporal=False))
        # the patch synthesis and the colour transfer, each weighed over its error: the
        # transfer fills in where the key's patches do not match, and smooths where both agree
        found = 1 / (cv2.GaussianBlur(error, (0, 0), 2.0) + EPS)
        coloured, spread = self.transfer(frame)
        trusted = q.transfer / (spread + EPS)
        total = found + trusted
        image = (image * found[..., None] + coloured * trusted[..., None]) / total[..., None]
        return Synth(image, 1 / total)

    def _anchor(self, frame: np.ndarray, guide: list[np.ndarray],
                positions: np.ndarray) -> np.ndarray:
        """``positions`` (the flow chain's) or, where its patch matches better, where the
        flow straight from ``frame`` to the key puts each pixel: the chain drifts."""
        import cv2

        direct = _grid(*frame.shape[:2]) + flow(frame, self.source, self.quality.flow)
        costs = [cv2.boxFilter(_distance([_remap(g, p) for g in self.guide], guide, self.weights),
                               -1, (ANCHOR, ANCHOR)) for p in (positions, direct)]
        return np.where((costs[1] < costs[0])[..., None], direct, positions)


def merge(a: Synth, b: Synth, t: float) -> np.ndarray:
    """Two passes' frames blended: ``t`` (0-1) is how far the frame lies from ``a``'s key
    towards ``b``'s; each pixel weighs each pass by nearness over its error."""
    wa = (1 - t) / a.error
    wb = t / b.error
    return (a.image * wa[..., None] + b.image * wb[..., None]) / (wa + wb)[..., None]


def compose(styled: np.ndarray, source: np.ndarray, matte: np.ndarray | None) -> np.ndarray:
    """The ``uint8`` output: ``styled`` rounded, or in mask mode ``styled`` over ``source``
    through ``matte``, every pixel where the matte is 0 the source's, bit for bit."""
    out = np.clip(np.rint(styled), 0, 255).astype(np.uint8)
    if matte is None:
        return out
    alpha = matte[..., None].astype(np.float32)
    mixed = np.clip(np.rint(source[..., :3] * (1 - alpha) + styled * alpha), 0, 255).astype(np.uint8)
    return np.where(alpha > 0, mixed, source[..., :3])


Mattes = Callable[[int], "np.ndarray | None"]


def propagate(frames: Frames, keys: Mapping[int, np.ndarray], start: int, end: int,
              quality: Quality, *, mattes: Mattes | None = None,
              spill: MutableMapping[int, Synth] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)`` styled from ``keys`` (styled ``uint8`` RGB by frame, all inside
    the range), in order,
    as ``(frame, image)``; key frames come out as given. Before the first key and after the
    last one frames come from that key alone; between two keys from both (:func:`merge`).
    ``mattes(i)`` (mask mode) is frame ``i``'s object matte: only there is the frame styled.
    ``spill`` holds a gap's backward pass until the forward pass meets it (default: memory)."""
    order = sorted(keys)
    if not order:
        raise InvalidArgumentError("no key frames given", hint="give --key FRAME=IMAGE or --keys DIR")
    store: MutableMapping[int, Synth] = {} if spill is None else spill
    matte_of = mattes or (lambda _i: None)

    def key(i: int) -> Key:
        return Key(keys[i], frames[i], matte_of(i))

    def out(i: int, styled: np.ndarray) -> tuple[int, np.ndarray]:
        image = compose(styled, frames[i], matte_of(i))
        frames.release(i)
        return i, image

    bounds = [start - 1, *order, end]
    for left, right in pairwise(bounds):
        inside = range(left + 1, right)
        if right < end and inside:
            backward = Pass(key(right), quality)
            for i in reversed(inside):
                store[i] = backward.step(frames[i], matte_of(i))
        forward = Pass(key(left), quality) if left >= start and inside else None
        if left >= start:
            frames.release(left)
        for i in inside:
            ahead = forward.step(frames[i], matte_of(i)) if forward is not None else None
            behind = store.pop(i) if right < end else None
            if ahead is None or behind is None:
                yield out(i, (ahead or behind).image)  # type: ignore[union-attr]
            else:
                yield out(i, merge(ahead, behind, (i - left) / (right - left)))
        if right < end:
            yield right, keys[right]


def baseline(frames: list[np.ndarray], keys: Mapping[int, np.ndarray],
             preset: str = "fast") -> list[np.ndarray]:
    """The goal's yardstick: each frame the two nearest keys warped to it by DIS flow (straight
    from the frame to each key) and blended by distance; keys as given."""
    order = sorted(keys)
    out = []
    for i, frame in enumerate(frames):
        before = [k for k in order if k <= i]
        after = [k for k in order if k >= i]
        near = sorted({before[-1] if before else after[0], after[0] if after else before[-1]})
        if i in keys:
            out.append(keys[i])
            continue
        warped = [warp(keys[k][..., :3], flow(frame, frames[k], preset)).astype(np.float32)
                  for k in near]
        if len(near) == 1:
            out.append(compose(warped[0], frame, None))
            continue
        t = (i - near[0]) / (near[1] - near[0])
        out.append(compose(warped[0] * (1 - t) + warped[1] * t, frame, None))
    return out
