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
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import Steps

if TYPE_CHECKING:
    from kinema.app.asset_jobs import Asset
    from kinema.app.remote import RemoteResult, RemoteWorker
    from kinema.app.restyle_jobs import Styled, TrackMasks

SETTINGS = "remote.json"
"""The setting's file in the user's kinema config folder (beside the recent files)."""
MODEL_ROLES = ("generate", "restyle", "canny", "pose", "depth")
"""The models a remote job names: the Generate panel's SDXL, the restyle's inpainting SDXL, and
the restyle's ControlNet of each condition."""
TEST_TIMEOUT = 5.0
"""Seconds *Test connection* waits for the worker (the window waits with it)."""


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


# -- jobs on the worker -----------------------------------------------------------------------


def remote_asset(remote: RemoteSetting, prompt: str, out: Path, *, negative: str, seed: int,
                 size: tuple[int, int] | None,
                 loras: Sequence[tuple[Path, float]]) -> Steps[tuple[Asset, np.ndarray]]:
    """:func:`kinema.app.project_assets.make_project_asset` on the worker: the asset written to
    ``out`` with its record, and its straight RGBA picture."""
    from kinema.app.remote_calls import asset_remote

    out.parent.mkdir(parents=True, exist_ok=True)
    with remote.open() as worker:
        result = yield from asset_remote(worker, prompt, out, negative=negative, seed=seed,
                                         size=size, model=remote.model("generate"), loras=loras)
    return asset_of(result)


def asset_of(result: RemoteResult) -> tuple[Asset, np.ndarray]:
    """A remote asset as :func:`kinema.app.asset_jobs.make_asset` describes its own, with its
    picture: the recipe from its record, the object's centre from its matte."""
    from kinema.app.asset_jobs import Asset

    recipe, record = _recipe(result)
    rgba = _read(result.path, four=True)
    height, width = rgba.shape[:2]
    if recipe.uncut:  # kept whole: no matte to centre on
        centre = (width / 2, height / 2)
    else:  # the middle of the matte's box, as the cut-out measured it
        ys, xs = np.nonzero(rgba[..., 3] > 127)
        centre = ((int(xs.min()) + int(xs.max()) + 1) / 2, (int(ys.min()) + int(ys.max()) + 1) / 2)
    return Asset(result.path, record, (width, height), centre, not recipe.uncut, recipe), rgba


def remote_keys(remote: RemoteSetting, masks: TrackMasks, footage: Path, out: Path, *,
                track_id: str, frames: Sequence[int], controls: Sequence[Any],
                on_key: Callable[[int, np.ndarray], None], **options: Any) -> Steps[Styled]:
    """:func:`kinema.app.restyle_jobs.restyle_masks` on the worker: the track's masks on the key
    ``frames`` sent as a label map (:class:`~kinema.app.mask_outputs.NpzLabels`), the keys
    written to ``out``; each preview the worker sends goes to ``on_key`` for the next key, and
    each key as written once they are in. ``options``: prompt, negative, seed, strength,
    loras."""
    from kinema.app.remote_calls import restyle_remote

    keys = sorted(set(frames))
    previews = iter(keys)
    nets = {c.kind: name for c in controls if (name := remote.model(c.kind))}
    with tempfile.TemporaryDirectory(prefix="kinema-remote-") as temp, remote.open() as worker:
        labels = _label_map(masks, keys, Path(temp) / f"{track_id}.npz")
        result = yield from restyle_remote(
            worker, footage, out, mask=labels, frames=keys, controls=controls,
            model=remote.model("restyle"), controlnets=nets,
            on_preview=lambda image: on_key(next(previews, keys[-1]), image), **options)
    return styled_of(result, keys, track_id, footage, on_key)


def _label_map(masks: TrackMasks, keys: Sequence[int], path: Path) -> Path:
    """The masks of the key frames as a label map up to the last key (empty between them: the
    worker reads only the keys)."""
    from kinema.app.mask_outputs import NpzLabels

    width, height = masks.size
    frames = min(max(keys) + 1, masks.frames)
    writer = NpzLabels(path, frames, masks.size, overwrite=False)
    empty, wanted = np.zeros((height, width), np.uint8), set(keys)
    try:
        for frame in range(frames):
            mask = masks.read(frame) if frame in wanted else None
            writer.write(empty if mask is None else mask.astype(np.uint8))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def styled_of(result: RemoteResult, keys: Sequence[int], track_id: str, footage: Path,
              on_key: Callable[[int, np.ndarray], None]) -> Styled:
    """Remote keys as :func:`kinema.app.restyle_jobs.restyle_masks` describes its own: the
    recipe from the record, on ``track_id`` (the worker saw a label map), read from
    ``footage``; each key shown to ``on_key`` as written (the previews were the worker's
    latest, which may have run ahead)."""
    from kinema.app.operation_records import Source
    from kinema.app.restyle_jobs import KEY_NAME, Styled
    from kinema.core.hashing import file_sha256

    recipe, record = _recipe(result)
    written: dict[int, str] = {}
    for frame in keys:
        path = result.path / KEY_NAME.format(frame=frame)
        written[frame] = file_sha256(path)
        on_key(frame, _read(path, four=False))
    return Styled(result.path, tuple(keys), (), record, recipe.model_copy(update={"track_id": track_id}),
                  written, (Source.of(footage),), track_id)


def _recipe(result: RemoteResult) -> tuple[Any, Path]:
    """The recipe in the record of a remote job's output (its one operation), and the record."""
    from pydantic import TypeAdapter

    from kinema.document.model import Recipe

    if result.record is None:
        raise KinemaError(f"the worker sent {result.path.name} without its record")
    data = json.loads(result.record.read_text())
    return TypeAdapter(Recipe).validate_python(data["operations"][0]), result.record


def _read(path: Path, *, four: bool) -> np.ndarray:
    """A PNG the worker made as ``uint8`` RGBA (``four``) or RGB."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if four else cv2.IMREAD_COLOR)
    if image is None:
        raise KinemaError(f"the worker sent {path.name}, which is not a PNG")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if four else cv2.COLOR_BGR2RGB))

