"""Restore commands: interpolate (new frame rates), upscale (images and videos), speech."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.remote_args import Remote, TokenFile

Overwrite = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace the output if it exists.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="The output file.", show_default=False)]
Project = Annotated[Path | None, typer.Option(
    "--project", "-p", help="Also store the recipe in this project; a video output joins its media.")]
Device = Annotated[str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best here).")]


def interpolate(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    output: Output,
    factor: Annotated[int | None, typer.Option(
        "--factor", help="Multiply the frame rate (2, 4, ...); a variable-rate source gets N x "
        "its average rate.")] = None,
    fps: Annotated[str | None, typer.Option(
        "--fps", help="The new frame rate, e.g. 60 or 60000/1001.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="flow (optical flow both ways, a motion chosen per pixel), rife "
        "(RIFE v3.9, bundled) or blend (cross-fade).")] = "flow",
    cut_guard: Annotated[bool, typer.Option(
        "--cut-guard/--no-cut-guard",
        help="Repeat a frame instead of blending two shots across a hard cut.")] = True,
    device: Device = None,
    codec: Annotated[str | None, typer.Option(
        "--codec", help="Output codec (default from the extension).")] = None,
    project: Project = None,
    overwrite: Overwrite = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Make in-between frames (optical flow or RIFE v3.9): a higher frame rate or slow motion.

    The sound is kept. A folder output gets the whole sequence as PNGs in order, frame_%06d.png
    numbered from 0: with --factor N, frame N*i is source frame i.

    In-betweens follow the real frame times (variable rates too); across a hard cut a frame repeats.

    OUT.provenance.json beside the output holds the recipe."""
    from kinema.app.restore_jobs import interpolate_video
    from kinema.cli.console import exit_on_error, out, show_progress

    if remote:
        _interpolate_remote(video, output, remote=remote, token_file=token_file, factor=factor,
                            fps=fps, backend=backend, cut_guard=cut_guard, device=device,
                            codec=codec, project=project, overwrite=overwrite)
        return
    with exit_on_error():
        result = show_progress(interpolate_video(video, output, factor=factor, fps=fps,
                                                 backend=backend, codec=codec, overwrite=overwrite,
                                                 device=device, cut_guard=cut_guard,
                                                 project=project), f"interpolate {video.name}")
    out.print(f"wrote {output} at {result.rate} fps")


def _interpolate_remote(video: Path, output: Path, *, remote: str, token_file: Path | None,
                        factor: int | None, fps: str | None, backend: str, cut_guard: bool,
                        device: str | None, codec: str | None, project: Path | None,
                        overwrite: bool) -> None:
    """``kinema interpolate --remote URL``: the same job on a ``kinema serve`` worker."""
    from kinema.app.remote_calls import interpolate_remote
    from kinema.cli.console import exit_on_error, fail, out, show_progress
    from kinema.cli.remote_args import open_worker, refuse_local_only
    from kinema.media import open_video

    refuse_local_only({"--fps": fps, "--device": device, "--codec": codec, "--project": project},
                      "--factor, --backend and --cut-guard")
    if factor is None:
        fail("give --factor with --remote (--fps runs locally only)", code=2)
    with exit_on_error(), open_worker(remote, token_file) as worker:
        show_progress(interpolate_remote(worker, video, output, factor=factor,
                                                  backend=backend, cut_guard=cut_guard,
                                                  overwrite=overwrite),
                               f"interpolate {video.name} on {worker.url}")
    with exit_on_error(), open_video(output, prefetch=False) as reader:
        rate = reader.fps
    out.print(f"wrote {output} at {rate} fps (on {remote})")


def upscale(
    source: Annotated[Path, typer.Argument(help="An image or a video.", show_default=False)],
    output: Output,
    scale: Annotated[int, typer.Option("--scale", help="2, 3 or 4.")] = 4,
    model: Annotated[str, typer.Option(
        "--model",
        help="x4plus (photographs), animevideov3 (animation, fast) or lanczos (no model).")] = "x4plus",
    codec: Annotated[str | None, typer.Option("--codec", help="Output codec for a video.")] = None,
    project: Project = None,
    overwrite: Overwrite = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Upscale an image or a video with Real-ESRGAN (tiled, CPU) or Lanczos.

    OUT.provenance.json beside the output holds the recipe."""
    from kinema.app.restore_jobs import upscale_media
    from kinema.cli.console import exit_on_error, out, show_progress

    if remote:
        from kinema.app.remote_calls import upscale_remote
        from kinema.cli.remote_args import open_worker, refuse_local_only

        refuse_local_only({"--codec": codec, "--project": project}, "--scale and --model")
        with exit_on_error(), open_worker(remote, token_file) as worker:
            show_progress(upscale_remote(worker, source, output, scale=scale, model=model,
                                         overwrite=overwrite), f"upscale {source.name} on {worker.url}")
        out.print(f"wrote {output} (on {remote})")
        return

    with exit_on_error():
        size = show_progress(upscale_media(source, output, scale=scale, model=model, codec=codec,
                                           overwrite=overwrite, project=project),
                             f"upscale {source.name}")
    out.print(f"wrote {output} ({size[0]}x{size[1]})")


def speech(
    video: Annotated[Path, typer.Argument(help="A video or a sound file.", show_default=False)],
    threshold: Annotated[float, typer.Option("--threshold", help="Speech probability, 0-1.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Where someone speaks (Silero VAD): spans in seconds."""
    from kinema.app.restore_jobs import speech_spans
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        spans = speech_spans(video, threshold=threshold)
    if as_json:
        out.print_json(json.dumps({"speech": [s.to_json() for s in spans]}))
        return
    for s in spans:
        out.print(f"{s.start:9.3f}s-{s.end:.3f}s")


def register(app: typer.Typer) -> None:
    """Add the restore commands to ``app``."""
    for command in (interpolate, upscale, speech):
        app.command()(command)
