"""The Restyle panel: the active object restyled on key frames inside its matte, as a
background job reading the object's live mask store, with a preview of each key as it is made;
or, with a video engine (``animatediff``, ``wan-vace``), through the whole shot
(:mod:`kinema.ui.model.video_restyle`).

The job writes the keys folder (``styles/<track>-<n>/`` in the project, a new one every run,
so undo never points the document at keys made later) and its record; the document changes on
the UI thread, in :meth:`Restyle.poll`, as one step of the history (recipe and style layer).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np

from kinema.app.restyle_jobs import Styled, TrackMasks, control_specs, restyle_masks, style_edit
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job
from kinema.ui.model.history import EditHistory
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.objects import Objects
from kinema.ui.model.remote import RemoteSetting, remote_keys
from kinema.ui.model.session import Session, writes
from kinema.ui.model.transport import Transport
from kinema.ui.model.video_restyle import VIDEO_ENGINES, VideoRestyle

ENGINES = ("keys", *VIDEO_ENGINES)
"""The panel's engines: ``keys`` restyles key frames with SDXL (they become a style layer);
the video engines restyle the whole shot into a movie on a new layer."""
STYLES = "styles"
"""The folder in a project the editor's keys folders go to."""


@dataclass(frozen=True)
class _Pending:
    """A restyle job and the name of the object it styles."""

    job: Job
    name: str


class Restyle:
    """The restyle's settings (prompt, negative, strength, seed, controls by kind with their
    weights, LoRA files with theirs), the key frames of each object, the running job and the
    previews of the keys it made; the ``engine`` (:data:`ENGINES`), and in :attr:`video` the
    video engines' options, job and previews. ``model`` is an SDXL name or folder (``None``:
    the inpainting default); ``controlnets`` a ControlNet name or folder by kind;
    ``video_models`` the video engines' models (:data:`~.video_restyle.MODEL_KEYS`). While
    ``remote`` is on, the keys and the shot are restyled on that worker."""

    def __init__(self, session: Session, transport: Transport, objects: Objects, history: EditHistory,
                 jobs: Jobs, remote: RemoteSetting, *, model: str | os.PathLike[str] | None = None,
                 controlnets: Mapping[str, str | os.PathLike[str]] | None = None,
                 video_models: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
        self.session, self.transport, self.objects = session, transport, objects
        self.history, self.jobs, self.remote = history, jobs, remote
        self.prompt = ""
        self.negative = ""
        self.strength = 0.7
        self.seed = 0
        self.controls: dict[str, float] = {}
        self.loras: list[tuple[Path, float]] = []
        self.model = model
        self.controlnets = dict(controlnets or {})
        self._keys: dict[str, set[int]] = {}  # chosen by hand, by track
        self._previews: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # the job adds previews while the window reads them
        self._pending: _Pending | None = None
        self.engine = "keys"
        self.video = VideoRestyle(session, objects, history, jobs, remote, models=video_models)

    # -- key frames -----------------------------------------------------------------------------

    def key_frames(self) -> list[int]:
        """The active object's key frames: those chosen on the timeline, else the keyframes of
        its track (the frames clicked)."""
        active = self.objects.active
        if active is None:
            return []
        chosen = self._keys.get(active)
        return sorted(chosen) if chosen is not None else self.objects.get(active).store.keyframes()

    def toggle_key(self, frame: int | None = None) -> None:
        """Add ``frame`` (default: the playhead's) to the active object's keys, or take it out."""
        obj = self.objects.get(self.objects.active)
        frame = self.transport.playhead if frame is None else frame
        keys = set(self.key_frames())
        keys.symmetric_difference_update({frame})
        self._keys[obj.track_id] = keys

    def set_engine(self, engine: str) -> None:
        """Restyle with ``engine`` from now on (:data:`ENGINES`)."""
        if engine not in ENGINES:
            raise InvalidArgumentError(f"unknown restyle engine {engine!r}",
                                       hint=f"use one of {', '.join(ENGINES)}")
        self.engine = engine

    def set_control(self, kind: str, weight: float | None) -> None:
        """Condition on ``kind`` at ``weight`` (``None``: not at all)."""
        if weight is None:
            self.controls.pop(kind, None)
        else:
            control_specs({kind: weight})  # an unknown kind or a negative weight is an error now
            self.controls[kind] = weight

    # -- the job --------------------------------------------------------------------------------

    @property
    def job(self) -> Job | None:
        """The running restyle (keys, else a video engine's), until what it made is in (or it
        failed)."""
        return self._pending.job if self._pending is not None else self.video.job

    @property
    def previews(self) -> dict[int, np.ndarray]:
        """The keys of the last run as they were made, by frame (RGB)."""
        with self._lock:
            return dict(self._previews)

    @writes
    def run(self) -> Job:
        """Restyle the active object as a background job, its masks read from the live store:
        on its key frames (``keys``; each key shows in :attr:`previews` as it is made), or
        through the whole shot with a video engine (:meth:`VideoRestyle.run`)."""
        obj = self.objects.get(self.objects.active)
        if self.engine != "keys":
            if self._pending is not None:
                raise InvalidArgumentError("a restyle is running", hint="wait for it, or cancel its job")
            return self.video.run(self.engine, prompt=self.prompt, negative=self.negative,
                                  strength=self.strength, seed=self.seed, controls=self.controls,
                                  loras=self.loras)
        keys = self.key_frames()
        if not keys:
            raise InvalidArgumentError(f"{obj.name} has no key frames",
                                       hint="click the object on a frame, or add the playhead's frame")
        if self._pending is not None or self.video.job is not None:
            raise InvalidArgumentError("a restyle is running", hint="wait for it, or cancel its job")
        ref, folder = obj.ref, self.session.folder / STYLES
        folder.mkdir(exist_ok=True)
        out = next(folder / f"{ref.id}-{k}" for k in count(1) if not (folder / f"{ref.id}-{k}").exists())
        masks = TrackMasks(ref.name, ref.frames, (ref.width, ref.height), obj.store)
        controls = control_specs(self.controls)
        options = {"prompt": self.prompt, "negative": self.negative, "frames": keys, "track_id": ref.id,
                   "controls": controls, "loras": list(self.loras), "seed": self.seed,
                   "strength": self.strength}
        with self._lock:
            self._previews = {}
        video = self.session.video_path
        if self.remote.on:
            job = self.jobs.start(f"restyle {ref.name} on {self.remote.host}", lambda: remote_keys(
                self.remote, masks, video, out, on_key=self._preview, **options))  # type: ignore[arg-type]
        else:
            nets = {c.kind: self.controlnets[c.kind] for c in controls if c.kind in self.controlnets}
            job = self.jobs.start(f"restyle {ref.name}", lambda: restyle_masks(
                masks, video, out, model=self.model, device=self.session.choice.device,
                controlnets=nets, on_key=self._preview, **options))  # type: ignore[arg-type]
        self._pending = _Pending(job, ref.name)
        return job

    def _preview(self, frame: int, image: np.ndarray) -> None:
        with self._lock:
            self._previews[frame] = image

    def poll(self) -> None:
        """On the UI thread, each frame: put a finished job's keys in as a style layer (one step
        of the history), and a video engine's movie as a layer (:meth:`VideoRestyle.poll`). A
        failed or cancelled job is dropped (:class:`Jobs` notes why)."""
        self.video.poll()
        pending = self._pending
        if pending is None or not pending.job.finished:
            return
        self._pending = None
        styled: Styled | None = pending.job.result
        if styled is None:
            return
        edit, layer_id = style_edit(self.session.file.project, self.session.folder, styled)
        self.history.do(edit)
        self.session.note(f"{pending.name}: {len(styled.frames)} keys restyled, layer {layer_id}")
