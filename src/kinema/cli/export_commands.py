"""Interchange commands: export mattes, cutouts, previews and timelines; import timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

export_app = typer.Typer(help="Take work out of kinema: mattes, cutouts, timelines.",
                         no_args_is_help=True)

Project = Annotated[Path, typer.Argument(help="Project folder.", show_default=False)]
Track = Annotated[str, typer.Option("--track", "-t", help="Mask track id.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace the output if it exists.")]
Grow = Annotated[float, typer.Option("--grow", help="Grow (or, negative, shrink) by pixels.")]
Feather = Annotated[float, typer.Option("--feather", help="Soften the edge over about this many pixels.")]
Soft = Annotated[bool, typer.Option(
    "--soft", help="Soften the edge along the picture (hair, motion blur; guided filter).")]


@export_app.command()
def matte(
    project: Project,
    track: Track,
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Folder (PNG sequence) or FILE.mov (ProRes 4444).")],
    depth: Annotated[int, typer.Option("--depth", help="PNG bits per pixel: 8 or 16.")] = 8,
    grow: Grow = 0.0,
    feather: Feather = 0.0,
    invert: Annotated[bool, typer.Option("--invert", help="White outside the object.")] = False,
    soft: Soft = False,
    overwrite: Overwrite = False,
) -> None:
    """Write a mask track as a black-and-white matte, frame for frame with its footage."""
    from kinema.app.export_jobs import export_matte
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        show_progress(export_matte(project, track, output, depth=depth, grow=grow, feather=feather,
                                   invert=invert, soft=soft, overwrite=overwrite), f"matte {track}")
    out.print(f"wrote {output}")


@export_app.command()
def cutout(
    project: Project,
    track: Track,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="FILE.mov (ProRes 4444), FILE.webm (VP9) or a folder (PNG).")],
    codec: Annotated[str | None, typer.Option("--codec", "-c",
                                              help="prores4444, vp9, png or exr.")] = None,
    grow: Grow = 0.0,
    feather: Feather = 0.0,
    soft: Soft = False,
    overwrite: Overwrite = False,
) -> None:
    """Write the tracked subject over transparency (straight alpha)."""
    from kinema.app.export_jobs import export_cutout
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        show_progress(export_cutout(project, track, output, codec=codec, grow=grow, feather=feather,
                                    soft=soft, overwrite=overwrite), f"cutout {track}")
    out.print(f"wrote {output}")


@export_app.command()
def preview(
    project: Project,
    output: Annotated[Path, typer.Option("--output", "-o", help="OUT.mp4")],
    track: Annotated[list[str] | None, typer.Option(
        "--track", "-t", help="Mask track id (repeat; default: all).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write the footage with the masks tinted and outlined over it, to check them."""
    from kinema.app.export_jobs import export_preview
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        show_progress(export_preview(project, track, output, overwrite=overwrite), "preview")
    out.print(f"wrote {output}")


@export_app.command()
def otio(
    project: Project,
    output: Annotated[Path, typer.Argument(
        help="OUT.otio, .edl (CMX 3600) or .xml (Final Cut 7 XML, which Premiere and Resolve "
             "read); the last two need their OTIO adapter (kinema[interchange]).",
        show_default=False)],
    overwrite: Overwrite = False,
) -> None:
    """Write the timeline for other editors through OpenTimelineIO."""
    from kinema.app.interchange_jobs import export_timeline
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        export_timeline(project, output, overwrite=overwrite)
    out.print(f"wrote {output}")


def import_timeline(
    timeline: Annotated[Path, typer.Argument(help="A .otio, .edl or .xml file.", show_default=False)],
    project: Annotated[Path, typer.Argument(help="Project folder to create.", show_default=False)],
    rate: Annotated[str | None, typer.Option(
        "--rate", help="Frame rate of an EDL (they do not record it), e.g. 30000/1001.")] = None,
) -> None:
    """Create a project from a timeline (kinema's own OTIO exports come back whole)."""
    from kinema.app.interchange_jobs import import_timeline as run_import
    from kinema.cli.console import exit_on_error, out
    from kinema.core.timebase import to_fraction

    with exit_on_error():
        folder = run_import(timeline, project, rate=to_fraction(rate) if rate else None)
    out.print(f"created {folder}")


def register(app: typer.Typer) -> None:
    """Add ``export ...`` and ``import`` to ``app``."""
    app.add_typer(export_app, name="export")
    app.command("import")(import_timeline)
