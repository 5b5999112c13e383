"""Retime a clip of a project: slow motion by frame interpolation (``kinema retime``).

A clip slowed ``factor`` times shows, on timeline frame ``j`` after its start, its footage at
``j / (factor * rate)`` seconds into its source range (``rate`` the timeline's): every
``factor``-th frame is a frame the clip showed before, the ones between are in-betweens made
by an interpolation backend (flow, rife, blend). Footage whose frame times vary is slowed
by its frames' real times (an in-between also where a frame was held longer). Only the
clip's source range is read; the last frame of the range is held for the in-betweens after
it (the frame after an out-point is often another shot), and with the cut guard an
in-between across a hard cut inside the range repeats the nearer frame instead of ghosting
two shots.

The frames go to a new ProRes 4444 movie at the timeline's rate in ``PROJECT/media/``
(``SOURCE-CLIP-xN.mov``; an existing file is never overwritten), with
``NAME.mov.provenance.json`` beside it. Then one undoable edit (:func:`retime_edit`) puts the
movie in the media pool with its :class:`~kinema.document.recipes.InterpolateRecipe` (so a
render's provenance names it), replaces the clip by one of the movie over ``factor`` times
as many timeline frames (same id, same start), and ripples what follows (see :data:`Ripple`).

Sound cannot be slowed down here: the clip's own sound (an audio clip of the same media, start
and range) is kept as it was, at normal speed from the clip's first frame, or removed
(:data:`AudioChoice`). Masks are stored per frame of the old footage: a layer masked by a
track refuses to be retimed (its matte would not line up), and another layer masked by a
track of the same footage gets a note saying it now runs at a different speed.
"""

from __future__ import annotations

import math
import os
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from kinema.core.errors import InvalidArgumentError, MediaOpenError, ProjectError
from kinema.core.jobs import Progress, Steps
from kinema.document import store
from kinema.document.edits import Edit
from kinema.document.model import AudioTrack, ClipItem, Project, VideoLayer

if TYPE_CHECKING:
    from kinema.document.model import MediaRef
    from kinema.document.recipes import InterpolateRecipe

MEDIA = "media"
"""The folder of a project that media kinema makes for its timeline (retimed clips) go to."""

Ripple = Literal["all", "layer", "none"]
"""What happens to what follows a clip that gets longer: ``all`` moves every item (every layer
and audio track) that starts at or after the clip's old end later by the added frames, with
the layers' keyframes there (the rest of the edit stays in sync: the default); ``layer`` moves
only the clip's layer's items (and their own sound) and keyframes; ``none`` moves nothing and
refuses when the longer clip would run over the next item on its layer. Keyframes of the clip's
layer inside the clip are stretched with it."""
RIPPLES: tuple[str, ...] = get_args(Ripple)

AudioChoice = Literal["keep", "remove"]
"""The clip's own sound (an audio clip of the same media, start and source range): ``keep`` it
as it was (normal speed, in sync at the clip's first frame), or ``remove`` it."""
AUDIO_CHOICES: tuple[str, ...] = get_args(AudioChoice)


@dataclass(frozen=True)
class Retimed:
    """What :func:`retime_clip` did: clip ``clip_id`` now shows ``media_id`` (``movie``) over
    ``frames`` timeline frames (``before`` until now), ``factor`` times slower; ``moved``
    items rippled by ``frames - before``; the timeline lasts ``duration`` frames; ``held``
    in-betweens repeat a frame at a hard cut (``cuts``: source frames a cut begins at);
    ``notes`` are what the user should know (sound, masks)."""

    clip_id: str
    media_id: str
    movie: Path
    factor: int
    before: int
    frames: int
    moved: int
    duration: int
    cuts: tuple[int, ...]
    held: int
    notes: tuple[str, ...]


def retime_factor(factor: int | None = None, speed: str | float | Fraction | None = None) -> int:
    """How many times slower: ``factor`` (an integer, 2 or more) or ``speed`` (``1/factor``:
    0.5, 0.25, ``1/3``); exactly one of them."""
    from kinema.core.timebase import to_fraction

    if (factor is None) == (speed is None):
        raise InvalidArgumentError("give --factor or --speed (one of them)",
                                   hint="--factor 2 (or --speed 0.5) plays the clip two times slower")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise InvalidArgumentError(f"--factor must be a whole number, 2 or more, got {factor}",
                                       hint="--factor 2 plays the clip two times slower")
        return factor
    try:
        value = to_fraction(speed)  # type: ignore[arg-type]
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise InvalidArgumentError(f"--speed is not a number: {speed!r}",
                                   hint="give 0.5, 0.25 or 1/3") from exc
    if not 0 < value < 1 or (1 / value).denominator != 1:
        raise InvalidArgumentError(f"--speed must be 1/N for a whole N of 2 or more (0.5, 1/3, 0.25), "
                                   f"got {speed}", hint="slow motion only: in-betweens are made, "
                                   "frames are never dropped")
    return int(1 / value)


def clip_frames(item: ClipItem, rate: Fraction) -> int:
    """How many timeline frames (at ``rate``) clip ``item`` covers."""
    return math.ceil(item.source_range.duration.seconds * rate)


def _item_frames(item: Any, rate: Fraction) -> int:
    return clip_frames(item, rate) if isinstance(item, ClipItem) else int(item.duration)


def find_clip(project: Project, clip_id: str) -> tuple[VideoLayer, ClipItem]:
    """The video layer holding clip ``clip_id`` and the clip; an error naming the clips there are
    when it is unknown, and saying what it is when it is not a clip of a video layer."""
    for layer in project.timeline.video_layers:
        for item in layer.items:
            if item.id == clip_id:
                if not isinstance(item, ClipItem):
                    raise InvalidArgumentError(f"{clip_id!r} is a {item.kind} item, not a clip",
                                               hint="retime a clip of footage")
                return layer, item
    if any(i.id == clip_id for t in project.timeline.audio_tracks for i in t.items):
        raise InvalidArgumentError(f"{clip_id!r} is a clip on an audio track; sound cannot be retimed",
                                   hint="give the id of the video clip")
    clips = [i.id for layer in project.timeline.video_layers for i in layer.items
             if isinstance(i, ClipItem)]
    raise InvalidArgumentError(f"no clip {clip_id!r} in the project",
                               hint=f"its clips: {', '.join(clips)}" if clips else
                               "the project has no clips")


def linked_sound(project: Project, clip: ClipItem) -> list[tuple[AudioTrack, ClipItem]]:
    """The audio clips that are ``clip``'s own sound: same media, start and source range."""
    return [(track, item) for track in project.timeline.audio_tracks for item in track.items
            if item.media_id == clip.media_id and item.start == clip.start
            and item.source_range == clip.source_range]


def check_masks(project: Project, layer: VideoLayer, clip: ClipItem) -> list[str]:
    """Refuse a clip on a masked layer (masks are per frame of the old footage, so the matte
    would no longer line up); the notes for other layers masked by a track of its footage."""
    if layer.mask is not None:
        raise InvalidArgumentError(
            f"layer {layer.name!r} is masked by track {layer.mask.track_id!r}, stored per frame "
            f"of the footage: its matte would not line up with clip {clip.id!r} slowed down",
            hint="take the mask off the layer (or move the clip to a layer without one) first")
    notes = []
    for other in project.timeline.video_layers:
        track = project.mask_tracks.get(other.mask.track_id) if other.mask is not None else None
        if other is not layer and track is not None and track.media_id == clip.media_id:
            notes.append(f"layer {other.name!r} is masked by track {track.name!r} of the same "
                         f"footage at normal speed: it no longer lines up with the slowed clip "
                         f"{clip.id!r}")
    return notes


def retime_edit(clip_id: str, ref: MediaRef, recipe: InterpolateRecipe, factor: int, *,
                ripple: Ripple = "all", audio: AudioChoice = "keep") -> Edit:
    """One undoable edit: media ``ref`` (which kinema made by ``recipe``) joins the pool, clip
    ``clip_id`` is replaced by one showing all of it over ``factor`` times as many timeline
    frames (same id and start; ``ref`` must hold exactly that many frames), and what follows is
    rippled (:data:`Ripple`); the clip's own sound is kept or removed (:data:`AudioChoice`)."""
    from kinema.document.edits import record_media
    from kinema.document.timing import TimeRange

    if ripple not in RIPPLES:
        raise InvalidArgumentError(f"--ripple must be one of {', '.join(RIPPLES)}, got {ripple!r}")
    if audio not in AUDIO_CHOICES:
        raise InvalidArgumentError(f"--audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")

    def apply(p: Project) -> None:
        tl = p.timeline
        layer, clip = find_clip(p, clip_id)
        check_masks(p, layer, clip)
        before = clip_frames(clip, tl.rate)
        frames = before * factor
        if ref.frames != frames:
            raise InvalidArgumentError(f"{Path(ref.path).name} holds {ref.frames} frames, not the "
                                       f"{frames} a clip of {before} frames {factor} times slower needs")
        old_end, extra = clip.start + before, frames - before
        sound = linked_sound(p, clip)
        record_media(ref, recipe).apply(p)
        new = ClipItem(id=clip.id, media_id=ref.id, start=clip.start,
                       source_range=TimeRange.from_frames(0, frames, tl.rate))
        layer.items[layer.items.index(clip)] = new
        if audio == "remove":
            for track, item in sound:
                track.items.remove(item)
        later = [(lay, item) for lay in tl.video_layers for item in lay.items
                 if item.start >= old_end and item is not new]
        if ripple == "none":
            hit = next((item for lay, item in later if lay is layer and item.start < old_end + extra), None)
            if hit is not None:
                raise InvalidArgumentError(
                    f"clip {clip_id!r} slowed down would run over {hit.id!r} on layer "
                    f"{layer.name!r} (it would end at frame {old_end + extra}, {hit.id!r} starts "
                    f"at {hit.start})", hint="use --ripple all (or layer) to move what follows")
            moving: list[Any] = []
            layers: list[VideoLayer] = []
        elif ripple == "layer":
            moving = [item for lay, item in later if lay is layer]
            moving += [s for item in moving if isinstance(item, ClipItem)
                       for _, s in linked_sound(p, item)]
            layers = [layer]
        else:
            moving = [item for _, item in later]
            moving += [i for t in tl.audio_tracks for i in t.items if i.start >= old_end]
            layers = list(tl.video_layers)
        for item in {id(i): i for i in moving}.values():
            item.start += extra
        for lay in tl.video_layers:
            tf = lay.transform
            for prop in (tf.position, tf.scale, tf.rotation, tf.opacity):
                for key in prop.keyframes:
                    if lay is layer and clip.start < key.frame < old_end:
                        key.frame = clip.start + (key.frame - clip.start) * factor
                    elif key.frame >= old_end and any(lay is m for m in layers):
                        key.frame += extra
        ends = [item.start + _item_frames(item, tl.rate) for lay in tl.video_layers for item in lay.items]
        grown = tl.duration + extra if ripple == "all" and tl.duration > clip.start else tl.duration
        tl.duration = max([grown, *ends])

    return Edit(f"Retime {clip_id} x{factor}", apply)


def retime_positions(reader: Any, clip: ClipItem, rate: Fraction, factor: int,
                     frames: int) -> Iterator[tuple[int, Fraction]]:
    """Where each of ``frames * factor`` retimed frames falls in ``reader``'s footage: ``(i,
    t)``, ``t`` of the way from source frame ``i`` to ``i + 1``. Retimed frame ``j`` shows the
    footage ``j / (factor * rate)`` seconds into the clip's source range (at the source's
    exact constant rate, or its frames' real times when it varies); the last frame the clip
    showed is held from its time on, so nothing outside the clip is read."""
    rng = clip.source_range
    s0 = rng.start_time.seconds
    vfr = reader.is_vfr and len(reader) > 1
    times = [reader.timestamp(i) for i in range(len(reader))] if vfr else None

    def at(seconds: Fraction) -> tuple[int, Fraction]:
        if times is None:
            position = seconds * reader.fps
            i = math.floor(position)
            return i, position - i
        i = max(bisect_right(times, seconds) - 1, 0)
        if i + 1 >= len(times):
            return i, Fraction(0)
        return i, (seconds - times[i]) / (times[i + 1] - times[i])

    last = min(at(s0 + Fraction(frames - 1) / rate)[0], len(reader) - 1)
    for j in range(frames * factor):
        i, t = at(s0 + Fraction(j, factor) / rate)
        yield (last, Fraction(0)) if i >= last else (max(i, 0), t)


def _movie_path(folder: Path, source: Path, clip_id: str, factor: int) -> Path:
    stem = re.sub(r"[^\w.-]+", "-", f"{source.stem}-{clip_id}-x{factor}").strip("-.") or "retimed"
    media = folder / MEDIA
    names = (media / (f"{stem}.mov" if k == 1 else f"{stem}-{k}.mov") for k in count(1))
    return next(p for p in names if not p.exists() and not Path(f"{p}.provenance.json").exists())


@dataclass(frozen=True)
class RetimedMovie:
    """What :func:`write_retimed` wrote: ``movie`` (and its record beside it) for clip ``clip``
    as it was, slowed ``factor`` times from ``before`` timeline frames, made by ``recipe``
    (its id ``interpolate-NAME.mov`` until the movie joins a project); ``cuts``, ``held`` as in
    :class:`Retimed`; ``notes`` from the mask check; ``total`` the progress total."""

    movie: Path
    recipe: InterpolateRecipe
    clip: ClipItem
    factor: int
    before: int
    cuts: tuple[int, ...]
    held: int
    notes: tuple[str, ...]
    total: int

    def discard(self) -> None:
        """Delete the movie and its record (the edit that would use them failed)."""
        self.movie.unlink(missing_ok=True)
        Path(f"{self.movie}.provenance.json").unlink(missing_ok=True)


def write_retimed(project: Project, folder: Path, clip_id: str, factor: int, *,
                  backend: str = "flow", cut_guard: bool = True, device: Any = None,
                  interpolator: Any = None) -> Steps[RetimedMovie]:
    """The frames of clip ``clip_id`` of ``project`` (in ``folder``) slowed ``factor`` times,
    written into a new movie in ``folder/media/`` with its record beside it; the project is
    not changed (:func:`retime_edit` does that, the editor on its own history). Checks come
    first; on any failure or Ctrl-C no file is left (nor ``media/``, if this made it)."""
    import contextlib

    from kinema.app import operation_records as records
    from kinema.app.evaluate import media_paths
    from kinema.document.recipes import InputRef, InterpolateRecipe
    from kinema.media import open_video
    from kinema.models import backends

    layer, clip = find_clip(project, clip_id)
    notes = check_masks(project, layer, clip)
    rate = project.timeline.rate
    before = clip_frames(clip, rate)
    if before < 1:
        raise InvalidArgumentError(f"clip {clip_id!r} is empty", path=folder)
    path = media_paths(project, folder)[0].get(clip.media_id)
    if path is None:
        raise MediaOpenError(f"clip {clip_id!r}'s footage is missing: {project.media[clip.media_id].path}",
                             path=folder, hint="relink it (kinema relink) or put the file back")
    if interpolator is None:
        backends.get("interpolate", backend)  # an unknown name is an error before any work
    media_dir = folder / MEDIA
    made_dir = not media_dir.exists()
    movie: Path | None = None
    try:
        with open_video(path, prefetch=False) as reader:
            if reader.has_alpha:
                raise InvalidArgumentError(f"clip {clip_id!r}'s footage has an alpha channel; only "
                                           "opaque footage is retimed", path=path)
            positions = list(retime_positions(reader, clip, rate, factor, before))
            first = min(i for i, _ in positions)
            last = max(i for i, _ in positions)
            guard = cut_guard and last > first and min(reader.size) >= _min_cut_side()
            total = (last - first + 1 if guard else 0) + len(positions)
            cuts: tuple[int, ...] = ()
            if guard:
                cuts = yield from _hard_cuts(reader, first, last, total)
            model = interpolator or backends.create("interpolate", backend, device=device)
            media_dir.mkdir(exist_ok=True)
            movie = _movie_path(folder, path, clip_id, factor)
            held = yield from _write(reader, movie, rate, positions, cuts, model, total)
        source = records.Source.of(path)
        recipe = InterpolateRecipe(id=f"interpolate-{movie.name}", backend=backend, factor=factor,
                                   cut_guard=cut_guard, model=records.model_of(model),
                                   source_range=clip.source_range, played_at=rate,
                                   **records.placement_of(model),
                                   inputs=[InputRef(id=clip.media_id, sha256=source.sha256)])
        records.write_record(movie, recipe, [source])
    except BaseException:
        if movie is not None:
            movie.unlink(missing_ok=True)
            Path(f"{movie}.provenance.json").unlink(missing_ok=True)
        if made_dir:
            with contextlib.suppress(OSError):
                media_dir.rmdir()
        raise
    if cuts:
        notes.append(f"cut guard: hard cut(s) at source frame(s) {', '.join(map(str, cuts))}; {held} "
                     "frame(s) there repeat a source frame (--no-cut-guard to interpolate across them)")
    return RetimedMovie(movie, recipe, clip, factor, before, cuts, held, tuple(notes), total)


def retime_clip(project_path: str | os.PathLike[str], clip_id: str, *, factor: int | None = None,
                speed: str | float | Fraction | None = None, backend: str = "flow",
                ripple: Ripple = "all", audio: AudioChoice = "keep", cut_guard: bool = True,
                device: Any = None, interpolator: Any = None) -> Steps[Retimed]:
    """Clip ``clip_id`` of ``project_path`` ``factor`` times slower (or at ``speed``), its
    in-betweens made by ``backend``: the movie written into ``PROJECT/media/``
    (:func:`write_retimed`), then one undoable edit (:func:`retime_edit`), saved (the previous
    save stays as project.json.bak).

    Everything is checked before any frame is made (the clip, the factor, the options, the
    masks, the footage, that the project can be written); progress is one event per frame
    scanned for cuts and per frame written. On any failure, or Ctrl-C, nothing is left: no
    movie, no record, the project as it was."""
    import contextlib

    from kinema.app import operation_records as records

    n = retime_factor(factor, speed)
    if ripple not in RIPPLES:
        raise InvalidArgumentError(f"--ripple must be one of {', '.join(RIPPLES)}, got {ripple!r}")
    if audio not in AUDIO_CHOICES:
        raise InvalidArgumentError(f"--audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    folder = store.project_path(project_path)
    store.check_writable(folder)
    if not os.access(folder, os.W_OK) or not os.access(folder / store.DOCUMENT, os.W_OK):
        raise ProjectError("is read-only", path=folder,
                           hint="make the project folder writable, or copy it somewhere writable")
    made_dir = not (folder / MEDIA).exists()
    written = yield from write_retimed(store.load(folder), folder, clip_id, n, backend=backend,
                                       cut_guard=cut_guard, device=device, interpolator=interpolator)
    saved = False
    try:
        with store.ProjectFile(folder) as pf:
            _, now = find_clip(pf.project, clip_id)
            if now != written.clip:
                raise ProjectError(f"clip {clip_id!r} changed while it was being retimed", path=folder,
                                   hint="run the command again")
            ref = records.pool_ref(pf.project, folder, written.movie)
            recipe = written.recipe.model_copy(update={"id": f"interpolate-{ref.id}"})
            sound = linked_sound(pf.project, now)
            starts = _starts(pf.project)
            pf.history.do(retime_edit(clip_id, ref, recipe, n, ripple=ripple, audio=audio))
            pf.save()
            saved = True
            moved = sum(1 for k, start in _starts(pf.project).items()
                        if k != clip_id and starts.get(k) != start)
            duration = pf.project.timeline.duration
    except BaseException:
        if not saved:
            written.discard()
            if made_dir:
                with contextlib.suppress(OSError):
                    (folder / MEDIA).rmdir()
        raise
    notes = list(written.notes)
    if sound and audio == "keep":
        notes.append(f"the clip's sound ({', '.join(i.id for _, i in sound)}) is kept as it was: "
                     f"it plays at normal speed from the clip's first frame (--audio remove takes it out)")
    elif sound:
        notes.append(f"the clip's sound ({', '.join(i.id for _, i in sound)}) was removed")
    for note in notes:
        yield Progress(written.total, written.total, "frames", note)
    return Retimed(clip_id, ref.id, written.movie, n, written.before, written.before * n, moved,
                   duration, written.cuts, written.held, tuple(notes))


def _starts(project: Project) -> dict[str, int]:
    """Where each item of the timeline starts, by id."""
    tl = project.timeline
    return {i.id: i.start for lay in [*tl.video_layers, *tl.audio_tracks] for i in lay.items}


def _min_cut_side() -> int:
    from kinema.search.shots import MIN_SIDE

    return MIN_SIDE


def _hard_cuts(reader: Any, first: int, last: int, total: int) -> Steps[tuple[int, ...]]:
    """The source frames in ``(first, last]`` a hard cut begins at (kinema's shot detector on
    the range only), with progress out of ``total``."""
    from kinema.app.shot_jobs import DEFAULT_WIDTH, _work_size
    from kinema.search.shots import ShotDetector

    detector = ShotDetector(pixels="yuv")
    size = _work_size(reader.path, reader.size, DEFAULT_WIDTH)
    found = []
    for k, frame in enumerate(reader.analysis_frames(size, first, last + 1)):
        found += detector.push(first + k, frame)
        yield Progress(k + 1, total, "frames")
    found += detector.flush()
    return tuple(sorted({t.boundary for t in found if t.kind == "cut" and first < t.boundary <= last}))


def _write(reader: Any, movie: Path, rate: Fraction, positions: Sequence[tuple[int, Fraction]],
           cuts: tuple[int, ...], model: Any, total: int) -> Steps[int]:
    """The retimed frames into ``movie`` (ProRes 4444 at ``rate``); returns how many repeat a
    source frame at a cut."""
    from kinema.app.restore_jobs import in_betweens, pair_reader
    from kinema.media.writer import VideoWriter

    frame = pair_reader(reader)
    held = 0
    done = total - len(positions)
    with VideoWriter(movie, rate, reader.size, codec="prores4444") as writer:
        for k, (image, repeated) in enumerate(in_betweens(positions, cuts, frame, model)):
            writer.write(image)
            held += repeated
            yield Progress(done + k + 1, total, "frames")
    return held
