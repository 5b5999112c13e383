"""Channel command: ``kinema tv`` (a generated channel on air) and ``kinema tv status``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.remote_args import Remote, TokenFile

STATUS = "status"


def tv(
    theme: Annotated[str, typer.Argument(
        help='What the channel is about ("status" with --state: how a channel is doing).',
        show_default=False)],
    state: Annotated[Path, typer.Option(
        "--state", help="The channel's folder: its queue, segments and progress (a restart "
        "continues from it).")] = Path("kinema-tv"),
    library: Annotated[Path | None, typer.Option(
        "--library", help="A folder of your own videos and music: the channel is cut from them, "
        "to the beat, with no generative model.")] = None,
    shots: Annotated[int, typer.Option("--shots", help="Shots per shot list.")] = 6,
    llm: Annotated[str | None, typer.Option(
        "--llm", help="Who writes the shots: a model name or folder, or an OpenAI-compatible "
        "URL (llama.cpp, vLLM); default: a template writer.")] = None,
    t2v: Annotated[str | None, typer.Option(
        "--t2v", help="Text-to-video model name or folder (default wan2.1-t2v-1.3b).")] = None,
    music: Annotated[str | None, typer.Option(
        "--music", help="MusicGen model name or folder (default musicgen-small).")] = None,
    rtmp: Annotated[str | None, typer.Option(
        "--rtmp", help="Push the stream to this rtmp:// URL.")] = None,
    hls: Annotated[Path | None, typer.Option(
        "--hls", help="Write rolling HLS (index.m3u8) into this folder.")] = None,
    serve: Annotated[int | None, typer.Option(
        "--serve", help="Run nginx-rtmp on 127.0.0.1 with the player page on this HTTP port.")] = None,
    ahead: Annotated[float, typer.Option(
        "--ahead", help="Seconds of channel kept made ahead of the air.")] = 120.0,
    seconds: Annotated[float | None, typer.Option(
        "--seconds", help="Stop after this many seconds of stream (default: run until Ctrl-C).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="The first shot list's seed.")] = 0,
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu for the models (default: the best here).")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Film the shots on a Ray cluster ($KINEMA_RAY, else a local one), in "
        "order, one model copy per actor.")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Run a channel that never stops: written, filmed, scored and streamed.

    The theme becomes shot lists, each shot a clip from words, upscaled, interpolated to the
    channel's rate and scored with MusicGen; or, with --library, your own footage cut to the
    beat of your own music (no model needed). Generation runs ahead of the air; when it falls
    behind, segments already made repeat, so the stream never stalls. Ctrl-C stops it; a run
    on the same --state continues the channel. With --ray the shots are filmed on a Ray
    cluster by actors each holding the models, several at once, aired in order. With --remote
    URL a `kinema serve` worker films and upscales each shot (--t2v names a model there); the
    writing, interpolation and music stay here.

    kinema tv status --state DIR: on air now, the queue, seconds ahead or behind."""
    from kinema.cli.console import exit_on_error, out

    with exit_on_error():
        if theme == STATUS:
            from kinema.app.tv_jobs import channel_status

            status = channel_status(state)
            on_air = status.on_air
            out.print(f"on air: {on_air['title']!r} ({on_air['elapsed']:.0f} of "
                      f"{on_air['duration']:.0f} s{', a repeat' if on_air['repeat'] else ''})"
                      if on_air else "on air: nothing")
            out.print(f"queue: {len(status.queue)} segment(s), {status.ahead_s:.0f} s ahead"
                      + (f", {status.behind_s:.0f} s behind (repeating)" if status.behind_s else ""))
            for item in status.queue[:10]:
                out.print(f"  {item['duration']:5.1f} s  {item['title']}")
            return
        from kinema.app.tv_jobs import ChannelSpec, run_channel
        from kinema.cli.remote_args import remote_token

        spec = ChannelSpec(theme=theme, state=state, library=library, llm=llm, t2v=t2v, music=music,
                           shots=shots, seed=seed, ahead=ahead, device=device, ray=ray,
                           remote=remote, token=remote_token(token_file) if remote else None)
        result = run_channel(spec, rtmp=rtmp, hls=hls, serve=serve, max_seconds=seconds)
    b = result.broadcast
    out.print(f"off air ({b.reason}): {b.seconds:.0f} s streamed, {b.segments} segment(s) aired, "
              f"{result.made} made, {result.skipped} skipped")


def register(app: typer.Typer) -> None:
    """Add the tv command to ``app``."""
    app.command()(tv)
