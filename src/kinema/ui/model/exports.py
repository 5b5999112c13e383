"""Exports as background jobs: the active object's matte or cutout, or a render."""

from __future__ import annotations

import os
from pathlib import Path

from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.objects import Objects
from kinema.ui.model.session import Session, writes

EXPORTS = ("matte", "cutout", "render")


class Exports:
    """Starts exports; the project is saved first, so they see what the window shows."""

    def __init__(self, session: Session, objects: Objects, jobs: Jobs) -> None:
        self.session, self.objects, self.jobs = session, objects, jobs

    @writes
    def export(self, kind: str, out: str | os.PathLike[str], **options: object) -> Job:
        """A background export: ``matte`` or ``cutout`` of the active object, or ``render`` of
        the timeline (saved first, so the render sees what the window shows)."""
        from kinema.app import export_jobs, render_job

        folder = self.session.folder
        if kind not in EXPORTS:
            raise InvalidArgumentError(f"unknown export {kind!r}", hint="matte, cutout or render")
        track = None if kind == "render" else self.objects.get(self.objects.active).track_id
        self.session.file.save()
        if track is None:
            steps = lambda: render_job.render(folder, out, **options)  # noqa: E731
        else:
            run = export_jobs.export_matte if kind == "matte" else export_jobs.export_cutout
            steps = lambda: run(folder, track, out, **options)  # noqa: E731
        return self.jobs.start(f"{kind} -> {Path(out).name}", steps,
                               on_done=lambda: self.session.note(f"wrote {out}"))
