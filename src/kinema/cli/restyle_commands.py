"""Restyle commands: ``kinema restyle``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kinema.cli.remote_args import Remote, TokenFile
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
        "--output", "-o", help="Without --engine: the keys folder (00024.png per key). With "
        "--engine: the restyled shot, a folder of PNGs or a movie (.mov with the matte as alpha).",
        show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", help="What the object becomes.", show_default=False)],
    frames: Annotated[str | None, typer.Option(
        "--frames", help="Key frames, e.g. 0,24,47, or auto N: N frames picked where the object "
        "changes most (without --engine, and with --engine keys).", show_default=False)] = None,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="Restyle the whole shot: keys (keys, then propagated), animatediff or "
        "wan-vace (video diffusion in windows).")] = None,
    window: Annotated[int | None, typer.Option(
        "--window", help="Frames per window (default 16 for animatediff, 33 for wan-vace).")] = None,
    overlap: Annotated[int | None, typer.Option(
        "--overlap", help="Frames two windows share and blend (default 4; 9 for wan-vace).")] = None,
    motion_model: Annotated[str | None, typer.Option(
        "--motion-model", help="AnimateDiff motion adapter name or folder (default "
        "animatediff-v1-5-3).")] = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="wan-vace: a picture of the look to hold (a restyled key).")] = None,
    quality: Annotated[str, typer.Option(
        "--quality", help="--engine keys: the propagation's quality, fast or best.")] = "fast",
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
    ray: Annotated[bool, typer.Option(
        "--ray", help="Restyle the key frames on a Ray cluster ($KINEMA_RAY, else a local one): "
        "actors each holding the model, one per GPU.")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Restyle an object inside its matte; every pixel outside it stays the source's.

    Without --engine: key frames only (--frames), with SDXL. The pose condition joins only on
    frames where people are found. Keys share seed and noise. --frames auto N picks N key
    frames where the object changes most, among the frames where it is (as kinema keys does).
    In a project the keys also become the inputs of a style layer.

    With --engine, the whole shot: keys restyles key frames and carries them through the shot
    (the keys go to OUT.keys/; in a project -o is the keys folder and the style layer is
    carried through); animatediff (SD 1.5 + AnimateDiff, ControlNets for canny and pose) and
    wan-vace (Wan 2.1 VACE, one control and a --reference picture) restyle window by window,
    blending the frames two windows share, in memory that does not grow with the shot; from a
    project a movie output also becomes a layer over the clip.

    With --remote URL a `kinema serve` worker restyles: the keys of a VIDEO --mask M or of a
    project's --track (which then become its style layer here), or a VIDEO --mask M's shot with
    animatediff or wan-vace; models by their names there.

    OUT.provenance.json beside the output holds the recipe."""
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.prompt_args import parse_lora
    from kinema.generate.control import parse_controls

    if remote:
        if ray:
            from kinema.cli.console import fail

            fail("--ray and --remote do not go together (a worker can use Ray itself: "
                 "kinema serve --ray)", code=2)
        _restyle_remote(ctx, source, output, remote, token_file, frames=frames, engine=engine,
                        window=window, overlap=overlap, motion_model=motion_model,
                        reference=reference, track=track, mask=mask, lora=lora, grid=grid,
                        device=device, quality=quality, prompt=prompt, negative=negative,
                        control=control, seed=seed, strength=strength, steps=steps,
                        guidance=guidance, margin=margin, feather=feather, model=model,
                        controlnet=controlnet, depth_model=depth_model, canny=canny,
                        overwrite=overwrite)
        return
    with exit_on_error():
        options = {"prompt": prompt, "track": track, "mask": mask, "negative": negative,
                   "controls": parse_controls(control), "seed": seed, "strength": strength,
                   "steps": steps, "guidance": guidance, "margin": margin, "feather": feather,
                   "model": model, "controlnets": parse_controlnets(controlnet or []),
                   "depth_model": depth_model, "canny": parse_thresholds(canny), "device": device,
                   "overwrite": overwrite}
        if engine not in (None, "keys"):
            from kinema.app.video_restyle_jobs import restyle_video

            if frames is not None or lora or grid or ray or ctx.args:
                raise InvalidArgumentError(f"--frames, --lora, --grid and --ray are for key frames, "
                                           f"not the {engine} engine")
            result = show_progress(restyle_video(
                source, output, engine=engine, window=window, overlap=overlap,
                motion_model=motion_model, reference=reference, **options),
                f"restyle {source.name} ({engine})")
            where = f" (layer {result.layer_id} in {source})" if result.layer_id else ""
            out.print(f"{result.frames} frames in {result.windows} windows: {result.output}{where}")
            return
        if window is not None or overlap is not None or motion_model or reference is not None:
            raise InvalidArgumentError("--window, --overlap, --motion-model and --reference are for "
                                       "--engine animatediff or wan-vace")
        picked, source = _key_frames(ctx, frames, source, track, mask)
        options.update(frames=picked, loras=[parse_lora(v) for v in lora or []], grid=grid,
                       ray=ray)
        if engine == "keys":
            from kinema.app.keys_engine_jobs import restyle_through_keys

            made = show_progress(restyle_through_keys(source, output, quality=quality, **options),
                                 f"restyle {source.name} (keys)")
            out.print(f"{len(made.keys.frames)} keys carried through {made.frames} frames: {made.output}")
            return
        from kinema.app.restyle_jobs import restyle as run_restyle

        result = show_progress(run_restyle(source, output, **options), f"restyle {source.name}")
    where = f" (layer {result.layer_id} in {source})" if result.layer_id else ""
    out.print(f"{len(result.frames)} keys: {result.output}{where}")


def _restyle_remote(ctx: typer.Context, source: Path, output: Path, remote: str,
                    token_file: Path | None, *, frames: str | None, engine: str | None,
                    track: str | None, mask: Path | None, lora: list[str] | None,
                    device: str | None, quality: str, control: str | None,
                    controlnet: list[str] | None, canny: str, overwrite: bool,
                    **options: Any) -> None:
    """``kinema restyle ... --remote URL``: the same job on a worker."""
    from kinema.app.remote_calls import restyle_project_remote, restyle_remote
    from kinema.app.restyle_jobs import is_project
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.prompt_args import parse_lora
    from kinema.cli.remote_args import open_worker, refuse_local_only
    from kinema.generate.control import parse_controls

    refuse_local_only({"--device": device, "--engine keys": engine == "keys",
                       "--quality": quality if quality != "fast" else None},
                      "a video with --mask or a project's --track, the prompt and settings, "
                      "models by name and files")
    with exit_on_error():
        in_project = is_project(source)
        if in_project and engine is not None:
            raise InvalidArgumentError(f"with --remote the {engine} engine restyles a video with "
                                       "--mask M.npz", hint="or restyle the project's key frames")
        picked: list[int] = []
        if engine is None:
            picked, source = _key_frames(ctx, frames, source, track, mask)
        elif frames is not None:
            raise InvalidArgumentError(f"--frames is for key frames, not the {engine} engine")
        common = dict(controls=parse_controls(control), loras=[parse_lora(v) for v in lora or []],
                      controlnets=parse_controlnets(controlnet or []),
                      canny=parse_thresholds(canny), overwrite=overwrite, **options)
        with open_worker(remote, token_file) as worker:
            if in_project:
                if track is None or mask is not None:
                    raise InvalidArgumentError("a project takes --track OBJ (its mask track), "
                                               "not --mask")
                result = show_progress(restyle_project_remote(
                    worker, source, output, track=track, frames=picked, **common),
                    f"restyle {source.name} on {worker.url}")
            else:
                if mask is None:
                    raise InvalidArgumentError("a video takes --mask MASKS.npz (from kinema "
                                               "track -o) with --remote")
                result = show_progress(restyle_remote(
                    worker, source, output, mask=mask, frames=picked, engine=engine, **common),
                    f"restyle {source.name} on {worker.url}")
    what = f"{len(picked)} keys" if engine is None else f"the shot ({engine})"
    where = f" (layer {result.layer_id} in {source})" if in_project else ""
    out.print(f"{what}: {result.output if in_project else result.path}{where} (on {remote})")


def _key_frames(ctx: typer.Context, frames: str | None, source: Path, track: str | None,
                mask: Path | None) -> tuple[list[int], Path]:
    """The key frames --frames names (a list, or auto N picked where the object changes most),
    and the source (``auto N`` written before it may have taken its place)."""
    from kinema.cli.console import show_progress
    from kinema.cli.key_args import auto_count

    if frames is None:
        raise InvalidArgumentError("no key frames given", hint="give --frames, e.g. 0,24,47 or auto 4")
    count, source = auto_count("--frames", frames, list(ctx.args), source)
    if count is None:
        return parse_frames(frames), source
    from kinema.app.key_jobs import restyle_frames

    picked = show_progress(restyle_frames(source, count, track=track, mask=mask),
                           f"pick keys {source.name}")
    return picked, source


def register(app: typer.Typer) -> None:
    """Add the restyle command to ``app``."""
    from kinema.cli.key_args import CONTEXT

    app.command(context_settings=CONTEXT)(restyle)
