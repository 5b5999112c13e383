"""Retime commands: a clip of a project slowed down with in-betweens (``kinema retime``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def retime(
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    clip: Annotated[str, typer.Option("--clip", help="The id of the clip to slow down (a video "
                                      "layer's clip, e.g. c1).", show_default=False)],
    factor: Annotated[int | None, typer.Option(
        "--factor", help="How many times slower: 2, 3, 4 ... (N-1 in-betweens per frame).")] = None,
    speed: Annotated[str | None, typer.Option(
        "--speed", help="The new speed instead: 0.5, 1/3, 0.25 ... (1/N).")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="flow (bidirectional optical flow, no weights), rife (RIFE v3.9, "
        "bundled) or blend (cross-fade).")] = "flow",
    ripple: Annotated[str, typer.Option(
        "--ripple", help="all: move everything after the clip later, every layer and sound "
        "track (keeps the edit in sync); layer: only the clip's layer and those clips' sound; "
        "none: move nothing (refused if the clip would run over the next one).")] = "all",
    audio: Annotated[str, typer.Option(
        "--audio", help="The clip's own sound: keep (normal speed from the clip's first frame) "
        "or remove.")] = "keep",
    cut_guard: Annotated[bool, typer.Option(
        "--cut-guard/--no-cut-guard",
        help="Repeat a frame instead of blending two shots across a hard cut in the clip.")] = True,
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu for rife (default: the best here).")] = None,
) -> None:
    """Slow a clip of a project down N times with in-between frames (slow motion).

    Only the clip's source range is read. Its frames, N times as many (every Nth one a frame
    the clip showed, the others made by --backend), go to a new ProRes 4444 movie in
    PROJECT/media/ with its recipe; the clip then shows that movie over N times as many
    timeline frames, and what follows moves later (--ripple). One undoable edit, saved; the
    previous save is kept as project.json.bak. `kinema provenance` of a render lists the recipe.

    Sound is not slowed down: the clip's own sound stays at normal speed from its first frame
    (--audio remove takes it out). A clip on a masked layer is refused (the masks are per frame
    of the old footage); re-track the object on the new media instead."""
    from kinema.app.retime_jobs import retime_clip
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        done = show_progress(retime_clip(project, clip, factor=factor, speed=speed, backend=backend,
                                         ripple=ripple, audio=audio, cut_guard=cut_guard,  # type: ignore[arg-type]
                                         device=device), f"retime {clip}")
    moved = f"; {done.moved} item(s) after it moved {done.frames - done.before} frames later" \
        if done.moved else ""
    out.print(f"retimed {done.clip_id} x{done.factor}: {done.before} -> {done.frames} frames of "
              f"{done.media_id} ({done.movie}){moved}; the timeline is {done.duration} frames",
              markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the retime command to ``app``."""
    app.command()(retime)
