"""``kinema t2v``: a video clip from words (Wan 2.1 text-to-video)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kinema.cli.remote_args import Remote, TokenFile


def t2v(
    prompt: Annotated[str, typer.Argument(help='What to film, e.g. "a red fox running through snow".',
                                          show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="clip.mp4 (H.264), clip.mov (ProRes 422 HQ) or a folder (PNGs).",
        show_default=False)],
    negative: Annotated[str, typer.Option("--negative", help="What the clip should not show.")] = "",
    frames: Annotated[int | None, typer.Option(
        "--frames", help="How many frames, 4k+1: 33, 49, 81 (default: the model's, 81 for Wan: "
        "5 s at 16 fps).")] = None,
    size: Annotated[str | None, typer.Option(
        "--size", help="WxH, multiples of 16 (default: the model's, 832x480 for Wan).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="The same seed makes the same clip.")] = 0,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Denoising steps (default: the model's).")] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", help="Classifier-free guidance (default: the model's).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="A text-to-video model name (wan2.1-t2v-1.3b) or a WanPipeline folder.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="wan (Wan 2.1 through diffusers); other families join as kinema.backends "
        "plugins.")] = "wan",
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu (default: the best here).")] = None,
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Add the clip to this project's media with its recipe.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the output if it exists.")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Generate a video clip from words with Wan 2.1 (diffusers), at the frame rate the model
    was trained at (16 fps for Wan). OUT.provenance.json beside it holds the recipe; a movie's
    title is the prompt and its comment gives the frame count, rate and duration.

    With --project P the clip joins the project's media pool, its recipe stored there.
    With --remote URL a `kinema serve` worker films it (a movie; the model by its name there)."""
    from kinema.app.t2v_jobs import ClipSettings, make_clip
    from kinema.cli.asset_commands import parse_size
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        settings = ClipSettings(prompt, negative=negative, frames=frames, seed=seed, steps=steps,
                                guidance=guidance, size=parse_size(size) if size is not None else None)
    if remote:
        from kinema.app.remote_calls import t2v_remote
        from kinema.cli.remote_args import open_worker, refuse_local_only

        refuse_local_only({"--device": device, "--project": project,
                           "--backend": backend if backend != "wan" else None},
                          "the prompt, the clip's settings and the model by name")
        with exit_on_error(), open_worker(remote, token_file) as worker:
            show_progress(t2v_remote(worker, settings, output, model=model, overwrite=overwrite),
                          f"t2v on {worker.url}")
        out.print(f"wrote {output} (on {remote})")
        return
    with exit_on_error():
        clip = show_progress(make_clip(settings, output, model=model, backend=backend, device=device,
                                       overwrite=overwrite, project=project), "t2v")
    added = f", {clip.recipe_id} in {project}" if clip.recipe_id else ""
    out.print(f"wrote {output} ({clip.frames} frames, {clip.size[0]}x{clip.size[1]} at "
              f"{float(clip.fps):g} fps, {float(clip.duration):g} s){added}")


def register(app: typer.Typer) -> None:
    """Add ``kinema t2v`` to ``app``."""
    app.command()(t2v)
