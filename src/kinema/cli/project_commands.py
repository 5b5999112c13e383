"""Project commands: new."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def new(
    path: Annotated[Path, typer.Argument(help="Project folder to create (.kinema is appended).",
                                         show_default=False)],
    video: Annotated[Path, typer.Option("--video", help="The footage to start from.")],
) -> None:
    """Create a project from a video: the clip on one layer, its sound on one track."""
    from kinema.app.project_jobs import new_project
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        folder = new_project(path, video)
    out.print(f"created {folder}")


def register(app: typer.Typer) -> None:
    """Add the project commands to ``app``."""
    app.command()(new)
