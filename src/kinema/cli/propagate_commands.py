"""Propagate command: ``kinema propagate`` (styled keys carried through a video)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.remote_args import Remote, TokenFile
from kinema.core.errors import InvalidArgumentError


def propagate(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(help="The footage.", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="A folder (one PNG per frame, 00024.png) or a movie (.mov, .mp4).",
        show_default=False)],
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="A styled key: FRAME=IMAGE (repeat for more).")] = None,
    keys: Annotated[str | None, typer.Option(
        "--keys", help="A folder of keys named by frame (kinema restyle's or kinema keys' "
        "output), or auto N: N keys picked where the footage changes most, made into "
        "OUT.keys/.")] = None,
    look: Annotated[str | None, typer.Option(
        "--look", help="With --keys auto N: the keys in a classical look (painterly, toon, "
        "sketch, watercolor, posterize; default: the source frames).")] = None,
    mask: Annotated[Path | None, typer.Option(
        "--mask", help="Style only the object: label maps from kinema track -o masks.npz.")] = None,
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Style only the object of this project's --track.")] = None,
    track: Annotated[str | None, typer.Option(
        "--track", "-t", help="The project's mask track (id or name).")] = None,
    start: Annotated[int, typer.Option("--start", help="First frame of the range.")] = 0,
    end: Annotated[int | None, typer.Option(
        "--end", help="The frame after the range (default: the clip's end).")] = None,
    quality: Annotated[str, typer.Option("--quality", help="fast or best.")] = "fast",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the output if it exists.")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Carry styled key frames through the footage (example-based, guided by the video).

    Between two keys the frames blend both; before the first and after the last, one key
    carries on. With --mask or --project/--track only the object changes: every pixel outside
    its matte is the source's. OUT.provenance.json beside the output holds the recipe.

    --keys auto N picks N key frames where the footage changes most (as kinema keys does) and
    writes them into OUT.keys/ beside the output, as the source frames or in --look; repaint a
    key there and run again with --keys OUT.keys/.

    With --remote URL a `kinema serve` worker propagates given keys (--key, --keys DIR) over a
    video, with --mask for the object."""
    from kinema.app.propagate_jobs import propagate_video
    from kinema.app.style_keys import keys_in_folder, parse_keys
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.key_args import auto_count

    with exit_on_error():
        count, video = auto_count("--keys", keys, list(ctx.args), video)
        if count is None and look is not None:
            raise InvalidArgumentError("--look styles keys picked by --keys auto N",
                                       hint="give --keys auto N --look NAME, or style the keys yourself")
        if remote:
            _propagate_remote(video, output, remote, token_file, key=key, keys=keys, mask=mask,
                              auto=count is not None, project=project, track=track, start=start,
                              end=end, quality=quality, overwrite=overwrite)
            return
        if count is not None:
            if key:
                raise InvalidArgumentError("give --keys auto N or --key FRAME=IMAGE, not both")
            from kinema.app.key_jobs import propagate_auto

            auto = show_progress(
                propagate_auto(video, output, count=count, look=look, mask=mask, project=project,
                               track=track, start=start, end=end, quality=quality,
                               overwrite=overwrite),
                f"propagate {video.name}")
            result = auto.propagated
            out.print(f"wrote {auto.keys.output}: key frames "
                      f"{', '.join(map(str, auto.keys.frames))}")
        else:
            given = keys_in_folder(keys) if keys is not None else {}
            given.update(parse_keys(key or [], "--key"))
            result = show_progress(
                propagate_video(video, output, keys=given, mask=mask, project=project,
                                track=track, start=start, end=end, quality=quality,
                                overwrite=overwrite),
                f"propagate {video.name}")
    out.print(f"wrote {result.output}: frames {result.start}-{result.end - 1} from "
              f"{len(result.keys)} key(s)")


def _propagate_remote(video: Path, output: Path, remote: str, token_file: Path | None, *,
                      key: list[str] | None, keys: str | None, mask: Path | None, auto: bool,
                      project: Path | None, track: str | None, start: int, end: int | None,
                      quality: str, overwrite: bool) -> None:
    """``kinema propagate --remote URL``: given keys carried through on a worker."""
    from kinema.app.remote_calls import propagate_remote
    from kinema.app.style_keys import keys_in_folder, parse_keys
    from kinema.cli.console import out, show_progress
    from kinema.cli.remote_args import open_worker, refuse_local_only

    refuse_local_only({"--keys auto": auto, "--project": project, "--track": track},
                      "a video, given keys, --mask, the range and --quality")
    given = keys_in_folder(keys) if keys is not None else {}
    given.update(parse_keys(key or [], "--key"))
    with open_worker(remote, token_file) as worker:
        result = show_progress(propagate_remote(worker, video, output, keys=given, mask=mask,
                                                start=start, end=end, quality=quality,
                                                overwrite=overwrite),
                               f"propagate {video.name} on {worker.url}")
    out.print(f"wrote {result.path} from {len(given)} key(s) (on {remote})")


def register(app: typer.Typer) -> None:
    """Add the propagate command to ``app``."""
    from kinema.cli.key_args import CONTEXT

    app.command(context_settings=CONTEXT)(propagate)
