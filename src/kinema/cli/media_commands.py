"""Media commands: probe, frame, proxy, transcode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

VideoArg = Annotated[Path, typer.Argument(help="Video file.", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", "-y",
                                            help="Replace the output if it exists.")]


def probe(video: VideoArg,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show streams, codecs, frame rate, exact frame count, duration, rotation and audio."""
    from kinema.cli.console import exit_on_error, out
    from kinema.media.probe import probe as probe_media

    with exit_on_error():
        info = probe_media(video)
    if as_json:
        out.print_json(json.dumps(info.to_dict()))
        return
    out.print(f"[bold]{info.path}[/]  {info.format}  {info.size_bytes / 1e6:.1f} MB"
              + (f"  {info.bit_rate / 1000:.0f} kb/s" if info.bit_rate else ""))
    v = info.video
    if v is not None:
        flags = [x for x, on in (("VFR", v.vfr), ("alpha", v.has_alpha),
                                 ("TRUNCATED", v.truncated)) if on]
        out.print(f"  video: {v.codec} ({v.profile or '-'}) {v.pix_fmt} {v.width}x{v.height}"
                  f"  {v.fps} fps  {v.frames} frames  {v.duration:.3f} s"
                  f"  rotation {v.rotation}  keyframes {v.keyframes}"
                  + (f"  [{', '.join(flags)}]" if flags else ""))
    else:
        out.print("  video: none")
    for a in info.audio:
        dur = f"  {a.duration:.3f} s" if a.duration else ""
        out.print(f"  audio: {a.codec} {a.sample_rate} Hz {a.layout} ({a.channels} ch){dur}")


def frame(
    video: VideoArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG or EXR to write.")],
    index: Annotated[int | None, typer.Option(
        "--index", "-i", help="Frame index (0-based).")] = None,
    time: Annotated[str | None, typer.Option(
        "--time", "-t", help="Time: seconds or H:MM:SS.mmm.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Extract one exact frame as an image."""
    from kinema.app.media_jobs import extract_frame
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        written = extract_frame(video, output, index=index, time=time, overwrite=overwrite)
    out.print(f"frame {written} -> {output}")


def proxy(
    video: VideoArg,
    beside: Annotated[bool, typer.Option(
        "--beside", help="Store it in .kinema-proxies/ beside the video (default: user cache).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if fresh.")] = False,
) -> None:
    """Build a small all-intra proxy (540p) for instant scrubbing; rebuilt when the source changes."""
    from kinema.app.media_jobs import make_proxy
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.media.proxy import find_proxy

    with exit_on_error():
        show_progress(make_proxy(video, beside=beside, force=force), f"proxy {video.name}")
        path = find_proxy(video)
    out.print(f"proxy: {path}")


def transcode(
    src: Annotated[Path, typer.Argument(help="Input video.", show_default=False)],
    dst: Annotated[Path, typer.Argument(
        help="Output: .mp4/.mkv (H.264), .mov, .webm (VP9), or a folder (PNG sequence).",
        show_default=False)],
    codec: Annotated[str | None, typer.Option(
        "--codec", "-c",
        help="h264, h265, prores4444, prores, vp9, png or exr (default: from the extension).")] = None,
    start: Annotated[int, typer.Option(help="First frame.")] = 0,
    end: Annotated[int | None, typer.Option(help="Stop before this frame.")] = None,
    alpha: Annotated[bool, typer.Option("--alpha", help="Keep the source's alpha.")] = False,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop the sound.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Re-encode a video (a frame range of it) with exact frame count and rate, audio kept."""
    from kinema.app.media_jobs import transcode as run_transcode
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        show_progress(run_transcode(src, dst, codec=codec, start=start, stop=end, alpha=alpha,
                                    keep_audio=not no_audio, overwrite=overwrite),
                      f"transcode {src.name}")
    out.print(f"wrote {dst}")


def register(app: typer.Typer) -> None:
    """Add the media commands to ``app``."""
    for command in (probe, frame, proxy, transcode):
        app.command()(command)
