"""Pose commands: ``kinema pose``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pose(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="poses.json (OpenPose keypoints per frame) or a folder "
        "(OpenPose control images, one PNG per frame).", show_default=False)],
    frames: Annotated[str | None, typer.Option(
        "--range", help="Frames A:B (B excluded); either side may be left out.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="The pose backend.")] = "mediapipe",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace an output that exists.")] = False,
) -> None:
    """Body pose of every person through a clip, tracked, in the OpenPose 18-keypoint layout.

    Uses MediaPipe BlazePose from the bundled models (kinema models fetch-bundled mediapipe)."""
    from kinema.app.pose_jobs import estimate_poses
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        start, stop = _frame_range(frames)
        result = show_progress(estimate_poses(video, output, start=start, stop=stop,
                                              backend=backend, overwrite=overwrite),
                               f"pose {video.name}")
    out.print(f"{result.frames} frames, up to {result.people} people: {result.output}")


def _frame_range(text: str | None) -> tuple[int, int | None]:
    from kinema.core.errors import InvalidArgumentError

    if text is None:
        return 0, None
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(a) if a else 0), (int(b) if b else None)
    except ValueError:
        raise InvalidArgumentError(f"not a frame range: {text!r} (use A:B, e.g. 0:100)") from None


def register(app: typer.Typer) -> None:
    """Add the pose command to ``app``."""
    app.command()(pose)
