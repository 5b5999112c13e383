"""``kinema serve``: the options checked here (a public bind needs a token), the server itself
handed in by the composition layer (``kinema.entry`` sets :data:`start`), since the CLI and
``kinema.serve`` are surfaces that never import each other."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

start: Callable[..., None] | None = None
"""``kinema.serve.serve``, set by ``kinema.entry.run`` (the ``kinema`` program)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_store() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kinema" / "serve"


def read_token(path: Path) -> str:
    from kinema.core.errors import InvalidArgumentError

    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise InvalidArgumentError(f"the token in {path} is shorter than 16 characters or has spaces",
                                   hint="make one with: python -c \"import secrets; "
                                        "print(secrets.token_urlsafe(32))\" > TOKEN_FILE")
    return token


def parse_models(values: list[str]) -> dict[str, Path]:
    """``--model NAME=DIR`` options: each NAME a plain name, each DIR a model folder here."""
    import re

    from kinema.app.remote_jobs import MODEL_NAME
    from kinema.core.errors import InvalidArgumentError
    from kinema.models.registry import is_model_folder

    found: dict[str, Path] = {}
    for value in values:
        name, equals, folder = value.partition("=")
        if not equals or not re.fullmatch(MODEL_NAME, name):
            raise InvalidArgumentError(f"--model {value!r} is not NAME=DIR",
                                       hint="e.g. --model my-sdxl=/models/my-sdxl")
        if not is_model_folder(folder):
            raise InvalidArgumentError(f"--model {name}: {folder} is not a model folder",
                                       path=folder, hint="give a folder with config.json or "
                                                          "model_index.json")
        found[name] = Path(folder).resolve()
    return found


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but "
                                      "loopback needs --token-file.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8765,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="A file holding the bearer token every request must carry.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Jobs run at once (one per "
                                         "GPU); more wait in a queue.")] = 1,
    max_upload_mb: Annotated[int, typer.Option("--max-upload-mb", min=1,
                                               help="Largest upload accepted.")] = 2048,
    store: Annotated[Path | None, typer.Option(
        "--store", help="Folder for uploaded blobs and results (default: "
                        "~/.cache/kinema/serve).")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="NAME=DIR: a model folder jobs may ask for by NAME (repeat); the "
                        "registry's names are always allowed.")] = None,
    max_store_gb: Annotated[float | None, typer.Option(
        "--max-store-gb", min=0.001, help="Keep the stored uploads and results under this "
        "size, forgetting the least recently used first (default: no limit).")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Run each job in a Ray task with a GPU of its own (KINEMA_RAY=HOST:PORT, "
                      "else a local cluster); --workers jobs at once.")] = False,
) -> None:
    """Run the HTTP worker: other machines send job specs and blobs, it runs them here."""
    from kinema.cli.console import err, exit_on_error
    from kinema.core.errors import InvalidArgumentError, KinemaError

    with exit_on_error():
        token = read_token(token_file) if token_file is not None else None
        if token is None and not is_loopback(host):
            raise InvalidArgumentError(f"--host {host} is reachable from other machines: "
                                       "kinema serve will not listen there without --token-file")
        if start is None:
            raise KinemaError("kinema serve runs from the kinema program (python -m kinema serve)")
        folders = parse_models(model or [])
        folder = store or default_store()
        on_ray = " on Ray" if ray else ""
        err.print(f"kinema serve on http://{host}:{port} ({'token' if token else 'no token, loopback'}"
                  f", {workers} worker(s){on_ray}, store {folder})", markup=False, highlight=False)
        options: dict[str, Any] = dict(host=host, port=port, token=token, workers=workers,
                                       max_upload_mb=max_upload_mb, store=folder, models=folders, ray=ray,
                                       max_store_gb=max_store_gb)
        start(**options)


def register(app: typer.Typer) -> None:
    app.command()(serve)
