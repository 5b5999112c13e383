"""``kinema asset``: a transparent asset from words, optionally placed in a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.remote_args import Remote, TokenFile
from kinema.core.errors import InvalidArgumentError


def parse_size(text: str) -> tuple[int, int]:
    """``--size WxH`` as ``(W, H)``, both positive."""
    width, x, height = text.lower().partition("x")
    if not (x and width.strip().isdigit() and height.strip().isdigit()) or not int(width) * int(height):
        raise InvalidArgumentError(f"--size {text!r} is not WxH", hint="e.g. --size 1024x1024")
    return int(width), int(height)


def asset(
    prompt: Annotated[str, typer.Argument(help='What to make, e.g. "a ufo, brushed metal".',
                                          show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The PNG to write.", show_default=False)],
    subject: Annotated[str | None, typer.Option(
        "--object", help="Words for the object to cut out (default: the prompt's first phrase, "
        "without its article: \"a ufo, brushed metal\" -> ufo).")] = None,
    negative: Annotated[str, typer.Option("--negative", help="What the picture should not show.")] = "",
    seed: Annotated[int, typer.Option("--seed", help="The same seed makes the same picture.")] = 0,
    size: Annotated[str | None, typer.Option(
        "--size", help="WxH, multiples of 8 (default: the model's).")] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Denoising steps (default: the model's).")] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", help="Classifier-free guidance (default: the model's).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler",
        help="euler, euler_a, dpm++, dpm++_karras, ddim or lcm (default: the model's).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="SDXL: a model name (sdxl-base, sdxl-turbo) or a folder.")] = None,
    lora: Annotated[list[str] | None, typer.Option(
        "--lora", help="A LoRA file and its weight, FILE:W (repeat for several).")] = None,
    cutout: Annotated[str, typer.Option(
        "--cutout", help="auto (Grounding DINO + SAM 2 where they are here, else the bundled "
        "salient-object model), detector or salient.")] = "auto",
    detector: Annotated[str | None, typer.Option(
        "--detector", help="Grounding DINO: a model name or a folder.")] = None,
    segmenter: Annotated[str | None, typer.Option(
        "--segmenter", help="SAM 2: a model name or a folder.")] = None,
    min_score: Annotated[float, typer.Option(
        "--min-score", help="The detector score the object's box needs.")] = 0.3,
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu (default: the best here).")] = None,
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Place the asset in this project (with --at).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="X,Y@FRAME: the object's centre on the canvas, from FRAME on.")] = None,
    scale: Annotated[float, typer.Option("--scale", help="The asset's scale in the project.")] = 1.0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the output if it exists.")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Generate a picture (SDXL) and cut its object out: a straight-alpha RGBA PNG trimmed to
    the object, with soft edges. OUT.provenance.json beside it holds the recipe.

    With --project P --at X,Y@FRAME the PNG joins the project as a still on a new layer, the
    object's centre at X,Y from FRAME on, scaled by --scale.

    With --remote URL a `kinema serve` worker makes it (models by their names there)."""
    from kinema.app.asset_jobs import Spot, make_asset
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.cli.prompt_args import parse_at, parse_lora
    from kinema.generate.sdxl import Request
    from kinema.vision.cutout import Settings

    if remote:
        from kinema.app.remote_calls import asset_remote
        from kinema.cli.remote_args import open_worker, refuse_local_only

        refuse_local_only({"--device": device, "--project": project, "--at": at},
                          "the prompt, the picture's settings, models by name and LoRA files")
        with exit_on_error(), open_worker(remote, token_file) as worker:
            show_progress(asset_remote(
                worker, prompt, output, subject=subject, negative=negative, seed=seed,
                size=parse_size(size) if size is not None else None, steps=steps,
                guidance=guidance, scheduler=scheduler, model=model,
                loras=[parse_lora(t) for t in lora or []], cutout=cutout, detector=detector,
                segmenter=segmenter, min_score=min_score, overwrite=overwrite),
                f"asset on {worker.url}")
        out.print(f"wrote {output} (on {remote})")
        return
    with exit_on_error():
        spot = Spot(*parse_at(at), scale=scale) if at is not None else None
        request = Request(prompt, negative=negative, seed=seed, steps=steps, guidance=guidance,
                          scheduler=scheduler, size=parse_size(size) if size is not None else None)
        result = show_progress(make_asset(request, output, subject=subject, model=model,
                                          loras=[parse_lora(t) for t in lora or []], cutout=cutout,
                                          detector=detector, segmenter=segmenter, device=device,
                                          settings=Settings(box_threshold=min_score),
                                          overwrite=overwrite, project=project, spot=spot),
                               "asset")
    placed = f", layer {result.layer} in {project}" if result.layer else ""
    out.print(f"wrote {output} ({result.size[0]}x{result.size[1]}){placed}")


def register(app: typer.Typer) -> None:
    """Add ``kinema asset`` to ``app``."""
    app.command()(asset)
