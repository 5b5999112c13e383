"""``--remote URL`` and ``--token-file F``: the options every command that can run on a
``kinema serve`` worker shares, and the worker they open."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from kinema.app.remote import RemoteWorker

Remote = Annotated[str | None, typer.Option(
    "--remote", envvar="KINEMA_REMOTE", show_envvar=True,
    help="Run it on a `kinema serve` worker at this URL (token: KINEMA_TOKEN or --token-file); "
    "see docs/serve.md.")]
TokenFile = Annotated[Path | None, typer.Option(
    "--token-file", help="A file holding the --remote worker's token.")]


def refuse_local_only(options: dict[str, Any], travels: str) -> None:
    """Exit with one usage error when any of ``options`` (flag -> value; ``None``/``False``/
    empty: not given) was given with ``--remote``; ``travels`` says which options do."""
    from kinema.cli.console import fail

    given = [flag for flag, value in options.items() if value not in (None, False, [], (), "")]
    if given:
        fail(f"{', '.join(given)} cannot be used with --remote ({travels} travel); "
             "run without --remote", code=2)


def remote_token(token_file: Path | None) -> str | None:
    """The worker's token: from ``token_file``, else ``$KINEMA_TOKEN``."""
    from kinema.cli.console import fail

    token = os.environ.get("KINEMA_TOKEN") or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip() or None
        except OSError as exc:
            fail(f"{token_file}: cannot read the token file ({exc.strerror})", code=2)
    return token


def open_worker(remote: str, token_file: Path | None) -> RemoteWorker:
    """The worker at ``remote`` with its token (:func:`remote_token`)."""
    from kinema.app.remote import RemoteWorker

    return RemoteWorker(remote, remote_token(token_file))
