"""LoRA commands: ``kinema lora train``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from kinema.core.jobs import Progress, Steps

T = TypeVar("T")

lora_app = typer.Typer(help="Train LoRAs: a person, an object or a style learnt from a few pictures.",
                       no_args_is_help=True)


def _milestones(steps: Steps[T]) -> Steps[T]:
    """``steps`` with the loss lines kept at checkpoints and the last step only: the bar
    shows the progress, and the losses printed afterwards stay a few lines."""
    from kinema.core.jobs import mapped

    def milestone(event: Progress) -> Progress:
        keep = event.checkpoint or event.done == event.total
        return event if keep else replace(event, message=None)

    return (yield from mapped(steps, milestone))


@lora_app.command("train")
def train(
    images: Annotated[Path, typer.Argument(help="The folder of pictures to learn from.", show_default=False)],
    token: Annotated[str, typer.Option(
        "--token", help='The phrase that will name what is learnt, e.g. "sks person".', show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The LoRA file (.safetensors).", show_default=False)],
    prompt: Annotated[str | None, typer.Option(
        "--prompt", help='The prompt the pictures are learnt under (default "a photo of TOKEN").',
        show_default=False)] = None,
    class_prompt: Annotated[str | None, typer.Option(
        "--class-prompt", help='Keep the class as it was (prior preservation), e.g. "a photo of a person": '
        "the model first draws pictures of it.", show_default=False)] = None,
    class_images: Annotated[int, typer.Option(
        "--class-images", help="How many class pictures to draw with --class-prompt.")] = 50,
    steps: Annotated[int, typer.Option("--steps", help="Training steps.")] = 500,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank (file size and capacity).")] = 4,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (AdamW).")] = 1e-4,
    batch: Annotated[int, typer.Option("--batch", help="Pictures per step.")] = 1,
    resolution: Annotated[int, typer.Option(
        "--resolution", help="Square training size in pixels (a multiple of 8).")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole run.")] = 0,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Save a resumable checkpoint every N steps.")] = 100,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="Recompute activations: less GPU memory, slower.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the newest checkpoint of the same run.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="The SDXL model: a registry name or a folder.", show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="cuda, mps or cpu (default: the best here).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", "-y", help="Replace the output, and an earlier run's checkpoints.")] = False,
) -> None:
    """Train an SDXL LoRA on a few pictures (DreamBooth): afterwards the token's phrase in a
    prompt draws what they show, with the LoRA loaded (restyle --lora FILE:WEIGHT).

    Made for GPUs; on a CPU it runs, slowly. Checkpoints go to OUTPUT.checkpoints/ (--resume
    continues); OUTPUT.provenance.json holds the recipe and the pictures' hashes."""
    from kinema.app.lora_jobs import train as train_lora
    from kinema.cli.console import exit_on_error, out, show_progress
    from kinema.generate.lora_train import LoraSettings

    settings = LoraSettings(token=token, prompt=prompt, class_prompt=class_prompt, class_images=class_images,
                            steps=steps, rank=rank, lr=lr, batch=batch, resolution=resolution, seed=seed,
                            checkpoint_every=checkpoint_every, gradient_checkpointing=gradient_checkpointing)
    with exit_on_error():
        result = show_progress(_milestones(train_lora(images, output, settings, model=model, device=device,
                                                      resume=resume, overwrite=overwrite)),
                               f"train {output.name}")
    out.print(f"wrote {result.output} (steps {result.first_step}-{steps} in {result.seconds:.0f} s); "
              f"recipe: {result.record}")


def register(app: typer.Typer) -> None:
    """Add the ``lora`` group to ``app``."""
    app.add_typer(lora_app, name="lora")
