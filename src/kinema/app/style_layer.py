"""A project's stylise layers: keys carried through the footage, cached, redone only where a
key changed.

A :class:`~kinema.document.model.StyleItem` holds an object's keys (styled whole frames of its
mask track's footage). Its propagated frames live in the project's cache
(``cache/styles/ITEM/00024.png`` for footage frame 24, RGBA: the styled frame as
``kinema propagate`` makes it, opaque where the object's feathered matte reaches, transparent
elsewhere), so the layer over its clip is that command's output.

The frames split into spans that each depend on at most two keys (:func:`spans`): the frames
before the first key on the first, each gap between two keys on both, each key frame on its
key alone, the frames after the last key on the last. A span's fingerprint names everything
its pixels depend on (the footage, the masks over the frames it reads, its keys' hashes, the
quality, kinema's version); ``spans.json`` lists the fingerprints whose frames are on disk.
Bringing the layer up to date (:func:`update_styles`) redoes only the spans whose fingerprint
is not there: editing one key redoes the two gaps beside it and nothing else.

The document is the recipe: a render refuses keys whose files changed since the document
recorded their hashes (:func:`check_keys`); ``kinema stylize`` takes them in as one undoable
edit (:func:`refresh_keys`), and puts an artist's painted keys on a frame (:func:`paint_keys`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import count, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.app.evaluate import FRAME_NAME, cache_folder, footage_frames
from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaOpenError
from kinema.core.jobs import Progress, Steps
from kinema.document.model import Project, StyleItem, VideoLayer
from kinema.document.recipes import StyleKey

if TYPE_CHECKING:
    from kinema.document.edits import Edit

SPANS = "spans.json"


def style_items(project: Project, *, visible: bool = False) -> list[tuple[VideoLayer, StyleItem]]:
    """The project's style items with their layers (only visible layers' with ``visible``)."""
    return [(layer, item) for layer in project.timeline.video_layers
            if layer.visible or not visible for item in layer.items if isinstance(item, StyleItem)]


def key_path(item: StyleItem, key: StyleKey, folder: Path) -> Path:
    """Where key ``key``'s image is: its own file, or ``FRAME.png`` in the item's keys folder;
    the path as recorded first, then relative to the project ``folder``."""
    if key.path is not None:
        absolute, relative = key.path, key.relative_path
    else:
        name = FRAME_NAME.format(key.frame)
        absolute = os.path.join(item.keys_path, name) if item.keys_path else name
        relative = os.path.join(item.keys_relative_path, name) if item.keys_relative_path else None
    candidates = [Path(absolute), *([folder / relative] if relative else [])]
    return next((c for c in candidates if c.is_file()), candidates[0])


def check_keys(project: Project, folder: Path, item: StyleItem) -> dict[int, Path]:
    """``item``'s key images by frame, each still the file the document recorded (its hash);
    one error naming the first that is missing or changed."""
    from kinema.core.hashing import file_sha256

    found = {}
    for key in item.keys:
        path = key_path(item, key, folder)
        if not path.is_file():
            raise MediaOpenError(f"key of frame {key.frame} of style layer {item.id!r} is missing",
                                 path=path, hint="put the file back, or run kinema stylize PROJECT "
                                 "to drop keys that are gone")
        if file_sha256(path) != key.sha256:
            raise InvalidArgumentError(
                f"key of frame {key.frame} changed since style layer {item.id!r} took it in",
                path=path, hint=f"run kinema stylize {folder} to take in the new key")
        found[key.frame] = path
    return found


def refresh_keys(project: Project, folder: Path) -> tuple[Edit | None, list[str]]:
    """One undoable edit that takes in what changed on disk in every style item's keys: a key
    image repainted (its new hash), a ``FRAME.png`` added to or removed from a keys folder, a
    painted key's file gone (the key dropped); ``None`` when nothing changed. With a line per
    change for the user."""
    from kinema.app.style_keys import KEY_NAME
    from kinema.core.hashing import file_sha256
    from kinema.document.edits import Edit

    updated: dict[str, list[StyleKey]] = {}
    notes: list[str] = []
    for _layer, item in style_items(project):
        keys: dict[int, StyleKey] = {}
        keys_folder = _keys_folder(item, folder)
        if keys_folder is not None:
            for entry in sorted(keys_folder.iterdir()):
                if (m := KEY_NAME.match(entry.name)) and entry.is_file():
                    keys[int(m.group(1))] = StyleKey(frame=int(m.group(1)), sha256=file_sha256(entry))
        for key in item.keys:
            path = key_path(item, key, folder)
            if key.path is not None and path.is_file():
                keys[key.frame] = key.model_copy(update={"sha256": file_sha256(path)})
        new = sorted(keys.values(), key=lambda k: k.frame)
        if new != item.keys:
            notes.extend(_changes(item, new))
            updated[item.id] = new
    if not updated:
        return None, notes

    def apply(doc: Project) -> None:
        for _layer, item in style_items(doc):
            if item.id in updated:
                item.keys = updated[item.id]

    return Edit("Take in changed keys", apply), notes


def _keys_folder(item: StyleItem, folder: Path) -> Path | None:
    """The item's keys folder where it is (as recorded, else relative to the project)."""
    candidates = [Path(p) for p in (item.keys_path,) if p]
    if item.keys_relative_path:
        candidates.append(folder / item.keys_relative_path)
    return next((c for c in candidates if c.is_dir()), None)


def _changes(item: StyleItem, new: list[StyleKey]) -> list[str]:
    """What differs between ``item``'s keys and ``new``, a line each."""
    old = {k.frame: k.sha256 for k in item.keys}
    now = {k.frame: k.sha256 for k in new}
    lines = [f"{item.id}: key {f} added" for f in sorted(now.keys() - old.keys())]
    lines += [f"{item.id}: key {f} gone" for f in sorted(old.keys() - now.keys())]
    lines += [f"{item.id}: key {f} changed" for f in sorted(old.keys() & now.keys()) if old[f] != now[f]]
    return lines


def paint_keys(project: Project, folder: Path, track: str,
               keys: Mapping[int, str | os.PathLike[str]]) -> tuple[Edit, str]:
    """One undoable edit that puts ``keys`` (images by footage frame, such as an artist's
    paintings, each checked: the footage's size, a frame of the track) on mask track
    ``track``'s style layer, replacing keys of the same frames; a new layer on top when the
    track has none. And the style item's id. The images stay where they are (the document
    records their paths and hashes)."""
    from kinema.app.export_jobs import find_track, track_footage
    from kinema.app.style_keys import read_key
    from kinema.core.hashing import file_sha256
    from kinema.document.edits import Edit, add_layer

    ref = find_track(project, folder, track)
    footage = track_footage(project, folder, ref)
    painted = []
    for frame, path in sorted(keys.items()):
        read_key(frame, path, size=(ref.width, ref.height), frames=ref.frames, start=0,
                 end=ref.frames, footage=footage)
        absolute = Path(path).resolve()
        painted.append(StyleKey(frame=frame, sha256=file_sha256(absolute), path=str(absolute),
                                relative_path=os.path.relpath(absolute, folder.resolve())))
    found = next((item for _layer, item in style_items(project) if item.track_id == ref.id), None)
    if found is not None:
        item_id = found.id
        frames = {k.frame for k in painted}

        def apply(doc: Project) -> None:
            for _layer, item in style_items(doc):
                if item.id == item_id:
                    item.keys = sorted([*(k for k in item.keys if k.frame not in frames), *painted],
                                       key=lambda k: k.frame)

        return Edit(f"Paint keys of {ref.name}", apply), item_id
    from kinema.app.restyle_jobs import style_placement

    start, duration, source_start = style_placement(project, ref.media_id)
    layers = project.timeline.video_layers
    used = {item.id for layer in layers for item in layer.items}
    item_id = next(f"s{k}" for k in count(1) if f"s{k}" not in used)
    layer_id = next(f"l{k}" for k in count(1) if f"l{k}" not in {layer.id for layer in layers})
    item = StyleItem(id=item_id, track_id=ref.id, keys=painted, start=start, duration=duration,
                     source_start=source_start)
    layer = VideoLayer(id=layer_id, name=f"{ref.name} style", items=[item])
    return Edit(f"Paint keys of {ref.name}", add_layer(layer).apply), item_id


@dataclass(frozen=True)
class Span:
    """Footage frames ``[first, stop)`` styled from keys ``left`` (before them) and ``right``
    (after them); either is ``None`` at the ends, and a key's own frame has both its key."""

    first: int
    stop: int
    left: StyleKey | None
    right: StyleKey | None

    @property
    def frames(self) -> range:
        """The footage frames it styles."""
        return range(self.first, self.stop)

    @property
    def reads(self) -> range:
        """The footage frames its synthesis reads: from its left key's to its right key's."""
        first = self.left.frame if self.left is not None else self.first
        stop = self.right.frame + 1 if self.right is not None else self.stop
        return range(min(first, self.first), max(stop, self.stop))


def spans(keys: list[StyleKey], first: int, stop: int) -> list[Span]:
    """Frames ``[first, stop)`` (widened to hold every key) split into the spans that depend
    on the same keys, in order."""
    order = sorted(keys, key=lambda k: k.frame)
    if not order:
        return []
    first, stop = min(first, order[0].frame), max(stop, order[-1].frame + 1)
    out = [Span(first, order[0].frame, None, order[0])] if first < order[0].frame else []
    for a, b in pairwise([*order, None]):
        out.append(Span(a.frame, a.frame + 1, a, a))
        end = b.frame if b is not None else stop
        if a.frame + 1 < end:
            out.append(Span(a.frame + 1, end, a, b))
    return out


@dataclass(frozen=True)
class StyleUpdate:
    """What :func:`update_styles` did to one style item: the frames it styled anew and those
    it kept from the cache."""

    item_id: str
    styled: int
    kept: int


@dataclass
class _Plan:
    """One style item's work: its keys, its cache with the spans on disk (by fingerprint),
    the spans to style again and how many frames it shows in all."""

    item: StyleItem
    keys: dict[int, Path]
    cache: Path
    done: dict[str, list[int]]
    todo: list[tuple[Span, str]]
    frames: int


@dataclass(frozen=True)
class _SpanJob:
    """One span to style: a Ray task's whole input."""

    plan: _Plan
    span: Span
    fingerprint: str


def update_styles(project: Project, folder: Path, *, item_ids: list[str] | None = None,
                  ray: bool = False) -> Steps[list[StyleUpdate]]:
    """Bring the cached frames of the visible style items (or of ``item_ids``) up to date:
    the spans whose fingerprint changed are propagated again, one progress event per frame
    (with ``ray``, per span: each span a Ray task, see :mod:`kinema.app.ray_pool`); the
    others are kept. ``spans.json`` is written as each span is done. Keys are checked first
    (:func:`check_keys`)."""
    folder = folder.resolve()  # Ray workers do not share this process's working folder
    plans = [_plan(project, folder, item) for layer, item in style_items(project)
             if (item.id in item_ids if item_ids is not None else layer.visible)]
    for plan in plans:
        with atomic.naming_errors(plan.cache):
            plan.cache.mkdir(parents=True, exist_ok=True)
    jobs = [_SpanJob(plan, span, fp) for plan in plans for span, fp in plan.todo]
    total, progress = sum(len(job.span.frames) for job in jobs), 0
    if ray:
        from kinema.app.ray_pool import map_tasks

        for job, _frames in map_tasks(partial(_span_task, project, folder), jobs):
            _record(job)
            progress += len(job.span.frames)
            yield Progress(progress, total, "frames", f"style {job.plan.item.id}")
    else:
        for job in jobs:
            for _ in _span_frames(project, folder, job):
                progress += 1
                yield Progress(progress, total, "frames", f"style {job.plan.item.id}")
            _record(job)
    results = []
    for plan in plans:
        styled = sum(len(span.frames) for span, _ in plan.todo)
        results.append(StyleUpdate(plan.item.id, styled, plan.frames - styled))
    return results


def _plan(project: Project, folder: Path, item: StyleItem) -> _Plan:
    """What bringing ``item`` up to date takes: the spans whose fingerprint is not in its
    cache, or whose frames are not all there."""
    from kinema.app.export_jobs import open_track

    keys = check_keys(project, folder, item)
    ref, masks = open_track(project, folder, item.track_id)
    shown = footage_frames(project, item)
    cache = cache_folder(folder, item.id)
    base = {"footage": project.media[ref.media_id].sha256, "quality": item.quality}
    parts = spans(item.keys, shown.start, shown.stop)
    current = {_fingerprint(base, span, masks): span for span in parts}
    done = {fp: v for fp, v in _read_spans(cache).items() if fp in current}
    todo = [(span, fp) for fp, span in current.items()
            if fp not in done or not all((cache / FRAME_NAME.format(i)).is_file()
                                         for i in span.frames)]
    return _Plan(item, keys, cache, done, todo, sum(len(span.frames) for span in current.values()))


def _record(job: _SpanJob) -> None:
    """Note in the item's ``spans.json`` that ``job``'s span is on disk."""
    plan = job.plan
    plan.done[job.fingerprint] = [job.span.first, job.span.stop]
    with atomic.naming_errors(plan.cache):
        atomic.atomic_write_bytes(plan.cache / SPANS, json.dumps(plan.done, indent=1).encode())


def _span_frames(project: Project, folder: Path, job: _SpanJob) -> Iterator[int]:
    """Style ``job``'s span into its item's cache, opening the footage and masks it reads;
    yields each frame written."""
    from kinema.app.export_jobs import open_track, track_footage
    from kinema.media import open_video

    ref, masks = open_track(project, folder, job.plan.item.track_id)
    footage = track_footage(project, folder, ref)
    with open_video(footage, prefetch=False) as reader:
        yield from _style_span(reader, footage, job.plan.keys, masks, ref, job.span,
                               job.plan.item.quality, job.plan.cache)


def _span_task(project: Project, folder: Path, job: _SpanJob) -> int:
    """:func:`_span_frames` to the end, as a Ray task runs it: how many frames it wrote."""
    return sum(1 for _ in _span_frames(project, folder, job))


def _read_spans(cache: Path) -> dict[str, list[int]]:
    """The fingerprints of the spans on disk (none where the cache is new or unreadable)."""
    try:
        data = json.loads((cache / SPANS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fingerprint(base: dict[str, Any], span: Span, masks: Any) -> str:
    """Changes when anything that decides the span's pixels does."""
    from kinema import __version__

    digest = hashlib.sha256()
    for i in span.reads:
        mask = masks.read(i)
        digest.update(b"-" if mask is None else np.packbits(mask).tobytes())
    keys = [None if k is None else [k.frame, k.sha256] for k in (span.left, span.right)]
    state = {**base, "span": [span.first, span.stop], "keys": keys, "masks": digest.hexdigest(),
             "kinema": __version__}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _style_span(reader: Any, footage: Path, keys: Mapping[int, Path], masks: Any, ref: Any,
                span: Span, quality: str, cache: Path) -> Iterator[int]:
    """Propagate one span into the cache, each frame an RGBA PNG written atomically; yields
    each frame written."""
    from kinema.app.propagate_jobs import object_mattes, styled_frames
    from kinema.app.restyle_jobs import TrackMasks
    from kinema.app.style_keys import read_key
    from kinema.generate.propagate import QUALITIES
    from kinema.media.image import encode_png

    mattes = object_mattes(TrackMasks(ref.name, ref.frames, (ref.width, ref.height), masks))
    assert mattes is not None
    reads = span.reads
    used = {k.frame: read_key(k.frame, keys[k.frame], size=reader.size, frames=len(reader),
                              start=reads.start, end=reads.stop, footage=footage)
            for k in (span.left, span.right) if k is not None}
    with tempfile.TemporaryDirectory(prefix="kinema-style-") as scratch:
        if span.left is not None and span.left is span.right:
            frames: Iterator[tuple[int, np.ndarray]] = iter([(span.first, _keyed(
                used[span.first], reader[span.first], mattes(span.first)))])
        else:
            frames = styled_frames(reader, used, mattes, reads.start, reads.stop,
                                   QUALITIES[quality], Path(scratch))
        for i, image in frames:
            if span.first <= i < span.stop:
                alpha = np.where(mattes(i) > 0, 255, 0).astype(np.uint8)
                with atomic.naming_errors(cache):
                    atomic.atomic_write_bytes(cache / FRAME_NAME.format(i),
                                              encode_png(np.dstack([image, alpha])))
                yield i


def _keyed(key: np.ndarray, source: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """A key frame as its layer shows it: the key through the object's matte over the source."""
    from kinema.generate.propagate import compose

    return compose(key.astype(np.float32), source, matte)


@dataclass(frozen=True)
class Stylized:
    """What :func:`stylize` did: a line per key change taken in, and each item's update."""

    changes: list[str]
    updates: list[StyleUpdate]


def stylize(project_path: str | os.PathLike[str], *, track: str | None = None,
            keys: Mapping[int, str | os.PathLike[str]] | None = None,
            quality: str | None = None, ray: bool = False) -> Steps[Stylized]:
    """``kinema stylize``: put painted ``keys`` on ``track``'s style layer (when given), take
    in keys changed on disk, set the ``quality`` of the track's layer (or of every layer), save
    (each an undoable edit), then bring the visible style layers' frames up to date (the
    spans on a Ray cluster with ``ray``). The project stays locked throughout."""
    from kinema.document import store

    if keys and track is None:
        raise InvalidArgumentError("a painted key needs the object it styles",
                                   hint="give --track OBJ --key FRAME=IMAGE to paint a key")
    if quality is not None and quality not in ("fast", "best"):
        raise InvalidArgumentError(f"unknown quality {quality!r}", hint="use fast or best")
    folder = store.project_path(project_path)
    with store.ProjectFile(folder) as pf:
        changes = []
        if track is not None and keys:
            edit, _item = paint_keys(pf.project, folder, track, keys)
            pf.history.do(edit)
            changes += [f"key {frame} painted" for frame in sorted(keys)]
        edit, notes = refresh_keys(pf.project, folder)
        if edit is not None:
            pf.history.do(edit)
        changes += notes
        if quality is not None:
            pf.history.do(_set_quality(pf.project, folder, track, quality))
        if not style_items(pf.project):
            raise InvalidArgumentError("the project has no style layer", path=folder,
                                       hint="make keys with kinema restyle PROJECT, or paint one "
                                            "with --track OBJ --key FRAME=IMAGE")
        pf.save()
        updates = yield from update_styles(pf.project, folder, ray=ray)
    return Stylized(changes, updates)


def _set_quality(project: Project, folder: Path, track: str | None, quality: str) -> Edit:
    """An edit setting the propagation quality of ``track``'s style items (or of all)."""
    from kinema.app.export_jobs import find_track
    from kinema.document.edits import Edit

    track_id = find_track(project, folder, track).id if track is not None else None

    def apply(doc: Project) -> None:
        for _layer, item in style_items(doc):
            if track_id is None or item.track_id == track_id:
                item.quality = quality  # type: ignore[assignment]

    return Edit(f"Style quality {quality}", apply)
