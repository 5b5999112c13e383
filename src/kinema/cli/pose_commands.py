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
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Also store the recipe in this project.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace an output that exists.")] = False,
) -> None:
    """Body pose of every person through a clip, tracked, in the OpenPose 18-keypoint layout.

    Uses MediaPipe BlazePose from the bundled models (kinema models fetch-bundled mediapipe).

    OUT.provenance.json beside the output holds the recipe."""
    from kinema.app.pose_jobs import estimate_poses
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.prompt_args import parse_range

    with exit_on_error():
        start, stop = parse_range(frames)
        result = show_progress(estimate_poses(video, output, start=start, stop=stop,
                                              backend=backend, overwrite=overwrite,
                                              project=project),
                               f"pose {video.name}")
    out.print(f"{result.frames} frames, up to {result.people} people: {result.output}")


def register(app: typer.Typer) -> None:
    """Add the pose command to ``app``."""
    app.command()(pose)
