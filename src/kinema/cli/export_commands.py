"""Interchange commands: export mattes, cutouts, previews and timelines; import timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

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


@export_app.command()
def ebsynth(
    project: Project,
    track: Track,
    keys: Annotated[list[str], typer.Option(
        "--keys", "-k", help="Styled keys: a restyle output folder (KEYS/00024.png) or "
                             "FRAME=IMAGE (repeat for more).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write video/, keys/, mask/ in.")],
    start: Annotated[int, typer.Option("--start", help="First frame of the range.")] = 0,
    end: Annotated[int | None, typer.Option(
        "--end", help="The frame after the range (default: the clip's end).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a shot for the EbSynth app: video/, keys/ and mask/ (white object on black), one
    PNG per source frame named 00024.png. EbSynth's project file is not written."""
    from kinema.app.ebsynth_jobs import export_ebsynth
    from kinema.app.style_keys import parse_keys
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        done = show_progress(export_ebsynth(project, track, parse_keys(keys), output, start=start,
                                            end=end, overwrite=overwrite), f"ebsynth {track}")
    out.print(f"wrote {output}: frames {done.start}-{done.end - 1}, keys "
              f"{', '.join(map(str, done.keys))}")


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


class _ImportGroup(TyperGroup):
    """``kinema import FILE PROJECT`` stays the timeline import: a first argument that names
    no subcommand is taken as ``timeline``'s."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["timeline", *args]
        return super().parse_args(ctx, args)


import_app = typer.Typer(cls=_ImportGroup, no_args_is_help=True,
                         help="Bring work into kinema: timelines (kinema import FILE PROJECT), "
                              "frames made elsewhere.")
import_app.command("timeline")(import_timeline)


@import_app.command("frames")
def import_frames(
    frames: Annotated[Path, typer.Argument(
        help="A folder of numbered images (EbSynth's output, 00012.png, ...).", show_default=False)],
    project: Annotated[Path, typer.Argument(help="Project folder.", show_default=False)],
    at: Annotated[int | None, typer.Option(
        "--at", help="Timeline frame of the first image (default: image N goes to frame N).")] = None,
    track: Annotated[str | None, typer.Option(
        "--track", "-t", help="Image N is frame N of this mask track's footage (as exported).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the movie and layer.")] = None,
) -> None:
    """Bring numbered frames made elsewhere back as a new top layer (a ProRes 4444 movie in
    PROJECT/imports/, placed as one clip)."""
    from kinema.app.ebsynth_jobs import import_frames as run_import
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        if at is not None and track is not None:
            from kinema.core.errors import InvalidArgumentError

            raise InvalidArgumentError("give --at or --track, not both")
        done = show_progress(run_import(frames, project, at=at, track=track, name=name),
                             f"import {frames.name}")
    out.print(f"imported {done.frames} frames as layer {done.layer_id} at timeline frames "
              f"{done.start}-{done.start + done.frames - 1} ({done.movie})")


def register(app: typer.Typer) -> None:
    """Add ``export ...`` and ``import ...`` to ``app``."""
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")
