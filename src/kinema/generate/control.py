"""Control images for SDXL ControlNets, and the ``--control`` option that asks for them.

Each ControlNet was trained on one kind of picture, and gets that layout here: canny edges
white on black in three channels (``cv2.Canny`` on the RGB frame, as in diffusers' SDXL canny
example), a depth map normalised to [0, 255] with the nearest point brightest, in three
channels (the depth ControlNets' training data); OpenPose skeletons are drawn by
:func:`kinema.vision.pose.draw_openpose` (a use case in ``app`` passes them in).

``--control canny=0.6,pose=1.0@0-0.8`` asks for canny at weight 0.6 over the whole sampling
and pose at weight 1 over its first 80 %: :func:`parse_controls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import check_frame

ControlKind = Literal["canny", "pose", "depth"]
KINDS: tuple[ControlKind, ...] = get_args(ControlKind)
CANNY_THRESHOLDS = (100, 200)
"""OpenCV's hysteresis thresholds in diffusers' SDXL canny example (low, high)."""


@dataclass(frozen=True)
class ControlSpec:
    """One condition asked for: its kind, weight, and the part of the sampling it acts in."""

    kind: ControlKind
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


def canny_image(frame: np.ndarray, low: int = CANNY_THRESHOLDS[0],
                high: int = CANNY_THRESHOLDS[1]) -> np.ndarray:
    """``frame``'s Canny edges (hysteresis thresholds ``low`` and ``high``), 255 on 0, as an
    ``(H, W, 3) uint8`` control image."""
    import cv2

    check_thresholds(low, high)
    edges = cv2.Canny(check_frame(frame, alpha=False), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


def check_thresholds(low: int, high: int) -> tuple[int, int]:
    """Canny's thresholds if usable (0 <= low <= high), else an error."""
    if not 0 <= low <= high:
        raise InvalidArgumentError(f"canny thresholds must be 0 <= LOW <= HIGH, got {low},{high}")
    return low, high


def depth_image(depth: np.ndarray) -> np.ndarray:
    """A relative depth map (larger is nearer) as a control image: normalised so the nearest
    point is 255 and the farthest 0, ``(H, W, 3) uint8``; a flat map is black."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise InvalidArgumentError(f"a depth map must be (H, W), got shape {depth.shape}")
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    grey = np.round(scaled * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def parse_controls(text: str | None) -> list[ControlSpec]:
    """``"canny=0.6,pose=1.0@0-0.8"``: conditions with weights and optional ``@START-END``
    ranges (fractions of the sampling); each kind at most once."""
    specs = [_parse_one(part.strip()) for part in (text or "").split(",") if part.strip()]
    kinds = [s.kind for s in specs]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise InvalidArgumentError(f"--control names {', '.join(twice)} more than once")
    return specs


def _parse_one(part: str) -> ControlSpec:
    hint = "write KIND=WEIGHT[@START-END], e.g. canny=0.6 or pose=1.0@0-0.8"
    kind, equals, rest = part.partition("=")
    if kind not in KINDS:
        raise InvalidArgumentError(f"unknown control {kind!r} in --control",
                                   hint=f"use {', '.join(KINDS)}")
    weight_text, at, span = rest.partition("@")
    start_text, dash, end_text = span.partition("-")
    try:
        weight = float(weight_text) if equals else 1.0
        start, end = (float(start_text), float(end_text)) if at else (0.0, 1.0)
    except ValueError:
        raise InvalidArgumentError(f"cannot read --control {part!r}", hint=hint) from None
    if at and not dash:
        raise InvalidArgumentError(f"cannot read --control {part!r}", hint=hint)
    if weight < 0:
        raise InvalidArgumentError(f"control {kind} has a negative weight {weight}")
    if not 0 <= start < end <= 1:
        raise InvalidArgumentError(f"control {kind} acts over {start}-{end}",
                                   hint="give START-END with 0 <= START < END <= 1")
    return ControlSpec(cast(ControlKind, kind), weight, start, end)
