"""The project document: media pool, timeline of layers, mask tracks and recipes (pydantic).

Names follow OpenTimelineIO where they overlap (media references, tracks, source ranges);
times are exact rationals. ``SchemaVersion`` goes up with every change to the JSON layout,
and ``migrations`` brings older files forward; recipes are in ``recipes``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Annotated, Literal, get_args

from pydantic import Field

from kinema.core.frames import BlendMode
from kinema.document.base import DocumentModel
from kinema.document.recipes import Recipe, StyleKey
from kinema.document.timing import Rational, TimeRange

SchemaVersion = Literal[6]
"""The layout of project.json; it goes up with every change, with a step in ``migrations``."""
SCHEMA_VERSION: int = get_args(SchemaVersion)[0]

Interpolation = Literal["linear", "hold", "ease"]


class MediaRef(DocumentModel):
    """A source file in the media pool: its absolute ``path`` and its path relative to the
    project folder, so a project moved together with its footage still finds it."""

    id: str
    path: str
    relative_path: str | None = None
    sha256: str
    size_bytes: int
    rate: Rational
    frames: int
    width: int
    height: int
    has_audio: bool = False
    proxy: str | None = None
    recipe_id: str | None = None
    """The recipe that made the file, for files kinema made (interpolated, upscaled, generated)."""


class Keyframe(DocumentModel):
    """A value at a timeline frame, and how to get from it to the next keyframe."""

    frame: int
    value: float | tuple[float, float]
    interpolation: Interpolation = "linear"


class Animated(DocumentModel):
    """A property that is ``value`` unless keyframed."""

    value: float | tuple[float, float]
    keyframes: list[Keyframe] = Field(default_factory=list)

    def at(self, frame: int) -> float | tuple[float, float]:
        """The property's value at ``frame`` (held before the first and after the last keyframe)."""
        keys = sorted(self.keyframes, key=lambda k: k.frame)
        if not keys:
            return self.value
        if frame <= keys[0].frame:
            return keys[0].value
        for a, b in itertools.pairwise(keys):
            if a.frame <= frame < b.frame:
                if a.interpolation == "hold":
                    return a.value
                t = (frame - a.frame) / (b.frame - a.frame)
                if a.interpolation == "ease":
                    t = t * t * (3 - 2 * t)
                return _lerp(a.value, b.value, t)
        return keys[-1].value


def _lerp(a: float | tuple[float, float], b: float | tuple[float, float],
          t: float) -> float | tuple[float, float]:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
    return float(a) + (float(b) - float(a)) * t  # type: ignore[arg-type]


class Transform(DocumentModel):
    """Position (pixels, layer centre), scale, rotation (degrees clockwise) and opacity (0-1)."""

    position: Animated = Field(default_factory=lambda: Animated(value=(0.0, 0.0)))
    scale: Animated = Field(default_factory=lambda: Animated(value=(1.0, 1.0)))
    rotation: Animated = Field(default_factory=lambda: Animated(value=0.0))
    opacity: Animated = Field(default_factory=lambda: Animated(value=1.0))


class LayerMask(DocumentModel):
    """A layer shown only inside a mask track (or outside it when inverted)."""

    track_id: str
    invert: bool = False
    grow: float = 0.0
    feather: float = 0.0


class ClipItem(DocumentModel):
    """Frames ``source_range`` of a media reference, placed at timeline frame ``start``."""

    kind: Literal["clip"] = "clip"
    id: str
    media_id: str
    source_range: TimeRange
    start: int = 0


class AssetItem(DocumentModel):
    """An RGBA asset (a still or a moving one) from the media pool."""

    kind: Literal["asset"] = "asset"
    id: str
    media_id: str
    still: bool = False
    start: int = 0
    duration: int


class SolidItem(DocumentModel):
    kind: Literal["solid"] = "solid"
    id: str
    color: tuple[int, int, int, int] = (0, 0, 0, 255)
    start: int = 0
    duration: int


class AdjustmentItem(DocumentModel):
    """Applies a recipe's effect to everything below it."""

    kind: Literal["adjustment"] = "adjustment"
    id: str
    recipe_id: str
    start: int = 0
    duration: int


class StyleItem(DocumentModel):
    """A stylise layer's item: mask track ``track_id``'s object styled from its ``keys`` (styled
    whole frames of the track's footage by source frame: ``FRAME.png`` in ``keys_path``, also
    relative to the project folder like media, or a key's own ``path``), carried through the
    footage frames ``source_start`` onwards shown at timeline frames ``[start, start +
    duration)`` by :mod:`kinema.generate.propagate` at ``quality``. ``recipe_id`` names the
    recipe that made the keys (a restyle), if kinema made them. The propagated frames are a
    cache (``cache/styles/ID/``): a render brings them up to date, only where a key changed."""

    kind: Literal["style"] = "style"
    id: str
    track_id: str
    keys_path: str | None = None
    keys_relative_path: str | None = None
    keys: list[StyleKey] = Field(default_factory=list)
    recipe_id: str | None = None
    start: int = 0
    duration: int
    source_start: int = 0
    quality: Literal["fast", "best"] = "fast"


Item = Annotated[ClipItem | AssetItem | SolidItem | AdjustmentItem | StyleItem,
                 Field(discriminator="kind")]


class VideoLayer(DocumentModel):
    id: str
    name: str
    visible: bool = True
    blend_mode: BlendMode = "normal"
    transform: Transform = Field(default_factory=Transform)
    mask: LayerMask | None = None
    items: list[Item] = Field(default_factory=list)


class AudioTrack(DocumentModel):
    id: str
    name: str
    gain_db: float = 0.0
    muted: bool = False
    items: list[ClipItem] = Field(default_factory=list)


class Timeline(DocumentModel):
    """Layers bottom to top; ``rate`` and size are the output's."""

    rate: Rational
    width: int
    height: int
    duration: int
    video_layers: list[VideoLayer] = Field(default_factory=list)
    audio_tracks: list[AudioTrack] = Field(default_factory=list)


OBJECT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64), (64, 160, 255), (80, 220, 100), (255, 200, 40), (200, 90, 255),
    (255, 130, 200), (40, 220, 220), (255, 150, 60))
"""The colours objects get in turn, so neighbouring objects stand apart in overlays."""


def object_colour(k: int) -> tuple[int, int, int]:
    """The colour of object ``k`` (1-based), cycling through :data:`OBJECT_COLOURS`."""
    return OBJECT_COLOURS[(k - 1) % len(OBJECT_COLOURS)]


class MaskTrackRef(DocumentModel):
    """One object's masks, stored per frame under ``masks/<id>/``; ``recipe_id`` names the
    recipe that made them (how it was tracked), where kinema made them."""

    id: str
    name: str
    color: tuple[int, int, int] = (255, 64, 64)
    media_id: str
    frames: int
    width: int
    height: int
    recipe_id: str | None = None


class Project(DocumentModel):
    schema_version: SchemaVersion = SCHEMA_VERSION
    name: str
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    media: dict[str, MediaRef] = Field(default_factory=dict)
    timeline: Timeline
    mask_tracks: dict[str, MaskTrackRef] = Field(default_factory=dict)
    recipes: dict[str, Recipe] = Field(default_factory=dict)
