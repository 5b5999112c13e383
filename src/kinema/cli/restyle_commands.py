"""Restyle commands: ``kinema restyle``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.core.errors import InvalidArgumentError


def parse_frames(text: str) -> list[int]:
    """``"0,24,47"`` as frame indices."""
    try:
        frames = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidArgumentError(f"--frames {text!r} is not a list of frame numbers",
                                   hint="write them like 0,24,47") from None
    if not frames:
        raise InvalidArgumentError("--frames names no frame", hint="write them like 0,24,47")
    return frames


def parse_controlnets(values: list[str]) -> dict[str, str]:
    """``KIND=NAME|DIR`` options as a mapping."""
    found: dict[str, str] = {}
    for value in values:
        kind, equals, model = value.partition("=")
        if not equals or not model:
            raise InvalidArgumentError(f"--controlnet {value!r} is not KIND=NAME|DIR",
                                       hint="e.g. --controlnet canny=controlnet-canny-sdxl")
        found[kind] = model
    return found


def parse_thresholds(text: str) -> tuple[int, int]:
    """``"LOW,HIGH"`` Canny thresholds."""
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidArgumentError(f"--canny {text!r} is not LOW,HIGH", hint="e.g. --canny 100,200") from None
    return low, high


def restyle(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A video (with --mask) or a project (with --track).",
                                           show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The keys folder: one PNG per key, named by frame (00024.png).",
        show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", help="What the object becomes.", show_default=False)],
    frames: Annotated[str, typer.Option(
        "--frames", help="Key frames, e.g. 0,24,47, or auto N: N frames picked where the object "
        "changes most.", show_default=False)],
    track: Annotated[str | None, typer.Option(
        "--track", "-t", help="The project's mask track (id or name) of the object.")] = None,
    mask: Annotated[Path | None, typer.Option(
        "--mask", help="Label maps from kinema track -o masks.npz (every object in them).")] = None,
    negative: Annotated[str, typer.Option("--negative", help="What to keep out.")] = "",
    control: Annotated[str | None, typer.Option(
        "--control", help="Conditions with weights and optional ranges, e.g. "
        "canny=0.6,pose=1.0@0-0.8,depth=0.5.")] = None,
    lora: Annotated[list[str] | None, typer.Option(
        "--lora", help="A LoRA file and its weight, FILE:0.8 (repeat for several).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="The seed every key shares.")] = 0,
    strength: Annotated[float, typer.Option(
        "--strength", help="How far from the source inside the matte (0-1].")] = 0.7,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Denoising steps (default: the model's card).")] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", help="Classifier-free guidance (default: the model's card).")] = None,
    margin: Annotated[int, typer.Option("--margin", help="Grow the mask by this many pixels.")] = 8,
    feather: Annotated[float, typer.Option(
        "--feather", help="Soften the matte's edge over this many pixels.")] = 4.0,
    grid: Annotated[bool, typer.Option(
        "--grid", help="Restyle keys four at a time, tiled 2x2 in one picture: more alike.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="SDXL model name or folder (default sdxl-inpaint).")] = None,
    controlnet: Annotated[list[str] | None, typer.Option(
        "--controlnet",
        help="KIND=NAME|DIR: the ControlNet of a condition (default: the registry's).")] = None,
    depth_model: Annotated[str | None, typer.Option(
        "--depth-model",
        help="Depth model name or folder for depth=... (default depth-anything-v2-small).")] = None,
    canny: Annotated[str, typer.Option("--canny", help="Canny thresholds LOW,HIGH.")] = "100,200",
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu (default: the best here).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the keys kinema wrote in the folder before.")] = False,
) -> None:
    """Restyle an object on key frames, inside its matte; every pixel outside it stays the source's.

    The pose condition joins only on frames where people are found. Keys share seed and noise.

    --frames auto N picks N key frames where the object changes most, among the frames where it
    is (as kinema keys does).

    KEYS.provenance.json beside the folder holds the recipe.

    In a project the keys also become the inputs of a style layer."""
    from kinema.app.restyle_jobs import restyle as run_restyle
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.key_args import auto_count
    from kinema.cli.prompt_args import parse_lora
    from kinema.generate.control import parse_controls

    with exit_on_error():
        count, source = auto_count("--frames", frames, list(ctx.args), source)
        if count is None:
            picked = parse_frames(frames)
        else:
            from kinema.app.key_jobs import restyle_frames

            picked = show_progress(restyle_frames(source, count, track=track, mask=mask),
                                   f"pick keys {source.name}")
        job = run_restyle(source, output, prompt=prompt, frames=picked, track=track,
                          mask=mask, negative=negative, controls=parse_controls(control),
                          loras=[parse_lora(v) for v in lora or []], seed=seed, strength=strength,
                          steps=steps, guidance=guidance, margin=margin, feather=feather, grid=grid,
                          model=model, controlnets=parse_controlnets(controlnet or []),
                          depth_model=depth_model, canny=parse_thresholds(canny), device=device,
                          overwrite=overwrite)
        result = show_progress(job, f"restyle {source.name}")
    where = f" (layer {result.layer_id} in {source})" if result.layer_id else ""
    out.print(f"{len(result.frames)} keys: {result.output}{where}")


def register(app: typer.Typer) -> None:
    """Add the restyle command to ``app``."""
    from kinema.cli.key_args import CONTEXT

    app.command(context_settings=CONTEXT)(restyle)
