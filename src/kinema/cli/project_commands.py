"""Project commands: new, render, provenance, media, relink, recover."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape


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


def render(
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Movie file or image-sequence folder.")],
    frames: Annotated[str | None, typer.Option(
        "--range", help="Timeline frames A:B (B excluded); either side may be left out.")] = None,
    codec: Annotated[str | None, typer.Option(
        "--codec", "-c", help="h264, h265, prores4444, prores, vp9, png or exr.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y",
                                            help="Replace the output if it exists.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep the chunks an interrupted render of the same project left.")] = False,
) -> None:
    """Render the timeline (picture and mixed sound), with a provenance record beside it.

    Rendering goes in two-second chunks: after a crash or Ctrl-C, run the same command with
    --resume to continue where it stopped."""
    from kinema.app.render_job import render as run_render
    from kinema.cli.console import Terminated, exit_on_error, fail, out, show_progress
    from kinema.cli.prompt_args import parse_range

    with exit_on_error():
        start, stop = parse_range(frames)
        try:
            show_progress(run_render(project, output, start=start, stop=stop, codec=codec,
                                     overwrite=overwrite, resume=resume), f"render {project.name}")
        except KeyboardInterrupt as exc:
            stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
            fail(f"{stopped}; run the same command with --resume to continue",
                 code=143 if isinstance(exc, Terminated) else 130)
    out.print(f"wrote {output}")


def provenance(
    file: Annotated[Path, typer.Argument(help="A rendered file.", show_default=False)],
) -> None:
    """Print what went into a rendered file: sources with hashes, recipes, models, version."""
    from kinema.app.provenance import read_provenance
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        record = read_provenance(file)
    out.print_json(json.dumps(record))


def media(
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    verify: Annotated[bool, typer.Option(
        "--verify", help="Re-hash every file (slow) and check every mask track's data.")] = False,
) -> None:
    """List the project's media and whether each file is there (with --verify, each mask
    track's data too); exits 1 if anything is missing, changed or damaged."""
    from kinema.app.project_jobs import media_status
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        rows = media_status(project, verify=verify)
    for row in rows:
        colour = {"ok": "green", "missing": "red", "changed": "yellow", "damaged": "red"}[row.state]
        detail = f"  ({escape(row.detail)})" if row.detail else ""
        out.print(f"{row.id}  [{colour}]{row.state:8}[/]  {escape(row.path)}{detail}")
    if any(row.state != "ok" for row in rows):
        raise typer.Exit(1)


def relink(
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    media_id: Annotated[str, typer.Argument(help="Media id (see kinema media).", show_default=False)],
    file: Annotated[Path, typer.Argument(help="Where the file is now.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Accept a file with other content.")] = False,
) -> None:
    """Point a media reference at the file's new location (checked by content hash)."""
    from kinema.app.project_jobs import relink as run_relink
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        run_relink(project, media_id, file, force=force)
    out.print(f"relinked {media_id} to {file}")


def recover(
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    discard: Annotated[bool, typer.Option(
        "--discard", help="Drop the unsaved edits instead (and the mask tracks only they had).")] = False,
) -> None:
    """Apply the unsaved edits a session that ended without saving left in the autosave; the
    project they replace is kept as project.json.bak."""
    from kinema.app.project_jobs import recover_unsaved
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        dropped = recover_unsaved(project, discard=discard)
    if discard:
        tracks = f" and mask tracks {', '.join(dropped)}" if dropped else ""
        out.print(f"discarded the unsaved edits{tracks} in {escape(str(project))}")
    else:
        out.print(f"recovered the unsaved edits into {escape(str(project))} "
                  "(the previous save is project.json.bak)")


def register(app: typer.Typer) -> None:
    """Add the project commands to ``app``."""
    for command in (new, render, provenance, media, relink, recover):
        app.command()(command)
