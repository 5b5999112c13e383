"""What a project's timeline looks like at any frame: layers evaluated and composited."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.core.errors import InvalidArgumentError, MediaOpenError
from kinema.document.masktrack import MaskTrackStore
from kinema.document.model import (
    AssetItem,
    ClipItem,
    Project,
    SolidItem,
    StyleItem,
    VideoLayer,
)
from kinema.render.compositor import Layer, Placement, composite
from kinema.render.mattes import matte_from_mask

STYLES = Path("cache") / "styles"
"""Where in a project folder each style item's propagated frames are cached."""
FRAME_NAME = "{:05d}.png"
"""A cached style frame's name: its footage frame."""


def cache_folder(folder: Path, item_id: str) -> Path:
    """The cache of style item ``item_id`` in project ``folder``."""
    return folder / STYLES / item_id


def footage_frame(project: Project, item: StyleItem, t: int) -> int | None:
    """The footage frame style item ``item`` shows at timeline frame ``t`` (``None`` outside it)."""
    if not item.start <= t < item.start + item.duration:
        return None
    track = project.mask_tracks[item.track_id]
    rate = project.media[track.media_id].rate / project.timeline.rate
    return min(item.source_start + int((t - item.start) * rate + 1e-9), track.frames - 1)


def footage_frames(project: Project, item: StyleItem) -> range:
    """The footage frames style item ``item`` shows over its duration."""
    track = project.mask_tracks[item.track_id]
    count = math.ceil(item.duration * project.media[track.media_id].rate / project.timeline.rate)
    return range(min(item.source_start, track.frames), min(track.frames, item.source_start + count))


def media_paths(project: Project, folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Where each media reference is now (absolute path first, then relative to the project),
    and the ids of those that are missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for ref in project.media.values():
        candidates = [Path(ref.path)]
        if ref.relative_path:
            candidates.append(folder / ref.relative_path)
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(ref.id)
        else:
            found[ref.id] = path
    return found, missing


class FrameEvaluator:
    """The composited frame at any timeline frame of a project. A style layer shows its
    propagated frames from the cache (:mod:`kinema.app.style_layer`); a frame not propagated
    yet is an error, or with ``partial_styles`` (the editor, while a propagation runs) shows
    nothing."""

    def __init__(self, project: Project, folder: Path, *, partial_styles: bool = False) -> None:
        from kinema.media import open_video

        self.project = project
        self.folder = folder
        self.partial_styles = partial_styles
        tl = project.timeline
        self.canvas = (tl.width, tl.height)
        paths, missing = media_paths(project, folder)
        needed = {item.media_id for layer in tl.video_layers if layer.visible
                  for item in layer.items if isinstance(item, (ClipItem, AssetItem))}
        blocked = sorted(needed & set(missing))
        if blocked:
            names = ", ".join(project.media[m].path for m in blocked)
            raise MediaOpenError(f"media needed for the render is missing: {names}", path=folder,
                                 hint="relink it or put the files back")
        self._readers = {m: open_video(paths[m], prefetch=False, alpha=True) for m in needed}
        for reader in self._readers.values():
            reader.alpha = reader.has_alpha  # opaque footage stays RGB: a third less to convert
        self._check_lengths(paths)
        self._masks = {
            t.id: MaskTrackStore(folder / "masks" / t.id, t.frames, t.width, t.height)
            for t in project.mask_tracks.values()
        }

    def _check_lengths(self, paths: dict[str, Path]) -> None:
        """Refuse a clip that uses more of its media than the file holds (a shorter file was
        relinked in its place), before any frame is made."""
        for layer in self.project.timeline.video_layers:
            for item in layer.items:
                if not isinstance(item, ClipItem) or item.media_id not in self._readers:
                    continue
                reader = self._readers[item.media_id]
                needed = item.source_range.start_time.seconds + item.source_range.duration.seconds
                if needed > reader.duration + Fraction(1, 1000):
                    raise MediaOpenError(
                        f"clip {item.id!r} uses {float(needed):.3f} s of this file, which holds "
                        f"{float(reader.duration):.3f} s", path=paths[item.media_id],
                        hint="relink the file the project was made with (kinema relink)")

    def frame(self, t: int, *, alpha: bool = False) -> np.ndarray:
        """Timeline frame ``t`` composited, RGB (or straight RGBA with ``alpha``)."""
        layers = []
        for layer in self.project.timeline.video_layers:
            if not layer.visible:
                continue
            for item in layer.items:
                built = self._layer(layer, item, t)
                if built is not None:
                    layers.append(built)
        background = (0, 0, 0, 0) if alpha else (0, 0, 0, 255)
        return composite(self.canvas, layers, background=background, alpha=alpha)

    def _layer(self, layer: VideoLayer, item: object, t: int) -> Layer | None:
        rate = self.project.timeline.rate
        if isinstance(item, ClipItem):
            offset = t - item.start
            rng = item.source_range
            if not 0 <= offset < rng.duration.seconds * rate:
                return None
            reader = self._readers[item.media_id]
            seconds = rng.start_time.seconds + Fraction(offset) / rate
            source_index = reader.index_at(seconds)
            pixels, mask_frame = reader[source_index], source_index
        elif isinstance(item, AssetItem):
            if not item.start <= t < item.start + item.duration:
                return None
            reader = self._readers[item.media_id]
            source_index = 0 if item.still else min(t - item.start, len(reader) - 1)
            pixels, mask_frame = reader[source_index], source_index
        elif isinstance(item, SolidItem):
            if not item.start <= t < item.start + item.duration:
                return None
            pixels = np.broadcast_to(np.array(item.color, np.uint8), self.canvas[::-1] + (4,))
            mask_frame = t
        elif isinstance(item, StyleItem):
            found = self._style(item, t)
            if found is None:
                return None
            pixels, mask_frame = found
        else:
            return None  # an adjustment's effect is not rendered yet: alone it changes nothing
        tf = layer.transform
        dx, dy = tf.position.at(t)  # type: ignore[misc]
        sx, sy = tf.scale.at(t)  # type: ignore[misc]
        placement = Placement(position=(self.canvas[0] / 2 + dx, self.canvas[1] / 2 + dy),
                              scale=(sx, sy), rotation=float(tf.rotation.at(t)))  # type: ignore[arg-type]
        return Layer(pixels, placement, opacity=float(tf.opacity.at(t)),  # type: ignore[arg-type]
                     blend_mode=layer.blend_mode, matte=self._matte(layer, mask_frame))

    def _style(self, item: StyleItem, t: int) -> tuple[np.ndarray, int] | None:
        """A style item's cached RGBA frame at timeline frame ``t`` and its footage frame."""
        from kinema.media.image import read_image

        frame = footage_frame(self.project, item, t)
        if frame is None:
            return None
        path = cache_folder(self.folder, item.id) / FRAME_NAME.format(frame)
        if not path.is_file():
            if self.partial_styles:
                return None
            raise InvalidArgumentError(f"style layer {item.id!r} is not propagated at frame {frame}",
                                       path=self.folder, hint="run kinema stylize PROJECT")
        return read_image(path), frame

    def _matte(self, layer: VideoLayer, frame: int) -> np.ndarray | None:
        if layer.mask is None:
            return None
        track = self._masks.get(layer.mask.track_id)
        if track is None:
            raise InvalidArgumentError(f"layer {layer.name!r} uses unknown mask track "
                                       f"{layer.mask.track_id!r}", path=self.folder)
        mask = track.read(frame) if 0 <= frame < track.frames else None
        if mask is None:
            mask = np.zeros((track.height, track.width), bool)
        matte = matte_from_mask(mask, grow=layer.mask.grow, feather=layer.mask.feather,
                                invert=layer.mask.invert)
        if matte.shape != self.canvas[::-1]:
            import cv2

            matte = cv2.resize(matte, self.canvas, interpolation=cv2.INTER_LINEAR)
        return matte

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
