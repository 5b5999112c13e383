"""Segment and track: prompts on frames of a video in, masks for every frame out.

Backends come from :mod:`kinema.models.backends`: ``classic`` (optical flow, colour, GrabCut;
no weights; the default tracker), ``auto`` (one click on the bundled models, else GrabCut; the
default image segmenter), ``sam2`` (Segment Anything 2 through transformers) and any other
registered for the task. Text prompts go through a detector first and become boxes. Results
go to a file (label-map ``.npz``, palette PNGs, ProRes matte) and/or into a project's mask
tracks.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import FrameSource, Mask
from kinema.core.jobs import Progress, Steps
from kinema.models import backends
from kinema.vision.base import ImageSegmenter, Prompt, VideoTracker

if TYPE_CHECKING:
    from kinema.app.mask_outputs import InOrder, LabelSpool
    from kinema.media.reader import VideoReader

# Decoded frames a track job's reader keeps around the frame being tracked, counted as 8-bit
# 4:2:0 frames of the video's size: forwards the decoder simply runs ahead; backwards the
# reader needs room for its whole prefetch window (3 * PREFETCH_WINDOW frames), or it goes
# back to a keyframe for almost every frame.
TRACK_CACHE_FRAMES = 48


@dataclass(frozen=True)
class Cleanup:
    """Clean-ups applied to tracked masks: holes up to ``fill_holes`` pixels filled, pieces
    under ``min_island`` pixels dropped, and a per-pixel majority over ``smooth`` frames each
    side against edge chatter."""

    fill_holes: int = 0
    min_island: int = 0
    smooth: int = 0

    def frame(self, masks: dict[int, Mask]) -> dict[int, Mask]:
        from kinema.vision.maskops import drop_islands, fill_holes

        out = {}
        for object_id, mask in masks.items():
            if self.min_island:
                mask = drop_islands(mask, self.min_island)
            if self.fill_holes:
                mask = fill_holes(mask, max_area=self.fill_holes)
            out[object_id] = mask
        return out


@dataclass(frozen=True)
class ModelChoice:
    """Which weights a model backend uses, and where it runs."""

    model: str | None = None  # a folder, a registry name, or None for the default
    detector: str | None = None
    device: str | None = None
    dtype: str | None = None
    min_score: float = 0.35  # text detections below this are ignored
    max_objects: int = 1  # per text prompt: the best matches become objects


DEFAULT_SEGMENTER = "auto"  # one click on the bundled models, else GrabCut with a warning


def click_backend(track_backend: str) -> str:
    """The image segmenter for clicks and boxes beside ``track_backend``: the backend's own
    where it loads weights of its own and segments images too (sam2), else the embedded default
    (:data:`DEFAULT_SEGMENTER`), which needs no download and falls back to GrabCut."""
    tracker = backends.get("track", track_backend)
    if tracker.model_task is not None and track_backend in backends.names("segment"):
        return track_backend
    return DEFAULT_SEGMENTER


def backend_names(task: str = "track") -> list[str]:
    """The names of ``task``'s backends (see :mod:`kinema.models.backends`), as the CLI and the
    editor offer them."""
    return backends.names(task)


def check_backend(backend: str, task: str = "track") -> None:
    """Raise the one-line error that lists the known backends unless ``backend`` is ``task``'s."""
    backends.get(task, backend)


def make_tracker(backend: str, frames: FrameSource, choice: ModelChoice = ModelChoice()) -> VideoTracker:
    """A video tracker of ``backend`` over ``frames``."""
    return backends.create("track", backend, frames, model=choice.model, device=choice.device,
                           dtype=choice.dtype)


def make_segmenter(backend: str, choice: ModelChoice = ModelChoice()) -> ImageSegmenter:
    """An image segmenter of ``backend`` (for clicks, a box or a mask on one frame)."""
    return backends.create("segment", backend, model=choice.model, device=choice.device,
                           dtype=choice.dtype)


def ground_text(frames: FrameSource, prompts: Sequence[Prompt],
                choice: ModelChoice = ModelChoice()) -> list[Prompt]:
    """``prompts`` with each text prompt replaced by box prompts from the text detector: up to
    ``choice.max_objects`` boxes scoring at least ``choice.min_score``; the best keeps the
    prompt's object id, the others become new objects."""
    if not any(p.text for p in prompts):
        return list(prompts)
    detector = backends.create("detect", "grounding-dino", model=choice.detector, device=choice.device,
                               dtype=choice.dtype)
    taken = {p.object_id for p in prompts}
    out: list[Prompt] = []
    for prompt in prompts:
        if not prompt.text:
            out.append(prompt)
            continue
        found = detector.detect(frames[prompt.frame], prompt.text, box_threshold=choice.min_score,
                                max_boxes=choice.max_objects)
        if not found:
            raise InvalidArgumentError(f"nothing matching {prompt.text!r} was found on frame "
                                       f"{prompt.frame}", hint="try other words, a box or a click")
        for k, detection in enumerate(found):
            object_id = prompt.object_id if k == 0 else max(taken) + 1
            taken.add(object_id)
            out.append(replace(prompt, text=None, box=detection.box, object_id=object_id))
    return out


def label_map(masks: dict[int, Mask], shape: tuple[int, int]) -> np.ndarray:
    """One ``uint8`` label map from masks by object id (later ids win where they overlap)."""
    labels = np.zeros(shape, np.uint8)
    for object_id in sorted(masks):
        labels[masks[object_id]] = object_id
    return labels


def segment_frame(frames: FrameSource, prompts: Sequence[Prompt], backend: str = DEFAULT_SEGMENTER,
                  choice: ModelChoice = ModelChoice()) -> np.ndarray:
    """The label map of one frame (all ``prompts`` must be on it)."""
    frame_ids = {p.frame for p in prompts}
    if len(frame_ids) != 1:
        raise InvalidArgumentError("segment works on one frame; give every prompt the same frame",
                                   hint="use kinema track for several frames")
    (index,) = frame_ids
    if not 0 <= index < len(frames):
        raise InvalidArgumentError(f"frame {index} is outside the video (0..{len(frames) - 1})")
    prompts = ground_text(frames, prompts, choice)
    frame = frames[index]
    segmenter = make_segmenter(backend, choice)
    masks = {}
    for object_id in sorted({p.object_id for p in prompts}):
        merged = _merge([p for p in prompts if p.object_id == object_id])
        masks[object_id] = segmenter.segment(frame, merged)[0].mask
    return label_map(masks, frame.shape[:2])


def _merge(prompts: list[Prompt]) -> Prompt:
    """One object's prompts on one frame as a single prompt (all clicks, the last box/mask)."""
    first = prompts[0]
    points = tuple(pt for p in prompts for pt in p.points)
    labels = tuple(label for p in prompts for label in p.labels)
    box = next((p.box for p in reversed(prompts) if p.box is not None), None)
    mask = next((p.mask for p in reversed(prompts) if p.mask is not None), None)
    return Prompt(frame=first.frame, object_id=first.object_id, points=points, labels=labels,
                  box=box, mask=mask)


def tracked_range(frames: int, prompts: Sequence[Prompt], start: int | None, end: int | None,
                  reverse: bool) -> tuple[int, int]:
    """The frames ``[lo, hi)`` :func:`track` goes through (see there); an error names the
    valid range when a prompt, ``start`` or ``end`` is outside the video."""
    if not prompts:
        raise InvalidArgumentError(
            "nothing to track: give at least one prompt",
            hint="--point X,Y@FRAME, --box X0,Y0,X1,Y1@FRAME, --text T@FRAME or --mask PNG@FRAME")
    prompted = sorted({p.frame for p in prompts})
    if prompted[0] < 0 or prompted[-1] >= frames:
        raise InvalidArgumentError(f"a prompt is on a frame outside the video (0..{frames - 1})")
    if start is not None and not 0 <= start < frames:
        raise InvalidArgumentError(f"start frame {start} is outside the video (0..{frames - 1})")
    if end is not None and not 1 <= end <= frames:
        raise InvalidArgumentError(f"end frame {end} is outside 1..{frames} (the frame to stop "
                                   f"before; the video has {frames} frames)")
    lo = prompted[0] if start is None and not reverse else (start or 0)
    hi = prompted[-1] + 1 if end is None and reverse else (frames if end is None else end)
    if lo >= hi:
        raise InvalidArgumentError(f"empty frame range {lo}:{hi}", hint="start before the end")
    first = hi - 1 if reverse else lo
    if first not in prompted:
        raise InvalidArgumentError(
            f"tracking {'back' if reverse else 'on'} from frame {first}, which has no prompt",
            hint=f"prompts are on frames {', '.join(map(str, prompted))}; set --start/--end to one")
    return lo, hi


def track(frames: FrameSource, prompts: Sequence[Prompt], *, backend: str = "classic",
          start: int | None = None, end: int | None = None, reverse: bool = False,
          choice: ModelChoice = ModelChoice(),
          cleanup: Cleanup = Cleanup()) -> Iterator[tuple[int, np.ndarray]]:
    """Label maps ``(frame, labels)`` for frames ``[start, end)``, in the order tracked: from
    ``start`` (default: the first prompted frame) up, or with ``reverse`` from ``end - 1``
    (default: the last prompted frame) down to ``start``."""
    check_backend(backend)
    lo, hi = tracked_range(len(frames), prompts, start, end, reverse)
    first = hi - 1 if reverse else lo
    prompts = ground_text(frames, prompts, choice)
    tracker = make_tracker(backend, frames, choice)
    for object_id in sorted({p.object_id for p in prompts}):
        for frame in sorted({p.frame for p in prompts if p.object_id == object_id}):
            tracker.add_prompt(_merge([p for p in prompts
                                       if p.object_id == object_id and p.frame == frame]))
    shape = frames[first].shape[:2]
    stop = lo - 1 if reverse else hi
    for index, masks in tracker.propagate(first, stop, reverse=reverse):
        yield index, label_map(cleanup.frame(masks), shape)


def track_to(video: str | os.PathLike[str], prompts: Sequence[Prompt], out: str | os.PathLike[str] | None,
             *, project: str | os.PathLike[str] | None = None, backend: str = "classic",
             start: int | None = None, end: int | None = None, reverse: bool = False,
             choice: ModelChoice = ModelChoice(), cleanup: Cleanup = Cleanup(),
             overwrite: bool = False) -> Steps[None]:
    """Track ``prompts`` through ``video`` and write the masks to ``out`` (see
    :func:`kinema.app.mask_outputs.open_labels`) and/or into ``project``'s mask tracks."""
    if project is not None:  # fail now, not after all the tracking, if it cannot be written
        from kinema.document.store import check_writable

        check_writable(project)
    from kinema.app.mask_outputs import LabelSpool

    if out is None and project is None:
        raise InvalidArgumentError("nowhere to put the masks", hint="give -o OUT and/or --project P")
    if out is not None:
        from kinema.core.atomic import check_not_input

        check_not_input(out, [video, project])
    with ExitStack() as held:
        reader = held.enter_context(_open_for_tracking(video, reverse))
        n, (w, h) = len(reader), reader.size
        lo, hi = tracked_range(n, prompts, start, end, reverse)
        spool = held.enter_context(LabelSpool(n, (h, w))) if project is not None else None
        tracked = track(reader, prompts, backend=backend, start=start, end=end, reverse=reverse,
                        choice=choice, cleanup=cleanup)
        if cleanup.smooth:
            tracked = smoothed(tracked, cleanup.smooth)
        sink = _sink(out, reader, overwrite, reverse) if out is not None else None
        yield from _deliver(tracked, sink, spool, hi - lo)
        if spool is not None:
            settings = {"start": lo, "end": hi, "reverse": reverse, **asdict(cleanup),
                        **{k: v for k, v in asdict(choice).items() if k not in ("model", "detector")}}
            _store_in_project(project, video, prompts, spool, (w, h), n,
                              backend=backend, choice=choice, settings=settings)


def _open_for_tracking(video: str | os.PathLike[str], reverse: bool) -> VideoReader:
    """``video`` opened with a frame cache of its own, sized for tracking in one direction:
    the process-wide cache would keep up to its whole budget of frames already tracked."""
    from kinema.media import VideoReader, open_video

    with open_video(video, cache_bytes=0, prefetch=False) as probe:
        w, h = probe.size
    frames = 3 * VideoReader.PREFETCH_WINDOW if reverse else TRACK_CACHE_FRAMES
    return open_video(video, cache_bytes=frames * w * h * 3 // 2)


def _sink(out: str | os.PathLike[str], reader: VideoReader, overwrite: bool, reverse: bool) -> InOrder:
    """The writer for ``out`` (see :func:`~kinema.app.mask_outputs.open_labels`), fed in
    tracking order."""
    from kinema.app.mask_outputs import InOrder, open_labels

    w, h = reader.size
    return InOrder(open_labels(out, len(reader), (w, h), reader.fps, overwrite), len(reader), (h, w),
                   backwards=reverse)


def _deliver(tracked: Iterator[tuple[int, np.ndarray]], sink: InOrder | None,
             spool: LabelSpool | None, total: int) -> Steps[None]:
    """Each label map of ``tracked`` handed to ``sink`` and ``spool`` as it comes, with
    progress ``(done, total)``; the output is complete when this ends, and gone if it fails."""
    try:
        for done, (index, labels) in enumerate(tracked, 1):
            if sink is not None:
                sink.put(index, labels)
            if spool is not None:
                spool.put(index, labels)
            yield Progress(done, total)
        if sink is not None:
            sink.close()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise


def smoothed(tracked: Iterable[tuple[int, np.ndarray]],
             radius: int) -> Iterator[tuple[int, np.ndarray]]:
    """``tracked`` with each label map made the per-pixel majority, object by object, over
    ``radius`` frames each side (within the tracked frames), in the same order; it holds
    ``2 * radius + 1`` frames at most."""
    window: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * radius + 1)
    last, done = -1, 0  # positions in ``tracked``: the newest frame read, the next to give
    for last, item in enumerate(tracked):
        window.append(item)
        if last - done == radius:  # frame ``done`` has all its neighbours
            yield _voted(window, last, done, radius)
            done += 1
    for position in range(done, last + 1):
        yield _voted(window, last, position, radius)


def _voted(window: deque[tuple[int, np.ndarray]], last: int, position: int,
           radius: int) -> tuple[int, np.ndarray]:
    """The frame at ``position`` in the stream, voted on by its neighbours in ``window``
    (which ends at ``last``); where objects overlap, later ids win."""
    first = last - len(window) + 1
    index, labels = window[position - first]
    stack = [other for at, (_, other) in enumerate(window, first) if abs(at - position) <= radius]
    voted = np.zeros_like(labels)
    for object_id in sorted({int(v) for m in stack for v in np.unique(m) if v}):
        votes = sum((m == object_id).astype(np.int32) for m in stack)
        voted[votes * 2 > len(stack)] = object_id
    return index, voted


def _store_in_project(project: str | os.PathLike[str], video: str | os.PathLike[str],
                      prompts: Sequence[Prompt], results: LabelSpool,
                      size: tuple[int, int], n: int, *, backend: str, choice: ModelChoice,
                      settings: dict[str, object]) -> None:
    """Each object becomes (or replaces) mask track ``obj<K>`` on the project's media for
    ``video``, in the K-th object colour, with the recipe that made it; prompted frames are
    keyframes, the rest propagated."""
    from kinema.app.track_recipes import track_models, track_recipe
    from kinema.document import edits, store
    from kinema.document.masktrack import CHUNK, FrameState, MaskTrackStore
    from kinema.document.model import MaskTrackRef, object_colour

    folder = store.project_path(project)
    source = Path(video).resolve()
    w, h = size
    with store.ProjectFile(folder) as pf:
        media = next((m for m in pf.project.media.values() if Path(m.path).resolve() == source), None)
        if media is None:
            raise InvalidArgumentError("the video is not in the project's media", path=source,
                                       hint="track a video the project uses (kinema media lists them)")
        models = track_models(backend, prompts, choice.model, choice.detector)
        object_ids = sorted({p.object_id for p in prompts} | results.object_ids())
        frames = results.frames()  # one contiguous run of frames
        for object_id in object_ids:
            track_id = f"obj{object_id}"
            own = [p for p in prompts if p.object_id == object_id]
            masks = MaskTrackStore(folder / "masks" / track_id, n, w, h, create=True)
            masks.clear(0, n)  # the track is what this run made: no frames of an earlier one
            # runs that end on chunk boundaries: each chunk file is written once, memory bounded
            ends = [*range((frames[0] // CHUNK + 1) * CHUNK, frames[-1] + 1, CHUNK), frames[-1] + 1]
            begin = frames[0]
            for stop in ends:
                masks.write_many(begin, [results[i] == object_id for i in range(begin, stop)],
                                 FrameState.PROPAGATED)
                begin = stop
            for index in sorted({p.frame for p in own} & set(frames)):
                masks.write(index, results[index] == object_id, FrameState.KEYFRAME)
            ref = MaskTrackRef(id=track_id, name=f"object {object_id}", color=object_colour(object_id),
                               media_id=media.id, frames=n, width=w, height=h)
            recipe = track_recipe(track_id, media, own, backend=backend, models=models,
                                  settings=settings)
            pf.history.do(edits.record_mask_track(ref, recipe))
        pf.save()


def segment_video_frame(video: str | os.PathLike[str], prompts: Sequence[Prompt],
                        out: str | os.PathLike[str], *, backend: str = DEFAULT_SEGMENTER,
                        choice: ModelChoice = ModelChoice(), overwrite: bool = False) -> Path:
    """Segment one frame of ``video`` and write its label map: ``OUT.png`` (a palette PNG,
    DAVIS style) or ``OUT.npz`` (``masks``: ``uint8 (1, H, W)``)."""
    from kinema.app.mask_outputs import davis_palette
    from kinema.core.atomic import atomic_write_bytes, check_can_write
    from kinema.media import open_video
    from kinema.media.image import encode_palette_png

    target = Path(out)
    if target.suffix.lower() not in (".png", ".npz"):
        raise InvalidArgumentError(f"cannot write a frame's masks as '{target.suffix}'", path=target,
                                   hint="use OUT.png or OUT.npz")
    check_can_write(target, overwrite)
    with open_video(video) as reader:
        labels = segment_frame(reader, prompts, backend, choice)
    if target.suffix.lower() == ".png":
        data = encode_palette_png(labels, davis_palette())
    else:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, masks=labels[None])
        data = buffer.getvalue()
    atomic_write_bytes(target, data, overwrite=overwrite)
    return target
