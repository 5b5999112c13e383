"""The Generate panel: a transparent asset from words, made as a background job into the
project's ``assets/`` folder and placed where the user clicked, on the playhead's frame.

The job only writes the PNG and its record; the document changes on the UI thread, in
:meth:`Generate.poll`, as one step of the history (media, layer and recipe together), so undo
takes the placed asset away whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinema.app.asset_jobs import Asset, Spot, placement
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Job
from kinema.ui.model.history import EditHistory
from kinema.ui.model.jobs import Jobs
from kinema.ui.model.remote import RemoteSetting, remote_asset
from kinema.ui.model.session import Session, writes
from kinema.ui.model.transport import Transport


@dataclass(frozen=True)
class _Pending:
    """A job making an asset, and where it goes once made."""

    job: Job
    spot: Spot


class Generate:
    """What to generate (prompt, negative, seed, size, LoRAs; ``model``: an SDXL name or
    folder, ``None`` for the default), the job making it, and the last asset placed, for a
    preview. ``size`` ``None`` is the model card's. While ``remote`` is on, the asset is made
    on that worker."""

    def __init__(self, session: Session, transport: Transport, history: EditHistory, jobs: Jobs,
                 remote: RemoteSetting, *, model: str | os.PathLike[str] | None = None) -> None:
        self.session, self.transport, self.history, self.jobs = session, transport, history, jobs
        self.remote = remote
        self.prompt = ""
        self.negative = ""
        self.seed = 0
        self.size: tuple[int, int] | None = None
        self.model = model
        self.loras: list[tuple[Path, float]] = []
        self.preview: np.ndarray | None = None
        """The last asset placed, straight RGBA."""
        self._pending: _Pending | None = None

    @property
    def job(self) -> Job | None:
        """The job making an asset, until its asset is placed (or it failed)."""
        return self._pending.job if self._pending is not None else None

    @writes
    def place(self, x: float, y: float, scale: float = 1.0) -> Job:
        """Make the asset of the prompt as a background job, to be placed with its object's
        centre at ``(x, y)`` (frame pixels), ``scale`` times its size, from the playhead's frame
        on. The PNG goes to ``assets/<subject>-<seed>.png`` in the project (a free name)."""
        from kinema.app.project_assets import ASSETS, asset_path, make_project_asset

        prompt = self.prompt.strip()
        if not prompt:
            raise InvalidArgumentError("the prompt is empty", hint="say what to make first")
        if self._pending is not None:
            raise InvalidArgumentError("an asset is being made", hint="wait for it, or cancel its job")
        if not scale > 0:
            raise InvalidArgumentError(f"the scale must be positive, got {scale}")
        out = asset_path(self.session.folder / ASSETS, prompt, self.seed)
        options = {"negative": self.negative, "seed": self.seed, "size": self.size,
                   "loras": list(self.loras)}
        if self.remote.on:
            job = self.jobs.start(f"generate {out.name} on {self.remote.host}",
                                  lambda: remote_asset(self.remote, prompt, out, **options))
        else:
            job = self.jobs.start(f"generate {out.name}", lambda: make_project_asset(
                prompt, out, model=self.model, device=self.session.choice.device, **options))
        self._pending = _Pending(job, Spot(x, y, self.transport.playhead, scale))
        return job

    def poll(self) -> None:
        """On the UI thread, each frame: place a finished job's asset (one step of the history)
        and show it as the preview. A failed or cancelled job is dropped (:class:`Jobs` notes
        why)."""
        pending = self._pending
        if pending is None or not pending.job.finished:
            return
        self._pending = None
        if pending.job.result is None:
            return
        asset, rgba = pending.job.result
        self._place(asset, pending.spot)
        self.preview = rgba

    def _place(self, asset: Asset, spot: Spot) -> None:
        edit, layer_id = placement(self.session.file.project, self.session.folder, asset, spot)
        self.history.do(edit)
        found = "" if asset.found else f" (no {asset.recipe.subject} found: kept whole)"
        self.session.note(f"placed {asset.output.name} as layer {layer_id} from frame {spot.frame}{found}")
