"""The editor's view-model: everything the window shows and does, testable without a window.

:class:`Editor` composes the parts in :mod:`kinema.ui.model` around one open project; the
window (``kinema.ui.window``) only draws their state and forwards events to their methods, and
a web view could do the same. Edits go through the project's one history; long work
(propagation, exports, renders, generation, restyles) runs as jobs on worker threads, so the UI
thread never waits on decode or inference; what a job made enters the document on the UI
thread, in :meth:`Editor.poll`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kinema.app.segment_jobs import ModelChoice
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.document import store
from kinema.ui.model.exports import Exports
from kinema.ui.model.generate import Generate
from kinema.ui.model.history import EditHistory
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.layers import Layers
from kinema.ui.model.objects import Objects
from kinema.ui.model.picture import Picture
from kinema.ui.model.pose_overlay import PoseOverlay
from kinema.ui.model.propagation import Propagation
from kinema.ui.model.remote import RemoteSetting
from kinema.ui.model.restyle import Restyle
from kinema.ui.model.session import Session, project_for
from kinema.ui.model.style_keys import StyleKeys
from kinema.ui.model.tools import Tools
from kinema.ui.model.transport import Transport


class Editor:
    """An open project: its session (project, footage, notes), transport, history, objects,
    tools, layers, picture, jobs, propagation, exports, the pose overlay, the style layers'
    keys and their propagation, and the Generate and Restyle panels (``sdxl``: their SDXL name
    or folder, ``None`` for the defaults; ``controlnets``: the restyle's ControlNet name or
    folder by kind; ``video_models``: the Restyle panel's video engines' models, by the names
    of :data:`kinema.ui.model.video_restyle.MODEL_KEYS`; ``remote``: the remote worker setting,
    default the one saved, :meth:`RemoteSetting.load`)."""

    def __init__(self, folder: str | os.PathLike[str], *, backend: str = "classic",
                 choice: ModelChoice | None = None, sdxl: str | os.PathLike[str] | None = None,
                 controlnets: Mapping[str, str | os.PathLike[str]] | None = None,
                 video_models: Mapping[str, str | os.PathLike[str]] | None = None,
                 remote: RemoteSetting | None = None) -> None:
        self.session = Session(folder, backend=backend, choice=choice)
        self.folder, self.file = self.session.folder, self.session.file
        try:
            self.transport = Transport(self.session.frames, self.session.fps)
            self.history = EditHistory(self.session)
            self.objects = Objects(self.session, self.history)
            self.tools = Tools(self.session, self.transport, self.objects, self.history)
            self.layers = Layers(self.session, self.history)
            self.jobs = Jobs(self.session)
            self.picture = Picture(self.session, self.transport, self.jobs)
            self.propagation = Propagation(self.session, self.transport, self.objects, self.jobs)
            self.exports = Exports(self.session, self.objects, self.jobs)
            self.pose = PoseOverlay(self.session, self.transport)
            self.remote = remote if remote is not None else RemoteSetting.load()
            self.generate = Generate(self.session, self.transport, self.history, self.jobs, self.remote,
                                     model=sdxl)
            self.restyle = Restyle(self.session, self.transport, self.objects, self.history, self.jobs,
                                   self.remote, model=sdxl, controlnets=controlnets,
                                   video_models=video_models)
            self.styles = StyleKeys(self.session, self.transport, self.objects, self.history, self.jobs)
        except BaseException:
            self.session.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, backend: str = "classic",
             choice: ModelChoice | None = None, sdxl: str | os.PathLike[str] | None = None,
             controlnets: Mapping[str, str | os.PathLike[str]] | None = None,
             video_models: Mapping[str, str | os.PathLike[str]] | None = None,
             remote: RemoteSetting | None = None) -> Editor:
        """A project folder opens as is; a video opens the project beside it (``VIDEO.kinema``),
        made on first use."""
        from kinema.app.project_jobs import new_project

        target = Path(path)
        if target.is_dir() or target.suffix == store.SUFFIX:
            return cls(target, backend=backend, choice=choice, sdxl=sdxl, controlnets=controlnets,
                       video_models=video_models, remote=remote)
        if not target.is_file():
            raise InvalidArgumentError("no such video or project", path=target)
        folder = project_for(target)
        if not (folder / store.DOCUMENT).is_file():
            new_project(folder, target)
        editor = cls(folder, backend=backend, choice=choice, sdxl=sdxl, controlnets=controlnets,
                     video_models=video_models, remote=remote)
        if folder.parent != target.parent:
            editor.session.note(f"{target.parent} is read-only: the project is {folder}")
        return editor

    @property
    def pending_autosave(self) -> bool:
        """Whether an earlier session's unsaved edits wait for a decision (nothing can be
        edited until then)."""
        return self.session.pending_autosave

    def poll(self) -> list[str]:
        """Once per UI frame, on the UI thread: note failed jobs, and bring what finished jobs
        made into the document (a generated asset, restyled keys), each one step of the
        history. Returns the failures."""
        failed = self.jobs.poll()
        for part in (self.generate, self.restyle, self.styles):
            try:
                part.poll()
            except KinemaError as exc:
                failed.append(str(exc))
                self.session.note(failed[-1], error=True)
        return failed

    def busy(self) -> bool:
        """Whether work is under way: a job, the pose overlay's worker, or a finished job whose
        result :meth:`poll` has not brought in yet (scripts wait for all)."""
        return (self.jobs.busy() or self.pose.busy() or self.generate.job is not None
                or self.restyle.job is not None or self.styles.job is not None)

    def close(self) -> None:
        """Stop jobs and release the project and the footage (saving is the caller's choice;
        unsaved edits stay in the autosave)."""
        self.jobs.stop()
        self.pose.close()
        self.picture.close()
        self.session.close()
