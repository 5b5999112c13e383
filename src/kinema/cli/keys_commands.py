"""Keys command: ``kinema keys`` (key frames picked where the footage changes most)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LOOK_NAMES = "painterly, toon, sketch, watercolor, posterize"
"""The looks' names as the help lists them (:data:`kinema.generate.looks.LOOKS`)."""


def keys(
    video: Annotated[Path, typer.Argument(help="The footage.", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The keys folder: one PNG per key, named by frame (00024.png).",
        show_default=False)],
    auto: Annotated[int, typer.Option(
        "--auto", help="How many key frames to pick where the footage changes most.",
        show_default=False)],
    look: Annotated[str | None, typer.Option(
        "--look", help=f"Style the keys with a classical look: {LOOK_NAMES} "
        "(default: the source frames, to paint over).")] = None,
    start: Annotated[int, typer.Option("--start", help="First frame of the range.")] = 0,
    end: Annotated[int | None, typer.Option(
        "--end", help="The frame after the range (default: the clip's end).")] = None,
    mask: Annotated[Path | None, typer.Option(
        "--mask", help="Follow the object: label maps from kinema track -o masks.npz.")] = None,
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Follow the object of this project's --track.")] = None,
    track: Annotated[str | None, typer.Option(
        "--track", "-t", help="The project's mask track (id or name).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the keys kinema wrote in the folder before.")] = False,
) -> None:
    """Pick key frames where the footage changes most and write them as a keys folder.

    Each key covers an equal share of the change through the range, so keys are dense where
    the footage moves and sparse where it is still. The folder is what kinema propagate --keys
    and kinema export ebsynth --keys read: paint over the frames (Krita, Photoshop), or give
    --look for a classical look as a preview. With --mask or --project/--track the change on
    the object counts, keys fall only on frames where it is, and the look styles only its
    matte. KEYS.provenance.json beside the folder holds the recipe."""
    from kinema.app.key_jobs import make_keys
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        result = show_progress(
            make_keys(video, output, count=auto, look=look, start=start, end=end, mask=mask,
                      project=project, track=track, overwrite=overwrite),
            f"keys {video.name}")
    frames = ", ".join(map(str, result.frames))
    out.print(f"wrote {result.output}: {len(result.frames)} key(s) of frames "
              f"{result.start}-{result.end - 1}: {frames}")


def register(app: typer.Typer) -> None:
    """Add the keys command to ``app``."""
    app.command()(keys)
