"""Style layers in the editor: the keys of each layer for the timeline, a painted PNG dropped
on the playhead's frame made a key of the selected object's style layer (one step of the
history), and the layers brought up to date as a background job.

A key is a whole styled frame of the object's footage (:mod:`kinema.app.style_layer`); the
editor's playhead indexes that footage, as the mask lanes do, so a key dropped at the playhead
is the key of that footage frame and its marker sits over it. Propagating takes in keys
changed on disk first (one step of the history), then runs ``update_styles`` on a copy of the
document (the UI thread may edit meanwhile); the viewer reads the frames from the cache as the
job writes them, so they show as they arrive and all of them once it ends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kinema.app.style_layer import (
    StyleUpdate,
    check_keys,
    paint_keys,
    refresh_keys,
    style_items,
    update_styles,
)
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job
from kinema.ui.model.history import EditHistory
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.objects import Objects
from kinema.ui.model.session import Session, writes
from kinema.ui.model.transport import Transport


class StyleKeys:
    """The project's style layers as the editor shows and changes them: their key frames,
    painted keys dropped on a frame, and the propagation job."""

    def __init__(self, session: Session, transport: Transport, objects: Objects, history: EditHistory,
                 jobs: Jobs) -> None:
        self.session, self.transport, self.objects = session, transport, objects
        self.history, self.jobs = history, jobs
        self._job: Job | None = None

    # -- reading --------------------------------------------------------------------------------

    def key_frames(self, layer_id: str) -> list[int]:
        """The footage frames of the keys of layer ``layer_id``'s style items (none for a layer
        that is not a style layer), for the markers on its timeline row."""
        return sorted({key.frame for layer, item in style_items(self.session.file.project)
                       if layer.id == layer_id for key in item.keys})

    def layer_of(self, track_id: str | None) -> str | None:
        """The id of object ``track_id``'s style layer, if it has one."""
        return next((layer.id for layer, item in style_items(self.session.file.project)
                     if item.track_id == track_id), None)

    @property
    def job(self) -> Job | None:
        """The running propagation, until :meth:`poll` has noted its end."""
        return self._job

    # -- a painted key --------------------------------------------------------------------------

    @writes
    def drop(self, paths: Sequence[str | os.PathLike[str]], frame: int | None = None) -> str:
        """Make the image dropped (one path) the key of footage frame ``frame`` (default: the
        playhead's) on the selected object's style layer, which is made when the object has
        none: one step of the history. The image must be a frame of the footage's size; it
        stays where it is (the document records its path and hash). Returns the style item's
        id."""
        paths = [Path(p) for p in paths]
        if not paths:
            raise InvalidArgumentError("nothing was dropped", hint="drop one painted PNG on the window")
        if len(paths) > 1:
            raise InvalidArgumentError(f"{len(paths)} files were dropped; a frame takes one key",
                                       hint="drop one painted PNG at a time, each on its frame")
        active = self.objects.active
        if active is None:
            raise InvalidArgumentError("no object is selected: a painted key styles an object",
                                       hint="add or select the object the painting styles, "
                                            "then drop it again")
        obj = self.objects.get(active)
        frame = self.transport.playhead if frame is None else frame
        session = self.session
        edit, item_id = paint_keys(session.file.project, session.folder, obj.track_id, {frame: paths[0]})
        self.history.do(edit)
        session.note(f"{obj.name}: {paths[0].name} is the key of frame {frame}; "
                     "propagate the style to see it")
        return item_id

    # -- propagating ----------------------------------------------------------------------------

    @writes
    def propagate(self) -> Job:
        """Take in keys changed on disk (one step of the history, noted), then bring the
        visible style layers' frames up to date as a background job (one progress event per
        frame styled anew; cancel stops it, the frames already written stay)."""
        if self._job is not None:
            raise InvalidArgumentError("a style propagation is running",
                                       hint="wait for it, or cancel its job")
        session = self.session
        edit, notes = refresh_keys(session.file.project, session.folder)
        if edit is not None:
            self.history.do(edit)
        for line in notes:
            session.note(line)
        project = session.file.project
        chosen = style_items(project, visible=True)
        if not chosen:
            raise InvalidArgumentError(
                "no style layer to propagate" if not style_items(project) else "every style layer is hidden",
                hint="drop a painted PNG on a frame of an object first" if not style_items(project)
                else "show the style layer to propagate it")
        for _layer, item in chosen:  # a missing or changed key: one error now, not a failed job
            check_keys(project, session.folder, item)
        copy, folder = project.model_copy(deep=True), session.folder
        self._job = self.jobs.start("propagate style", lambda: update_styles(copy, folder))
        return self._job

    def poll(self) -> None:
        """On the UI thread, each frame: note what a finished propagation did (a failed or
        cancelled one is noted by :class:`Jobs`)."""
        job = self._job
        if job is None or not job.finished:
            return
        self._job = None
        updates: list[StyleUpdate] | None = job.result
        if updates is None:
            return
        styled, kept = sum(u.styled for u in updates), sum(u.kept for u in updates)
        self.session.note(f"style propagated: {styled} frames styled, {kept} kept")
