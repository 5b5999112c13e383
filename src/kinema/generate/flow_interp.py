"""Frame interpolation by optical flow, a per-pixel pick of the motion (no weights).

For two frames ``a`` and ``b`` OpenCV's DIS optical flow ``F01`` (``a`` to ``b``) is computed on
the grey images, and ``F10`` (``b`` to ``a``) is inverted from it in one fixed-point step,
``F10(y) = -F01(y - F01(y))`` (on DAVIS clips at half rate a second DIS pass for ``F10``
scored 0.06 dB more for about a third more time per in-between). The frame at ``t`` samples
``a`` at ``x + Ft0(x)`` and ``b`` at ``x + Ft1(x)``; three hypotheses for those flows are tried:

- the Super SloMo blend of both flows (Jiang et al. 2018), ``Ft0 = -(1 - t) t F01 + t^2 F10``,
  ``Ft1 = (1 - t)^2 F01 - t (1 - t) F10``;
- ``F01`` alone, ``Ft0 = -t F01``, ``Ft1 = (1 - t) F01``: the motion of ``a``'s surface at ``x``;
- ``F10`` alone, ``Ft0 = t F10``, ``Ft1 = -(1 - t) F10``: the motion of ``b``'s surface at ``x``.

Each pixel takes the hypothesis whose two (bilinear) warps agree best around it: the least
absolute difference of the grey frames' warps at half size, over the 8x8 square there (16x16
at full size). Near a moving edge the blend mixes the two surfaces' motions and one flow alone
is right on each side; this is a cheap stand-in for splatting the flows to ``t``. The two warps
(of the RGB frames, at full size) are blended by ``1 - t`` and ``t``.

Bilinear sampling between pixels blurs (most at half-pixel positions, as at ``t = 0.5``), so
where the two warps agree the bicubic samples are used instead, weighed by ``exp(-g /
detail)`` of the warps' gap ``g`` (their absolute difference averaged over the RGB channels
and a 5x5 square) against the bilinear ones: where the flow is unsure the softer bilinear
result is the better guess. Measured on DAVIS clips at half rate
(``benchmarks/bench_interpolate.py``) the pick added about 0.1 dB and the bicubic samples
about 0.3 dB.

The flow pair of the last pair of frames is kept, so several in-betweens of one pair (``--factor
4``) compute it once (:attr:`FlowInterpolator.flow_pairs` counts the computations). OpenCV is
imported inside the methods; frames are ``uint8`` RGB arrays of one size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import check_frame

PRESETS = ("ultrafast", "fast", "medium")
PICK_WINDOW = 8  # the side of the square (at half size) over which two warps are compared
DETAIL_WINDOW = 5  # the side of the square over which the warps' gap weighs the bicubic samples


class FlowInterpolator:
    """In-betweens by DIS flow (one way, inverted), the motion at each pixel picked from three
    hypotheses.

    ``preset``: DIS's ``ultrafast``, ``fast`` or ``medium`` (the default: DIS's medium with 12
    gradient descent and 3 variational refinement iterations for its 25 and 5, about three
    quarters of its time); ``scale``: the flow is computed at this fraction of the frame size
    and resized up (1.0: full size); ``detail``: the warps' gap (grey levels) at which
    the bicubic samples' weight falls to ``1/e`` (0: bilinear only; see above)."""

    name = "flow"

    def __init__(self, *, preset: str = "medium", scale: float = 1.0, detail: float = 20.0) -> None:
        if preset not in PRESETS:
            raise InvalidArgumentError(f"unknown DIS preset {preset!r}",
                                       hint="ultrafast, fast or medium")
        if not 0 < scale <= 1:
            raise InvalidArgumentError(f"flow scale must be in (0, 1], got {scale}")
        if detail < 0:
            raise InvalidArgumentError(f"detail must be 0 or more, got {detail}")
        self.preset = preset
        self.scale = float(scale)
        self.detail = float(detail)
        self.flow_pairs = 0  # how many flow pairs were computed (a cached pair is not counted)
        self._pair: tuple[Any, Any, np.ndarray, np.ndarray] | None = None
        self._dis: Any = None
        self._grids: dict[tuple[int, int], np.ndarray] = {}  # pixel positions per size

    # -- flow --------------------------------------------------------------------------
    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(F01, F10)``, float32 ``(H, W, 2)`` in pixels (``F10`` inverted from ``F01``); the
        last pair's are reused."""
        cached = self._pair
        if cached is not None and cached[0] is a and cached[1] is b:
            return cached[2], cached[3]
        import cv2

        if self._dis is None:
            preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                      "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                      "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.preset]
            self._dis = cv2.DISOpticalFlow_create(preset)
            if self.preset == "medium":
                self._dis.setGradientDescentIterations(12)
                self._dis.setVariationalRefinementIterations(3)
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        h, w = ga.shape
        if self.scale < 1:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            small = self._dis.calc(cv2.resize(ga, size, interpolation=cv2.INTER_AREA),
                                   cv2.resize(gb, size, interpolation=cv2.INTER_AREA), None)
            f01 = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
            f01 *= np.float32((w / size[0], h / size[1]))
        else:
            f01 = self._dis.calc(ga, gb, None)
        # F10 at y is minus F01 at where y came from, y - F01(y) (one fixed-point step).
        grid = self._positions(h, w)
        f10 = cv2.remap(f01, cv2.subtract(grid, f01), None, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        cv2.multiply(f10, -1.0, dst=f10)
        self.flow_pairs += 1
        # Holding a and b keeps their ids from being reused while the pair is cached.
        self._pair = (a, b, f01, f10)
        return f01, f10

    # -- interpolation -----------------------------------------------------------------
    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """The frame at ``t`` in [0, 1] of the way from ``a`` to ``b``."""
        import cv2

        a = check_frame(a, alpha=False)  # the same array when it is already contiguous
        b = check_frame(b, (a.shape[1], a.shape[0]), alpha=False)
        t = float(t)
        if not 0 <= t <= 1:
            raise InvalidArgumentError(f"t must be in [0, 1], got {t}")
        if t == 0:
            return a.copy()
        if t == 1:
            return b.copy()
        f01, f10 = self.flows(a, b)
        h, w = a.shape[:2]
        ways = _hypotheses(t)
        choice = self._pick(a, b, f01, f10, ways)
        grid = self._positions(h, w)

        def positions(c0: float, c1: float, c2: float, c3: float) -> tuple[np.ndarray, np.ndarray]:
            return (cv2.add(grid, cv2.addWeighted(f01, c0, f10, c1, 0)),
                    cv2.add(grid, cv2.addWeighted(f01, c2, f10, c3, 0)))

        at_a, at_b = positions(*ways[0])
        for i, way in enumerate(ways[1:], 1):
            here = (choice == i).view(np.uint8)
            if cv2.countNonZero(here):
                ma, mb = positions(*way)
                cv2.copyTo(ma, here, at_a)  # in place
                cv2.copyTo(mb, here, at_b)
        la, lb = _warp(a, at_a, cv2.INTER_LINEAR), _warp(b, at_b, cv2.INTER_LINEAR)
        out = cv2.addWeighted(la, 1 - t, lb, t, 0, dtype=cv2.CV_32F)
        if self.detail > 0:
            # Bicubic where the two warps agree (the flow is right there), bilinear where not.
            gap = cv2.boxFilter(_gap(la, lb), cv2.CV_32F, (DETAIL_WINDOW, DETAIL_WINDOW))
            keep = cv2.exp(gap * np.float32(-1 / self.detail))
            cubic = cv2.addWeighted(_warp(a, at_a, cv2.INTER_CUBIC), 1 - t,
                                    _warp(b, at_b, cv2.INTER_CUBIC), t, 0, dtype=cv2.CV_32F)
            out = cv2.blendLinear(cubic, out, keep, 1 - keep)
        return cv2.add(out, 0.0, dtype=cv2.CV_8U)  # rounded, clipped to 0..255

    def _pick(self, a: np.ndarray, b: np.ndarray, f01: np.ndarray, f10: np.ndarray,
              ways: tuple[tuple[float, float, float, float], ...]) -> np.ndarray:
        """Per pixel, the index (``uint8``) of the hypothesis whose two warps agree best, judged
        on the grey frames at half size."""
        import cv2

        h, w = a.shape[:2]
        size = ((w + 1) // 2, (h + 1) // 2)
        to_half = np.float32((size[0] / w, size[1] / h))
        ga, gb = (cv2.resize(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
                  for x in (a, b))
        s01, s10 = (cv2.resize(f, size, interpolation=cv2.INTER_AREA) * to_half for f in (f01, f10))
        grid = self._positions(size[1], size[0])
        choice = np.zeros((size[1], size[0]), np.uint8)
        least: np.ndarray | None = None
        for i, (c0, c1, c2, c3) in enumerate(ways):
            wa = _warp(ga, cv2.add(grid, cv2.addWeighted(s01, c0, s10, c1, 0)), cv2.INTER_LINEAR)
            wb = _warp(gb, cv2.add(grid, cv2.addWeighted(s01, c2, s10, c3, 0)), cv2.INTER_LINEAR)
            cost = cv2.boxFilter(cv2.absdiff(wa, wb), cv2.CV_32F, (PICK_WINDOW, PICK_WINDOW))
            if least is None:
                least = cost
                continue
            better = cost < least
            choice[better] = i
            np.minimum(least, cost, out=least)
        return cv2.resize(choice, (w, h), interpolation=cv2.INTER_NEAREST)

    def _positions(self, h: int, w: int) -> np.ndarray:
        """The pixels' ``(x, y)``, float32 ``(h, w, 2)``, kept per size."""
        grid = self._grids.get((h, w))
        if grid is None:
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            grid = self._grids[h, w] = np.dstack([xs, ys])
        return grid


def _hypotheses(t: float) -> tuple[tuple[float, float, float, float], ...]:
    """``(c0, c1, c2, c3)`` per hypothesis: ``Ft0 = c0 F01 + c1 F10``, ``Ft1 = c2 F01 + c3 F10``
    (the Super SloMo blend, ``F01`` alone, ``F10`` alone)."""
    return ((-(1 - t) * t, t * t, (1 - t) ** 2, -t * (1 - t)), (-t, 0.0, 1 - t, 0.0),
            (0.0, t, 0.0, t - 1))


def _warp(image: np.ndarray, at: np.ndarray, how: int) -> np.ndarray:
    """``image`` sampled at the positions ``at`` (float32 ``(H, W, 2)``), edges replicated."""
    import cv2

    return cv2.remap(image, at, None, how, borderMode=cv2.BORDER_REPLICATE)


def _gap(wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """The absolute difference of two ``uint8`` RGB images, the mean over channels (``uint8``)."""
    import cv2

    return cv2.transform(cv2.absdiff(wa, wb), np.full((1, 3), 1 / 3, np.float32))
