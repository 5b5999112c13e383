"""The remote worker setting: a ``kinema serve`` worker the Generate and Restyle panels send
their work to when it is on, and the jobs that do it there.

A remote job is a generator of progress like a local one (closing it cancels the job on the
worker), and it returns what the local use case returns, an :class:`~kinema.app.asset_jobs.Asset`
or a :class:`~kinema.app.restyle_jobs.Styled`, so the finished work enters the project on the UI
thread exactly as a local result does. Models travel by name: a folder here means nothing there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import Job, Progress, Steps

if TYPE_CHECKING:
    from kinema.app.asset_jobs import Asset
    from kinema.app.remote import RemoteWorker
    from kinema.app.restyle_jobs import Styled, TrackMasks
    from kinema.app.video_restyle_jobs import VideoRestyled
    from kinema.ui.model.jobs import Jobs

SETTINGS = "remote.json"
"""The setting's file in the user's kinema config folder (beside the recent files)."""
MODEL_ROLES = ("generate", "restyle", "canny", "pose", "depth", "animatediff", "motion",
               "canny-sd15", "pose-sd15", "wan-vace")
"""The models a remote job names: the Generate panel's SDXL, the key restyle's inpainting SDXL
and its SDXL ControlNet of each condition; the video engines' models: AnimateDiff's SD 1.5
base, its motion adapter and its SD 1.5 ControlNets, and the Wan 2.1 VACE pipeline."""
TEST_TIMEOUT = 5.0
"""Seconds *Test connection* waits for the worker (on a job's thread: the window never waits)."""
TESTING = "testing…"
""":attr:`RemoteSetting.status` while *Test connection* waits for the answer."""


def settings_path() -> Path:
    """Where the setting is kept: the user's kinema config folder."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("kinema")) / SETTINGS


@dataclass
class RemoteSetting:
    """A ``kinema serve`` worker at ``url`` (its token in ``token_file``, else
    ``$KINEMA_TOKEN``), used while ``on``; ``models`` names the models there by role
    (:data:`MODEL_ROLES`; a role not named takes the worker's default); ``status`` is the last
    *Test connection*'s answer. The token itself is never saved."""

    url: str = ""
    token_file: Path | None = None
    on: bool = False
    models: dict[str, str] = field(default_factory=dict)
    status: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> RemoteSetting:
        """The saved setting (``path``, default :func:`settings_path`); without one, off, with
        the URL of ``$KINEMA_REMOTE``."""
        path = path or settings_path()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(url=os.environ.get("KINEMA_REMOTE", ""))
        token_file = data.get("token_file")
        models = {str(k): str(v) for k, v in data.get("models", {}).items()}
        return cls(url=str(data.get("url", "")), token_file=Path(token_file) if token_file else None,
                   on=bool(data.get("on")), models=models)

    def save(self, path: Path | None = None) -> None:
        """Keep the setting for the next session (``path``, default :func:`settings_path`)."""
        from kinema.core.atomic import atomic_write_bytes, naming_errors

        path = path or settings_path()
        data = {"url": self.url, "token_file": str(self.token_file) if self.token_file else None,
                "on": self.on, "models": {k: v for k, v in self.models.items() if v}}
        with naming_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(data, indent=2).encode())

    @property
    def host(self) -> str:
        """The worker's host (and port), for job labels."""
        return urlsplit(self.url.strip()).netloc or self.url.strip()

    def model(self, role: str) -> str | None:
        """The model named for ``role`` on the worker (``None``: the worker's default)."""
        return self.models.get(role) or None

    def token(self) -> str | None:
        """The token: the token file's text, else ``$KINEMA_TOKEN``."""
        if self.token_file is None:
            return os.environ.get("KINEMA_TOKEN") or None
        try:
            return self.token_file.read_text().strip() or None
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the token file ({exc.strerror})",
                                       path=self.token_file) from None

    def open(self, timeout: float = 30.0) -> RemoteWorker:
        """The worker, reached with the token."""
        from kinema.app.remote import RemoteWorker

        if not self.url.strip():
            raise InvalidArgumentError("no remote worker URL", hint="set it in the Remote worker panel")
        return RemoteWorker(self.url.strip(), self.token(), timeout=timeout)

    def test(self) -> str:
        """Ask the worker something that needs the token; ``ok`` or why not (also kept in
        :attr:`status`)."""
        try:
            with self.open(TEST_TIMEOUT) as worker:
                worker.has_blob("0" * 64)
            self.status = f"ok: {self.host} answers"
        except KinemaError as exc:
            self.status = str(exc)
        return self.status

    def start_test(self, jobs: Jobs) -> Job:
        """:meth:`test` as a job of ``jobs``, so the window never waits: :attr:`status` says
        :data:`TESTING` from now until the answer."""
        self.status = TESTING
        return jobs.start(f"test {self.host}", self._testing)

    def _testing(self) -> Steps[str]:
        yield Progress(0, 1, "test")
        return self.test()


# -- jobs on the worker -----------------------------------------------------------------------


def remote_asset(remote: RemoteSetting, prompt: str, out: Path, *, negative: str, seed: int,
                 size: tuple[int, int] | None,
                 loras: Sequence[tuple[Path, float]]) -> Steps[tuple[Asset, np.ndarray]]:
    """:func:`kinema.app.project_assets.make_project_asset` on the worker: the asset written to
    ``out`` with its record, and its straight RGBA picture."""
    from kinema.app.remote_calls import asset_of, asset_remote

    out.parent.mkdir(parents=True, exist_ok=True)
    with remote.open() as worker:
        result = yield from asset_remote(worker, prompt, out, negative=negative, seed=seed,
                                         size=size, model=remote.model("generate"), loras=loras)
    return asset_of(result)


def remote_keys(remote: RemoteSetting, masks: TrackMasks, footage: Path, out: Path, *,
                track_id: str, frames: Sequence[int], controls: Sequence[Any],
                on_key: Callable[[int, np.ndarray], None], **options: Any) -> Steps[Styled]:
    """:func:`kinema.app.remote_calls.restyle_masks_remote` on the setting's worker with its
    model names. ``options``: prompt, negative, seed, strength, loras."""
    from kinema.app.remote_calls import restyle_masks_remote

    nets = {c.kind: name for c in controls if (name := remote.model(c.kind))}
    with remote.open() as worker:
        return (yield from restyle_masks_remote(
            worker, masks, footage, out, track_id=track_id, frames=frames, on_key=on_key,
            controls=controls, model=remote.model("restyle"), controlnets=nets, **options))


def remote_video(remote: RemoteSetting, masks: TrackMasks, footage: Path, out: Path, *,
                 track_id: str, engine: str, controls: Sequence[Any],
                 on_window: Callable[[int, list[np.ndarray]], None] | None = None,
                 **options: Any) -> Steps[VideoRestyled]:
    """:func:`kinema.app.remote_calls.restyle_video_masks_remote` on the setting's worker with
    its model names. ``options``: prompt, negative, seed, strength, window, overlap,
    reference."""
    from kinema.app.remote_calls import restyle_video_masks_remote

    sd15 = engine == "animatediff"  # wan-vace takes its control video into the model itself
    nets = {c.kind: name for c in controls if sd15 and (name := remote.model(f"{c.kind}-sd15"))}
    with remote.open() as worker:
        return (yield from restyle_video_masks_remote(
            worker, masks, footage, out, track_id=track_id, frames=masks.frames, engine=engine,
            controls=controls, model=remote.model(engine),
            motion_model=remote.model("motion") if sd15 else None, controlnets=nets,
            on_window=on_window, **options))
