"""The Restyle panel's video engines: the active object restyled through the whole shot by
AnimateDiff or Wan 2.1 VACE (:func:`kinema.app.video_restyle_jobs.restyle_video_masks`), as a
background job reading the object's live mask store, each finished window handed to the UI
thread as a preview the viewer shows at the playhead while the job runs. While the remote
worker setting is on, the job runs on that worker instead (:func:`.remote.remote_video`; the
worker sends no windows to preview) and the movie comes back into ``media/``.

The job writes a movie (ProRes 4444 with the object's matte as alpha) into the project's
``media/`` folder under a free name, with its record beside it, and never opens the project
(the editor holds it, locked). The document changes on the UI thread, in
:meth:`VideoRestyle.poll`, as one step of the history: the movie joins the media pool with its
recipe and shows on a new layer over the clip (``video_layer_edit``). A cancelled or failed
job leaves no movie (the writer discards its temporary file) and no layer.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np

from kinema.app.restyle_jobs import TrackMasks, control_specs
from kinema.app.video_restyle_jobs import (
    ENGINES,
    WINDOWS,
    VideoRestyled,
    restyle_video_masks,
    video_layer_edit,
)
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job, Steps
from kinema.ui.model.history import EditHistory
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.objects import Objects
from kinema.ui.model.remote import RemoteSetting, remote_video
from kinema.ui.model.session import Session

MEDIA = "media"
"""The folder in a project the movies kinema makes go to (as a retime's do)."""
VIDEO_ENGINES = ENGINES
"""The engines that restyle the whole shot (``keys`` restyles key frames: :mod:`.restyle`)."""
MODEL_KEYS = (*ENGINES, "motion", "canny", "pose", "depth")
"""What ``models`` may name: each engine's main model (AnimateDiff's SD 1.5 base, the VACE
pipeline), AnimateDiff's motion adapter, its SD 1.5 ControlNets by kind, the depth model."""


@dataclass(frozen=True)
class _Pending:
    """A video restyle job, the object it styles, the movie it writes and whether it made the
    media folder (taken away again if the job leaves it empty)."""

    job: Job
    name: str
    track_id: str
    movie: Path
    made_folder: bool


@dataclass(frozen=True)
class WindowPreview:
    """A finished window's frames (full frames, the object restyled), from footage frame
    ``first`` on."""

    first: int
    frames: list[np.ndarray]

    def frame(self, index: int) -> np.ndarray | None:
        """Footage frame ``index``'s picture, if this window holds it."""
        k = index - self.first
        return self.frames[k] if 0 <= k < len(self.frames) else None


class VideoRestyle:
    """The video engines' own settings (``window`` and ``overlap``, ``None`` for the engine's
    default; ``reference``, a picture for wan-vace), their models (``models``: by the names in
    :data:`MODEL_KEYS`, ``None`` or absent for the registry's defaults), the running job and
    the latest finished window. While ``remote`` is on, the job runs on its worker, with the
    models it names there."""

    def __init__(self, session: Session, objects: Objects, history: EditHistory, jobs: Jobs,
                 remote: RemoteSetting, *,
                 models: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
        self.session, self.objects, self.history, self.jobs = session, objects, history, jobs
        self.remote = remote
        unknown = sorted(set(models or {}) - set(MODEL_KEYS))
        if unknown:
            raise InvalidArgumentError(f"no video restyle model is called {', '.join(unknown)}",
                                       hint=f"name one of {', '.join(MODEL_KEYS)}")
        self.models: dict[str, str | os.PathLike[str]] = dict(models or {})
        self.window: int | None = None
        self.overlap: int | None = None
        self.reference: Path | None = None
        self.show_preview = True
        self._windows: queue.SimpleQueue[WindowPreview] = queue.SimpleQueue()  # worker -> UI thread
        self._latest: WindowPreview | None = None
        self.received = 0  # windows taken in so far (a viewer's cache key)
        self._pending: _Pending | None = None

    @staticmethod
    def defaults(engine: str) -> tuple[int, int]:
        """``engine``'s default window and overlap, in frames."""
        return WINDOWS[engine]

    @property
    def job(self) -> Job | None:
        """The running video restyle, until its layer is in (or it failed or was cancelled)."""
        return self._pending.job if self._pending is not None else None

    @property
    def latest(self) -> WindowPreview | None:
        """The last window the last job finished, as :meth:`receive` took it in (kept after a
        success, for the panel)."""
        return self._latest

    def preview(self, frame: int) -> np.ndarray | None:
        """What the viewer shows at footage frame ``frame`` while the job runs: the latest
        window's restyled frame if it holds that frame (and previews are on), else ``None``."""
        if self._pending is None or not self.show_preview or self._latest is None:
            return None
        return self._latest.frame(frame)

    def run(self, engine: str, *, prompt: str, negative: str, strength: float, seed: int,
            controls: Mapping[str, float], loras: list[tuple[Path, float]]) -> Job:
        """Restyle the active object through the whole shot with ``engine`` as a background
        job, here or on the remote worker. Every option is checked first (an error here, not a
        failed job; on the worker, what only it can check fails the job)."""
        if engine not in VIDEO_ENGINES:
            raise InvalidArgumentError(f"{engine!r} is not a video engine",
                                       hint=f"use one of {', '.join(VIDEO_ENGINES)}")
        if self._pending is not None:
            raise InvalidArgumentError("a video restyle is running", hint="wait for it, or cancel its job")
        if loras:
            raise InvalidArgumentError(f"the {engine} engine takes no LoRAs",
                                       hint="remove them, or restyle with the keys engine")
        obj = self.objects.get(self.objects.active)
        ref = obj.ref
        folder = self.session.folder / MEDIA
        movie = next(folder / f"{ref.id}-{engine}-{k}.mov" for k in count(1)
                     if not (folder / f"{ref.id}-{engine}-{k}.mov").exists())
        options: dict[str, Any] = {
            "engine": engine, "prompt": prompt, "negative": negative, "seed": seed,
            "strength": strength, "controls": control_specs(controls), "window": self.window,
            "overlap": self.overlap, "reference": self.reference if engine == "wan-vace" else None,
        }
        masks = TrackMasks(ref.name, ref.frames, (ref.width, ref.height), obj.store)
        if self.remote.on:
            label = f"restyle {ref.name} ({engine}) on {self.remote.host}"
            steps = remote_video(self.remote, masks, self.session.video_path, movie,
                                 track_id=ref.id, on_window=self._finished_window, **options)
        else:
            label = f"restyle {ref.name} ({engine})"
            steps = self._local(masks, movie, ref.id, options)
        made_folder = not folder.exists()
        folder.mkdir(exist_ok=True)
        self._latest = None
        while not self._windows.empty():
            self._windows.get_nowait()
        job = self.jobs.start(label, lambda: steps)
        self._pending = _Pending(job, ref.name, ref.id, movie, made_folder)
        return job

    def _local(self, masks: TrackMasks, movie: Path, track_id: str,
               options: dict[str, Any]) -> Steps[VideoRestyled]:
        """The restyle's steps here, with this machine's models; the checks (engine, models,
        window against the shot, reference) run now."""
        specs = options["controls"]
        local: dict[str, Any] = {"model": self.models.get(options["engine"]),
                                 "device": self.session.choice.device,
                                 "depth_model": self.models.get("depth")}
        if options["engine"] == "animatediff":
            local["motion_model"] = self.models.get("motion")
            local["controlnets"] = {c.kind: self.models[c.kind] for c in specs if c.kind in self.models}
        return restyle_video_masks(masks, self.session.video_path, movie, track_id=track_id,
                                   on_window=self._finished_window, **options, **local)

    def _finished_window(self, first: int, frames: list[np.ndarray]) -> None:
        """On the worker: hand a finished window to the UI thread."""
        self._windows.put(WindowPreview(first, list(frames)))

    def receive(self) -> WindowPreview | None:
        """On the UI thread: take the windows finished since the last call (the latest is
        kept, the others are passed); the latest."""
        while not self._windows.empty():
            self._latest = self._windows.get_nowait()
            self.received += 1
        return self._latest

    def poll(self) -> None:
        """On the UI thread, each frame: :meth:`receive` the finished windows, and put a
        finished job's movie in as a new layer (one step of the history). A failed or cancelled
        job is dropped (:class:`Jobs` notes why), its movie never written, its previews too."""
        self.receive()
        pending = self._pending
        if pending is None or not pending.job.finished:
            return
        self._pending = None
        made: VideoRestyled | None = pending.job.result
        if made is None:
            self._latest = None
            folder = pending.movie.parent
            if pending.made_folder and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            return
        project, folder = self.session.file.project, self.session.folder
        edit, layer_id = video_layer_edit(project, folder, made.output, made.recipe,
                                          list(made.sources), pending.track_id)
        self.history.do(edit)
        windows = f" in {made.windows} windows" if made.windows else ""  # none from a worker
        self.session.note(f"{pending.name}: {made.frames} frames restyled{windows} "
                          f"({made.recipe.engine}), layer {layer_id}")
