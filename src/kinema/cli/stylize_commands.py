"""Stylise command: ``kinema stylize`` (a project's style layers brought up to date)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def stylize(
    project: Annotated[Path, typer.Argument(help="The project.", show_default=False)],
    track: Annotated[str | None, typer.Option(
        "--track", "-t", help="The mask track whose style layer --key paints (id or name).")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="A painted key: FRAME=IMAGE, a whole styled frame (repeat for more).")] = None,
    quality: Annotated[str | None, typer.Option(
        "--quality", help="fast or best, for --track's style layer (or every one).")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Propagate the spans on a Ray cluster ($KINEMA_RAY, else a local one).")] = False,
) -> None:
    """Carry the project's style layers through their shots: propagate their keys.

    Keys repainted, added to or removed from a keys folder since the last run are taken in
    (one undoable edit), and only the frames a changed key reaches are propagated again; the
    rest come from the cache. --track OBJ --key 24=painted.png puts a painted key on that
    object's style layer (a new layer if it has none); the image stays where it is. kinema
    render does the propagation too, but refuses keys changed since this command last ran.
    With --ray the spans between keys are propagated in parallel on a Ray cluster, each as it
    would be here (see docs/ray.md)."""
    from kinema.app.style_keys import parse_keys
    from kinema.app.style_layer import stylize as run_stylize
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        given = parse_keys(key or [], "--key")
        result = show_progress(run_stylize(project, track=track, keys=given, quality=quality,
                                           ray=ray),
                               f"stylize {project.name}")
    for line in result.changes:
        out.print(line)
    for update in result.updates:
        out.print(f"{update.item_id}: {update.styled} frame(s) propagated, {update.kept} kept")


def register(app: typer.Typer) -> None:
    """Add the stylize command to ``app``."""
    app.command()(stylize)
