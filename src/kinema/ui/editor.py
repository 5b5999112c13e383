"""The editor's view-model: everything the window shows and does, testable without a window.

The window (``kinema.ui.window``) only draws this state and forwards events to its methods.
Edits go through the document's commands and the mask stores; long work (propagation,
exports, renders) runs as :class:`~kinema.ui.jobs.Job` on worker threads, so the UI thread
never waits on decode or inference.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np

from kinema.app.segment_jobs import ModelChoice
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.frames import Frame, Mask
from kinema.document import edits, store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.document.model import ClipItem, MaskTrackRef, MediaRef, object_colour
from kinema.ui.jobs import Job
from kinema.vision.base import Prompt

SHUTTLE = (1, 2, 4, 8)
_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass
class ObjectView:
    """A mask track as the editor shows it."""

    track_id: str
    name: str
    colour: tuple[int, int, int]
    store: MaskTrackStore
    visible: bool = True


@dataclass
class Note:
    """A message for the user (errors never block the window)."""

    text: str
    error: bool = False
    at: float = field(default_factory=time.monotonic)


@dataclass
class _MaskChange:
    """Undo record for a hand or click edit of one frame of one mask."""

    track_id: str
    frame: int
    before: tuple[Mask | None, FrameState]
    after: tuple[Mask | None, FrameState]


def _edit(method: Callable[Concatenate[Editor, _P], _R]) -> Callable[Concatenate[Editor, _P], _R]:
    """Mark a method that writes the project or its masks: refused while an earlier session's
    unsaved edits wait for :meth:`Editor.recover` or :meth:`Editor.discard_autosave`."""

    @functools.wraps(method)
    def checked(self: Editor, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.pending_autosave:
            raise store.UnsavedEditsError(
                "an earlier session left unsaved edits", path=self.folder,
                hint="recover or discard them first")
        return method(self, *args, **kwargs)

    return checked


def project_for(video: Path) -> Path:
    """Where a video's project lives: ``VIDEO.kinema`` beside it, or, when that folder cannot
    be written (a read-only share), under the user's data folder, named after the video."""
    import hashlib

    beside = video.with_suffix(store.SUFFIX)
    if beside.exists() or os.access(video.parent, os.W_OK):
        return beside
    from platformdirs import user_data_dir

    digest = hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]
    return Path(user_data_dir("kinema")) / "projects" / f"{video.stem}-{digest}{store.SUFFIX}"


class Editor:
    """An open project: its footage, playhead, mask objects, tools, jobs and history."""

    def __init__(self, folder: str | os.PathLike[str], *, backend: str = "classic",
                 choice: ModelChoice | None = None) -> None:
        from kinema.app.evaluate import media_paths
        from kinema.media import open_video

        self.folder = store.project_path(folder)
        self.file = store.ProjectFile(self.folder, unsaved="defer")
        self.backend, self.choice = backend, choice or ModelChoice()
        project = self.file.project
        self.media = self._main_media()
        paths, missing = media_paths(project, self.folder)
        if self.media.id in missing:
            self.file.close()
            raise InvalidArgumentError(f"the footage is missing: {self.media.path}", path=self.folder,
                                       hint="relink it with kinema relink, then open the project again")
        self.video_path = paths[self.media.id]
        self.reader = open_video(self.video_path)
        self.fps: Fraction = self.reader.fps
        self.frames = len(self.reader)
        self.size = self.reader.size
        self.playhead = 0
        self.in_point, self.out_point = 0, self.frames
        self.playing = False
        self.speed = 1  # frames of source per frame of time; negative plays backwards
        self._clock: tuple[float, int] | None = None
        self.objects: list[ObjectView] = [self._view(ref) for ref in project.mask_tracks.values()
                                          if ref.media_id == self.media.id]
        self.active: str | None = self.objects[0].track_id if self.objects else None
        self.tool = "point"
        self.jobs: list[Job] = []
        self.notes: list[Note] = []
        self._prompts: dict[tuple[str, int], Prompt] = {}
        self._undo: list[_MaskChange | str] = []
        self._redo: list[_MaskChange | str] = []
        self._segmenter = None
        self._proxy = None
        self._evaluator: tuple[int, object] | None = None

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], **kwargs: object) -> Editor:
        """A project folder opens as is; a video opens the project beside it (``VIDEO.kinema``),
        made on first use."""
        from kinema.app.project_jobs import new_project

        target = Path(path)
        if target.is_dir() or target.suffix == store.SUFFIX:
            return cls(target, **kwargs)  # type: ignore[arg-type]
        if not target.is_file():
            raise InvalidArgumentError("no such video or project", path=target)
        folder = project_for(target)
        if not (folder / store.DOCUMENT).is_file():
            new_project(folder, target)
        editor = cls(folder, **kwargs)  # type: ignore[arg-type]
        if folder.parent != target.parent:
            editor.note(f"{target.parent} is read-only: the project is {folder}")
        return editor

    @property
    def pending_autosave(self) -> bool:
        """Whether an earlier session's unsaved edits wait for a decision (nothing can be
        edited until then)."""
        return self.file.pending

    def recover(self) -> None:
        """Bring back the edits an earlier session left unsaved; they stay unsaved (and
        autosaved) until a save."""
        self.file.recover()
        self._undo.clear()
        self._redo.clear()
        self._prompts.clear()
        if self._evaluator is not None:
            self._evaluator[1].close()  # type: ignore[attr-defined]
            self._evaluator = None  # the new history counts revisions from 0 again
        self._sync_objects()
        self.note("recovered the unsaved edits; save to keep them")

    def discard_autosave(self) -> None:
        """Drop the edits an earlier session left unsaved, and the objects only they had."""
        dropped = self.file.discard()
        self.note("discarded the unsaved edits" + (f" and {', '.join(dropped)}" if dropped else ""))

    def close(self) -> None:
        """Stop jobs and release the project and the footage (saving is the caller's choice;
        unsaved edits stay in the autosave)."""
        for job in self.jobs:
            job.cancel()
        for job in self.jobs:
            job.wait(10)
        self.file.close()
        self.reader.close()
        if self._proxy is not None:
            self._proxy.close()
        if self._evaluator is not None:
            self._evaluator[1].close()  # type: ignore[attr-defined]

    def _main_media(self) -> MediaRef:
        project = self.file.project
        for layer in project.timeline.video_layers:
            for item in layer.items:
                if isinstance(item, ClipItem):
                    return project.media[item.media_id]
        if not project.media:
            raise InvalidArgumentError("the project has no footage", path=self.folder)
        return next(iter(project.media.values()))

    def _view(self, ref: MaskTrackRef, *, new: bool = False) -> ObjectView:
        masks = MaskTrackStore(self.folder / "masks" / ref.id, ref.frames, ref.width, ref.height,
                               create=new)
        return ObjectView(ref.id, ref.name, tuple(ref.color), masks)  # type: ignore[arg-type]

    # -- what the window draws --------------------------------------------------------------

    def picture(self, *, fast: bool = False) -> Frame:
        """What the viewer shows: the footage, or, when the timeline has more than that one
        visible layer, every layer composited as a render would (the footage at full size)."""
        layers = [layer for layer in self.file.project.timeline.video_layers if layer.visible]
        simple = (len(layers) == 1 and layers[0].mask is None and len(layers[0].items) == 1
                  and layers[0].blend_mode == "normal" and layers[0].transform.opacity.value == 1
                  and not layers[0].transform.opacity.keyframes)
        if simple or not layers:
            return self.frame(fast=fast)
        from kinema.app.evaluate import FrameEvaluator

        revision = self.file.history.revision
        if self._evaluator is None or self._evaluator[0] != revision:
            if self._evaluator is not None:
                self._evaluator[1].close()
            self._evaluator = (revision, FrameEvaluator(self.file.project.model_copy(deep=True), self.folder))
        return self._evaluator[1].frame(self.playhead)

    def frame(self, *, fast: bool = False) -> Frame:
        """The footage at the playhead (RGB). ``fast`` (while scrubbing or playing) takes it
        from the small all-intra proxy when one is ready: smaller, same picture."""
        proxy = self._proxy
        if fast and proxy is not None:
            return proxy[self.playhead]
        return self.reader[self.playhead]

    def use_proxy(self) -> Job | None:
        """Build (or find) the proxy as a background job; fast frames use it once it is ready.
        Footage at or under the proxy's size gains nothing and gets none."""
        from kinema.media import open_video
        from kinema.media.proxy import PROXY_HEIGHT, build_proxy, find_proxy

        if self.size[1] <= PROXY_HEIGHT:
            return None

        def ready() -> None:
            self._proxy = open_video(self.video_path, proxy=True)

        if find_proxy(self.video_path) is not None:
            ready()
            return None
        job = Job("proxy", lambda: build_proxy(self.video_path), on_done=ready).start()
        self.jobs.append(job)
        return job

    def overlays(self, index: int | None = None) -> list[tuple[Mask, tuple[int, int, int]]]:
        """Masks of the visible objects at frame ``index`` (default: the playhead), with colours."""
        i = self.playhead if index is None else index
        out = []
        for obj in self.objects:
            if obj.visible:
                mask = obj.store.read(i)
                if mask is not None and mask.any():
                    out.append((mask, obj.colour))
        return out

    def lane(self, track_id: str) -> np.ndarray:
        """Per-frame states of an object's masks (empty, keyframe, propagated) for its lane."""
        return self._object(track_id).store.states()

    @property
    def time_label(self) -> str:
        from kinema.core.timebase import format_time

        return f"{format_time(Fraction(self.playhead) / self.fps)}  frame {self.playhead}/{self.frames - 1}"

    def note(self, text: str, *, error: bool = False) -> None:
        self.notes.append(Note(text, error))
        del self.notes[:-20]

    def guard(self, action: Callable[[], object]) -> object:
        """Run a UI action; kinema errors become notifications instead of exceptions."""
        try:
            return action()
        except KinemaError as exc:
            self.note(str(exc), error=True)
            return None

    # -- transport --------------------------------------------------------------------------

    def seek(self, index: int) -> None:
        self.playhead = max(0, min(self.frames - 1, int(index)))
        if self.playing:
            self._clock = (time.monotonic(), self.playhead)

    def step(self, delta: int) -> None:
        self.playing = False
        self.seek(self.playhead + delta)

    def home(self) -> None:
        self.seek(self.in_point)

    def end(self) -> None:
        self.seek(self.out_point - 1)

    def set_in(self) -> None:
        self.in_point = min(self.playhead, self.out_point - 1)

    def set_out(self) -> None:
        self.out_point = max(self.playhead + 1, self.in_point + 1)

    def toggle_play(self) -> None:
        self.playing = not self.playing
        self.speed = 1 if self.speed == 0 else self.speed
        self._clock = (time.monotonic(), self.playhead) if self.playing else None

    def shuttle(self, key: str) -> None:
        """J/K/L: K stops; L plays forward, faster each press (1x, 2x, 4x, 8x); J backwards."""
        if key == "k":
            self.playing, self._clock = False, None
            return
        sign = 1 if key == "l" else -1
        if self.playing and self.speed * sign > 0:
            steps = list(SHUTTLE)
            self.speed = sign * steps[min(steps.index(abs(self.speed)) + 1, len(steps) - 1)]
        else:
            self.speed = sign
        self.playing = True
        self._clock = (time.monotonic(), self.playhead)

    def tick(self, now: float | None = None) -> None:
        """Advance the playhead by the clock: frames the window could not draw in time are
        dropped, so playback never drifts from the source rate."""
        if not self.playing or self._clock is None:
            return
        t0, frame0 = self._clock
        elapsed = (time.monotonic() if now is None else now) - t0
        target = frame0 + math.floor(elapsed * float(self.fps) * self.speed)
        if target >= self.out_point or target < self.in_point:
            self.playing, self._clock = False, None
            target = self.out_point - 1 if target >= self.out_point else self.in_point
        self.playhead = target

    # -- objects ----------------------------------------------------------------------------

    def _object(self, track_id: str | None) -> ObjectView:
        for obj in self.objects:
            if obj.track_id == track_id:
                return obj
        raise InvalidArgumentError("no object is selected" if track_id is None
                                   else f"no object {track_id!r}", hint="add an object first")

    @_edit
    def add_object(self, name: str | None = None) -> str:
        """A new, empty mask track on the footage; it becomes the active object."""
        taken = set(self.file.project.mask_tracks)
        k = 1
        while f"obj{k}" in taken or (self.folder / "masks" / f"obj{k}").exists():
            k += 1  # a deleted object's masks stay on disk (for undo): never reuse its id
        ref = MaskTrackRef(id=f"obj{k}", name=name or f"object {k}", color=object_colour(k),
                           media_id=self.media.id, frames=self.frames, width=self.size[0],
                           height=self.size[1])
        self._do(edits.add_mask_track(ref))
        self.objects.append(self._view(ref, new=True))
        self.active = ref.id
        return ref.id

    @_edit
    def rename(self, track_id: str, name: str) -> None:
        self._do(edits.set_mask_track(track_id, name=name))
        self._object(track_id).name = name

    @_edit
    def recolour(self, track_id: str, colour: tuple[int, int, int]) -> None:
        self._do(edits.set_mask_track(track_id, color=colour))
        self._object(track_id).colour = colour

    @_edit
    def delete_object(self, track_id: str) -> None:
        self._do(edits.remove_mask_track(track_id))
        self.objects = [o for o in self.objects if o.track_id != track_id]
        self.active = self.objects[-1].track_id if self.objects else None

    def _do(self, edit: edits.Edit) -> None:
        """A document edit, undone and redone in turn with mask edits."""
        self.file.history.do(edit)
        self._undo.append("document")
        self._redo.clear()

    # -- segmentation -------------------------------------------------------------------------

    @_edit
    def click(self, x: float, y: float, *, positive: bool = True) -> Mask:
        """A click on the object (``positive``) or off it, on the current frame: the mask
        appears at once. Clicks on the same frame add up."""
        return self._prompt(Prompt(frame=self.playhead, object_id=1, points=((x, y),),
                                   labels=(1 if positive else 0,)))

    @_edit
    def box(self, x0: float, y0: float, x1: float, y1: float) -> Mask:
        """A box around the object on the current frame."""
        return self._prompt(Prompt(frame=self.playhead, object_id=1,
                                   box=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))

    @_edit
    def text(self, words: str) -> Mask:
        """Words ("person"): the detector's best box on the current frame becomes the prompt."""
        from kinema.app.segment_jobs import ground_text

        (boxed,) = ground_text([self.frame()] * (self.playhead + 1),
                               [Prompt(frame=self.playhead, text=words)],
                               ModelChoice(**{**self.choice.__dict__, "max_objects": 1}))
        return self.box(*boxed.box)  # type: ignore[misc]

    def _prompt(self, prompt: Prompt) -> Mask:
        if self.active is None:
            self.add_object()
        obj = self._object(self.active)
        key = (obj.track_id, self.playhead)
        before = self._prompts.get(key)
        merged = prompt if before is None else Prompt(
            frame=prompt.frame, object_id=1, points=before.points + prompt.points,
            labels=before.labels + prompt.labels,
            box=prompt.box if prompt.box is not None else before.box)
        mask = self._segment(self.frame(), merged)
        self._prompts[key] = merged
        self._set_mask(obj, self.playhead, mask, FrameState.KEYFRAME)
        return mask

    def _segment(self, frame: Frame, prompt: Prompt) -> Mask:
        if self._segmenter is None:
            if self.backend == "sam2":
                from kinema.models.registry import resolve
                from kinema.vision.sam2 import Sam2ImageSegmenter

                self._segmenter = Sam2ImageSegmenter(resolve(self.choice.model, task="segment-video"),
                                                     device=self.choice.device, dtype=self.choice.dtype)
            else:
                from kinema.vision.classic import GrabCutSegmenter

                self._segmenter = GrabCutSegmenter()
        return self._segmenter.segment(frame, prompt)[0].mask

    @_edit
    def brush(self, x: float, y: float, radius: float, *, erase: bool = False) -> Mask:
        """Paint (or erase) a disc of the active object's mask on the current frame."""
        import cv2

        if self.active is None:
            self.add_object()
        obj = self._object(self.active)
        current = obj.store.read(self.playhead)
        canvas = (np.zeros((self.size[1], self.size[0]), np.uint8) if current is None
                  else current.astype(np.uint8))
        cv2.circle(canvas, (int(round(x)), int(round(y))), max(1, int(round(radius))), 0 if erase else 1, -1)
        mask = canvas.astype(bool)
        self._set_mask(obj, self.playhead, mask, FrameState.KEYFRAME)
        return mask

    @_edit
    def adjust(self, *, grow: float = 0.0, feather: float = 0.0) -> Mask:
        """Grow (or shrink) the active object's mask on the current frame; ``feather`` softens
        then re-thresholds it (rounds corners, removes specks)."""
        from kinema.render.mattes import matte_from_mask

        obj = self._object(self.active)
        current = obj.store.read(self.playhead)
        if current is None:
            raise InvalidArgumentError("this frame has no mask to adjust")
        mask = matte_from_mask(current, grow=grow, feather=feather) > 0.5
        self._set_mask(obj, self.playhead, mask, FrameState.KEYFRAME)
        return mask

    def _set_mask(self, obj: ObjectView, index: int, mask: Mask | None, state: FrameState) -> None:
        before = (obj.store.read(index), obj.store.state(index))
        self._write(obj, index, mask, state)
        self._undo.append(_MaskChange(obj.track_id, index, before, (mask, state)))
        self._redo.clear()

    @staticmethod
    def _write(obj: ObjectView, index: int, mask: Mask | None, state: FrameState) -> None:
        if mask is None:
            obj.store.clear(index, index + 1)
        else:
            obj.store.write(index, mask, state)

    # -- propagation ---------------------------------------------------------------------------

    @_edit
    def propagate(self, direction: str = "forward", count: int | None = None) -> Job:
        """Carry the active object's mask from the playhead forward or backward (``count``
        frames, default to the in/out point) as a background job; keyframes on the way are
        kept and used as corrections; the lane fills in as frames arrive."""
        obj = self._object(self.active)
        start = self.playhead
        if obj.store.read(start) is None:
            raise InvalidArgumentError(f"frame {start} has no mask for {obj.name}",
                                       hint="click the object on this frame first")
        reverse = direction == "backward"
        if direction not in ("forward", "backward"):
            raise InvalidArgumentError(f"direction is forward or backward, got {direction!r}")
        if reverse:
            stop = self.in_point - 1 if count is None else max(self.in_point - 1, start - count - 1)
        else:
            stop = self.out_point if count is None else min(self.out_point, start + count + 1)
        keyframes = [k for k in obj.store.keyframes()
                     if (stop < k <= start if reverse else start <= k < stop)]

        def steps() -> Iterator[tuple[int, int]]:
            from kinema.app.segment_jobs import make_tracker
            from kinema.media import open_video

            with open_video(self.video_path) as frames:  # the job's own reader: no shared decoder
                tracker = make_tracker(self.backend, frames, self.choice)
                for k in keyframes:
                    tracker.add_prompt(Prompt(frame=k, mask=obj.store.read(k)))
                total = abs(stop - start)
                for done, (index, masks) in enumerate(tracker.propagate(start, stop, reverse=reverse), 1):
                    if index not in keyframes:
                        mask = masks.get(1)
                        if mask is not None:
                            obj.store.write(index, mask, FrameState.PROPAGATED)
                    yield done, total

        job = Job(f"propagate {obj.name} {direction}", steps,
                  on_done=lambda: self.note(f"{obj.name}: propagated {direction}")).start()
        self.jobs.append(job)
        return job

    # -- history ----------------------------------------------------------------------------

    @_edit
    def undo(self) -> None:
        if not self._undo:
            return
        step = self._undo.pop()
        if step == "document":
            self.file.history.undo()
            self._sync_objects()
        else:
            assert isinstance(step, _MaskChange)
            self._write(self._object(step.track_id), step.frame, *step.before)
            self._prompts.pop((step.track_id, step.frame), None)
        self._redo.append(step)

    @_edit
    def redo(self) -> None:
        if not self._redo:
            return
        step = self._redo.pop()
        if step == "document":
            self.file.history.redo()
            self._sync_objects()
        else:
            assert isinstance(step, _MaskChange)
            self._write(self._object(step.track_id), step.frame, *step.after)
        self._undo.append(step)

    def _sync_objects(self) -> None:
        """Objects after a document undo/redo (added, removed, renamed, recoloured)."""
        visible = {o.track_id: o.visible for o in self.objects}
        self.objects = [self._view(ref) for ref in self.file.project.mask_tracks.values()
                        if ref.media_id == self.media.id]
        for obj in self.objects:
            obj.visible = visible.get(obj.track_id, True)
        if self.active not in {o.track_id for o in self.objects}:
            self.active = self.objects[-1].track_id if self.objects else None

    @_edit
    def save(self) -> None:
        self.file.save()
        self.note(f"saved {self.folder.name}")

    # -- layers -------------------------------------------------------------------------------

    @_edit
    def set_layer(self, layer_id: str, **changes: object) -> None:
        self._do(edits.set_layer(layer_id, **changes))

    @_edit
    def move_layer(self, layer_id: str, index: int) -> None:
        self._do(edits.move_layer(layer_id, index))

    def composite(self) -> Frame:
        """The timeline frame at the playhead with every layer composited (the render's view)."""
        from kinema.app.evaluate import FrameEvaluator

        return FrameEvaluator(self.file.project, self.folder).frame(self.playhead)

    # -- exports ----------------------------------------------------------------------------

    @_edit
    def export(self, kind: str, out: str | os.PathLike[str], **options: object) -> Job:
        """A background export: ``matte`` or ``cutout`` of the active object, or ``render`` of
        the timeline (saved first, so the render sees what the window shows)."""
        from kinema.app import export_jobs, render_job

        self.file.save()
        if kind == "render":
            steps = lambda: render_job.render(self.folder, out, **options)  # noqa: E731
        elif kind in ("matte", "cutout"):
            obj = self._object(self.active)
            run = export_jobs.export_matte if kind == "matte" else export_jobs.export_cutout
            steps = lambda: run(self.folder, obj.track_id, out, **options)  # noqa: E731
        else:
            raise InvalidArgumentError(f"unknown export {kind!r}", hint="matte, cutout or render")
        job = Job(f"{kind} -> {Path(out).name}", steps, on_done=lambda: self.note(f"wrote {out}")).start()
        self.jobs.append(job)
        return job

    def busy(self) -> bool:
        return any(not job.finished for job in self.jobs)

    def poll_jobs(self) -> list[str]:
        """Turn failed jobs into notifications (and return them) and forget finished ones
        after a while."""
        now = time.monotonic()
        failed = []
        for job in self.jobs:
            if job.finished and job.error and not getattr(job, "reported", False):
                failed.append(f"{job.label}: {job.error}")
                self.note(failed[-1], error=True)
                job.reported = True  # type: ignore[attr-defined]
        self.jobs = [j for j in self.jobs if not j.finished or now - j.started < 30]
        return failed
