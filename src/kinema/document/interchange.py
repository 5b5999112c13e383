"""The project timeline as an OpenTimelineIO timeline, and back.

Layers become video tracks (bottom first, as in OTIO), audio tracks audio tracks, clips clips
with external references to the footage, solids, adjustment and style items generator
references, and spaces between items gaps; so Resolve, Premiere, Nuke or any OTIO adapter sees
the edit. What OTIO has no field for (layer transforms, masks, blend modes, ids, mask tracks,
recipes) travels in ``metadata["kinema"]``, so a kinema round trip restores the document
exactly. OTIO counts time in floats; the exact rates ride along as strings and win over the
floats on import.
Timelines from other tools (no kinema metadata) import as one layer per video track.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from kinema.core.errors import InvalidArgumentError
from kinema.core.timebase import snap_rate, to_fraction
from kinema.document.model import (
    AdjustmentItem,
    AssetItem,
    AudioTrack,
    ClipItem,
    Item,
    MaskTrackRef,
    MediaRef,
    Project,
    SolidItem,
    StyleItem,
    Timeline,
    VideoLayer,
)
from kinema.document.timing import TimeRange

if TYPE_CHECKING:
    import opentimelineio as otio

KEY = "kinema"
SOLID = "SolidColor"
ADJUSTMENT = "kinema.Adjustment"
STYLE = "kinema.Style"


def to_otio(project: Project, *, generators: bool = True) -> otio.schema.Timeline:
    """The project's timeline in OTIO's model. Without ``generators`` (for formats whose
    adapters cannot write them: EDL, FCP XML), solids, adjustment and style items become gaps."""
    import opentimelineio as otio

    tl = project.timeline
    timeline = otio.schema.Timeline(name=project.name,
                                    global_start_time=otio.opentime.RationalTime(0, float(tl.rate)))
    timeline.metadata[KEY] = {
        "rate": str(tl.rate), "width": tl.width, "height": tl.height, "duration": tl.duration,
        "project": {"name": project.name, "created": project.created.isoformat()},
        "mask_tracks": [m.model_dump(mode="json") for m in project.mask_tracks.values()],
        "recipes": [r.model_dump(mode="json") for r in project.recipes.values()],
        "unused_media": [m.model_dump(mode="json") for m in project.media.values()
                         if not _used(project, m.id)],
    }
    for layer in tl.video_layers:
        track = otio.schema.Track(name=layer.name, kind=otio.schema.TrackKind.Video)
        track.metadata[KEY] = layer.model_dump(mode="json", exclude={"items"})
        kept = [item for item in layer.items
                if generators or isinstance(item, (ClipItem, AssetItem))]
        _fill(track, [(item, _placed(item, tl.rate)) for item in kept], project)
        timeline.tracks.append(track)
    for audio in tl.audio_tracks:
        track = otio.schema.Track(name=audio.name, kind=otio.schema.TrackKind.Audio)
        track.metadata[KEY] = audio.model_dump(mode="json", exclude={"items"})
        _fill(track, [(item, _placed(item, tl.rate)) for item in audio.items], project)
        timeline.tracks.append(track)
    return timeline


def _used(project: Project, media_id: str) -> bool:
    tracks = [*project.timeline.video_layers, *project.timeline.audio_tracks]
    return any(getattr(item, "media_id", None) == media_id for t in tracks for item in t.items)


def _placed(item: Item, rate: Fraction) -> tuple[int, int]:
    """``(start, frames)`` of an item on the timeline, in timeline frames."""
    if isinstance(item, ClipItem):
        return item.start, int(item.source_range.duration.seconds * rate)
    return item.start, item.duration


def _fill(track: otio.schema.Track, items: list[tuple[Item, tuple[int, int]]],
          project: Project) -> None:
    import opentimelineio as otio

    rate = float(project.timeline.rate)
    at = 0
    for item, (start, frames) in sorted(items, key=lambda pair: pair[1][0]):
        if start < at:
            raise InvalidArgumentError(
                f"items overlap on track {track.name!r} at frame {start}",
                hint="OTIO tracks hold one item at a time; move the item to its own layer")
        if start > at:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(start - at, rate))))
        track.append(_clip(item, frames, project))
        at = start + frames


def _clip(item: Item, frames: int, project: Project) -> otio.schema.Clip:
    import opentimelineio as otio

    rate = float(project.timeline.rate)
    whole = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                    otio.opentime.RationalTime(frames, rate))
    meta = item.model_dump(mode="json")
    if isinstance(item, ClipItem):
        ref = project.media[item.media_id]
        return otio.schema.Clip(name=Path(ref.path).name, media_reference=_reference(ref),
                                source_range=_otio_range(item.source_range), metadata={KEY: meta})
    if isinstance(item, AssetItem):
        ref = project.media[item.media_id]
        return otio.schema.Clip(name=Path(ref.path).name, media_reference=_reference(ref),
                                source_range=whole, metadata={KEY: meta})
    if isinstance(item, SolidItem):
        generator = otio.schema.GeneratorReference(
            generator_kind=SOLID, parameters={"color": [c / 255 for c in item.color]},
            available_range=whole)
        return otio.schema.Clip(name="Solid", media_reference=generator, source_range=whole,
                                metadata={KEY: meta})
    assert isinstance(item, (AdjustmentItem, StyleItem))
    kind, name = (ADJUSTMENT, "Adjustment") if isinstance(item, AdjustmentItem) else (STYLE, "Style")
    generator = otio.schema.GeneratorReference(generator_kind=kind, available_range=whole,
                                               parameters={"recipe_id": item.recipe_id})
    return otio.schema.Clip(name=name, media_reference=generator, source_range=whole,
                            metadata={KEY: meta})


def _reference(ref: MediaRef) -> otio.schema.ExternalReference:
    import opentimelineio as otio

    rate = float(ref.rate)
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                        otio.opentime.RationalTime(ref.frames, rate))
    return otio.schema.ExternalReference(target_url=Path(ref.path).as_uri(),
                                         available_range=available,
                                         metadata={KEY: ref.model_dump(mode="json")})


def _otio_range(r: TimeRange) -> otio.opentime.TimeRange:
    import opentimelineio as otio

    return otio.opentime.TimeRange(
        otio.opentime.RationalTime(float(r.start_time.value), float(r.start_time.rate)),
        otio.opentime.RationalTime(float(r.duration.value), float(r.duration.rate)))


# --- import ---------------------------------------------------------------------------------


def from_otio(timeline: otio.schema.Timeline, *, name: str | None = None,
              rate: Fraction | None = None) -> Project:
    """A project from an OTIO timeline (one written by :func:`to_otio`, or from another tool).

    Media found only in the OTIO file get ``sha256 = ""`` and the facts OTIO knows; the caller
    fills in the rest from the files that exist (see ``kinema import``). ``rate`` is the edit
    rate when the file does not carry it exactly."""
    import opentimelineio as otio

    meta: dict[str, Any] = _kinema(timeline)
    tracks = list(timeline.tracks)
    rate = to_fraction(meta["rate"]) if "rate" in meta else rate or _guess_rate(timeline)
    media: dict[str, MediaRef] = {}
    for raw in meta.get("unused_media", []):
        ref = MediaRef.model_validate(raw)
        media[ref.id] = ref
    layers, audio = [], []
    for k, track in enumerate(tracks):
        items = _items(track, rate, media)
        info = _kinema(track)
        if track.kind == otio.schema.TrackKind.Video:
            info.setdefault("id", f"l{k + 1}")
            info.setdefault("name", track.name or f"V{len(layers) + 1}")
            layers.append(VideoLayer.model_validate({**info, "items": items}))
        else:
            info.setdefault("id", f"a{k + 1}")
            info.setdefault("name", track.name or f"A{len(audio) + 1}")
            audio.append(AudioTrack.model_validate(
                {**info, "items": [i for i in items if i.get("kind") == "clip"]}))
    first = next(iter(media.values()), None)
    duration = int(meta.get("duration") or round(Fraction(timeline.duration().to_seconds())
                                                  .limit_denominator(1_000_000) * rate))
    project_meta = meta.get("project", {})
    return Project.model_validate({
        "name": name or project_meta.get("name") or timeline.name or "imported",
        **({"created": project_meta["created"]} if "created" in project_meta else {}),
        "media": media,
        "timeline": Timeline(
            rate=rate, width=int(meta.get("width") or (first.width if first else 1920)),
            height=int(meta.get("height") or (first.height if first else 1080)),
            duration=duration, video_layers=layers, audio_tracks=audio),
        "mask_tracks": {m["id"]: MaskTrackRef.model_validate(m) for m in meta.get("mask_tracks", [])},
        "recipes": {r["id"]: r for r in meta.get("recipes", [])},  # older ones upgraded as read
    })


def _kinema(thing: Any) -> dict[str, Any]:
    """``thing.metadata["kinema"]`` as plain dicts and lists (OTIO hands back its own types)."""
    return _plain(thing.metadata.get(KEY, {}))


def _plain(value: Any) -> Any:
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return value


def _guess_rate(timeline: otio.schema.Timeline) -> Fraction:
    """The edit rate of a foreign timeline: its start time's rate, else its first clip's."""
    rates = [timeline.global_start_time.rate] if timeline.global_start_time else []
    rates += [clip.source_range.duration.rate for clip in timeline.find_clips() if clip.source_range]
    for rate in rates:
        if rate and rate > 0:
            return snap_rate(to_fraction(float(rate)))
    raise InvalidArgumentError("the timeline has no frame rate", hint="export it with clips in it")


def _items(track: otio.schema.Track, rate: Fraction, media: dict[str, MediaRef]) -> list[dict]:
    import opentimelineio as otio

    items: list[dict] = []
    at = 0
    for child in track:
        frames = _frames(child.duration(), rate)
        if isinstance(child, otio.schema.Clip):
            items.append(_item(child, at, frames, rate, media, len(items) + 1, track.name))
        at += frames
    return items


def _frames(t: otio.opentime.RationalTime, rate: Fraction) -> int:
    return int(round(_exact(t.value) / _exact(t.rate) * rate))


def _exact(x: float) -> Fraction:
    """OTIO's floats back to the ratios they came from (29.97002997... is 30000/1001)."""
    return Fraction(x).limit_denominator(1_000_000)


def _item(clip: otio.schema.Clip, start: int, frames: int, rate: Fraction,
          media: dict[str, MediaRef], n: int, track: str) -> dict:
    import opentimelineio as otio

    own = _kinema(clip)
    if own:
        own["start"] = start  # where the clip sits now wins, in case another tool moved it
        if own.get("kind") == "clip":
            own["source_range"] = _range_from(clip, own["source_range"])
        elif "duration" in own:
            own["duration"] = frames
    ref = clip.media_reference
    if isinstance(ref, otio.schema.GeneratorReference):
        if own:
            return own
        if ref.generator_kind == SOLID:
            color = [int(round(c * 255)) for c in ref.parameters.get("color", [0, 0, 0, 1])]
            return {"kind": "solid", "id": f"{track}-{n}", "color": color, "start": start,
                    "duration": frames}
        raise InvalidArgumentError(f"clip {clip.name!r} is a {ref.generator_kind} generator, "
                                   "which kinema cannot rebuild", hint="render it to a file first")
    if not isinstance(ref, otio.schema.ExternalReference):
        raise InvalidArgumentError(f"clip {clip.name!r} has no file behind it",
                                   hint="relink it in the editor it came from, then export again")
    media_ref = _media(ref, media, rate)
    if own:
        own["media_id"] = media_ref.id
        return own
    source = clip.source_range or clip.available_range()
    src_rate = media_ref.rate
    return {"kind": "clip", "id": f"{track}-{n}", "media_id": media_ref.id, "start": start,
            "source_range": {"start_time": {"value": str(_frames(source.start_time, src_rate)),
                                            "rate": str(src_rate)},
                             "duration": {"value": str(_frames(source.duration, src_rate)),
                                          "rate": str(src_rate)}}}


def _range_from(clip: otio.schema.Clip, exact: dict) -> dict:
    """The clip's source range at the exact rate kinema wrote, from OTIO's float values."""
    if clip.source_range is None:
        return exact
    rate = to_fraction(exact["start_time"]["rate"])
    start = _frames(clip.source_range.start_time, rate)
    count = _frames(clip.source_range.duration, rate)
    return TimeRange.from_frames(start, count, rate).model_dump(mode="json")


def _media(ref: otio.schema.ExternalReference, media: dict[str, MediaRef],
           edit_rate: Fraction) -> MediaRef:
    own = _kinema(ref)
    path = _path_of(ref.target_url)
    for existing in media.values():
        if (own and existing.id == own.get("id")) or existing.path == str(path):
            return existing
    if own:
        found = MediaRef.model_validate({**own, "path": str(path)})
    else:
        available = ref.available_range
        rate = snap_rate(_exact(available.duration.rate)) if available else edit_rate
        frames = _frames(available.duration, rate) if available else 0
        found = MediaRef(id=f"m{len(media) + 1}", path=str(path), sha256="", size_bytes=0,
                         rate=rate, frames=frames, width=0, height=0)
    media[found.id] = found
    return found


def _path_of(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else url)
    raise InvalidArgumentError(f"media at {url} is not a local file",
                               hint="download it and relink the clip, then export again")
