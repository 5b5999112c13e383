"""Train a LoRA on a folder of pictures: ``kinema lora train``.

:func:`train` checks everything it can first (the output may be written, the pictures can be
read, the model is here, earlier checkpoints belong to this run), then trains through
:func:`kinema.generate.lora_train.train_lora`, one ``core.jobs.Progress`` per step. Checkpoints
go to ``OUT.checkpoints/`` beside the output; ``resume`` continues from the newest. The LoRA is
written atomically only when every step is done, with ``OUT.provenance.json`` beside it (see
:mod:`kinema.app.operation_records`): the :class:`LoraTrainRecipe`, the base model's identity
and every picture with its sha256. Then the checkpoints go.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, KinemaError, OutputExistsError
from kinema.core.jobs import Steps
from kinema.document.recipes import LoraTrainRecipe, ModelRef
from kinema.generate.lora_train import LoraSettings, Trained

if TYPE_CHECKING:
    from kinema.app.operation_records import Source

PICTURE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TASK = "text-to-image"


@dataclass(frozen=True)
class LoraResult:
    """What :func:`train` wrote, the first step this run made (above 1 when it resumed), the
    losses of the steps it made and how long it trained (loading the models included)."""

    output: Path
    record: Path
    first_step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def checkpoint_folder(output: Path) -> Path:
    """Where the checkpoints of ``output`` go: ``OUT.checkpoints/`` beside it."""
    return output.with_name(output.name + ".checkpoints")


def read_pictures(folder: str | os.PathLike[str]) -> tuple[list[Path], list[np.ndarray]]:
    """The pictures in ``folder`` (by name), as ``uint8`` RGB; files of other types are left
    out, and pictures that cannot be read are named in the error."""
    from kinema.media.image import read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidArgumentError("is not a folder of pictures", path=folder,
                                   hint="give the folder holding the photos to train on")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PICTURE_TYPES)
    if not files:
        raise InvalidArgumentError("holds no pictures", path=folder,
                                   hint=f"put photos there ({', '.join(PICTURE_TYPES)})")
    pictures, unreadable = [], []
    for path in files:
        try:
            pictures.append(_rgb8(read_image(path)))
        except (KinemaError, OSError, ValueError):
            unreadable.append(path.name)
    if unreadable:
        raise InvalidArgumentError(f"cannot read {len(unreadable)} picture(s): {', '.join(unreadable)}",
                                   path=folder, hint="replace or remove them")
    return files, pictures


def _rgb8(image: np.ndarray) -> np.ndarray:
    """A picture as ``uint8`` RGB: grey repeated, alpha dropped, 16 bits shifted to 8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3])


def _prepare_checkpoints(folder: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix with an earlier run's checkpoints unless resuming it; ``overwrite``
    (without ``resume``) discards them."""
    from kinema.core.atomic import discard
    from kinema.generate.lora_train import checkpoints

    if resume or not checkpoints(folder):
        return
    if not overwrite:
        raise OutputExistsError("holds the checkpoints of an earlier training", path=folder,
                                hint="pass --resume to continue it, or --overwrite to start over")
    discard(folder)


def _recipe(settings: LoraSettings, model: ModelRef, trained: Trained,
            sources: list[Source]) -> LoraTrainRecipe:
    prior = settings.class_prompt is not None
    return LoraTrainRecipe(
        id="lora-train", model=model, device=trained.device, dtype=trained.dtype, seed=settings.seed,
        inputs=[s.as_input() for s in sources], token=settings.token,
        prompt=settings.instance_prompt, class_prompt=settings.class_prompt,
        class_images=settings.class_images if prior else None,
        prior_weight=settings.prior_weight if prior else None, steps=settings.steps, rank=settings.rank,
        lr=settings.lr, batch=settings.batch, resolution=settings.resolution)


def train(images: str | os.PathLike[str], output: str | os.PathLike[str], settings: LoraSettings, *,
          model: str | os.PathLike[str] | None = None, device: Any = None, dtype: Any = None,
          resume: bool = False, overwrite: bool = False) -> Steps[LoraResult]:
    """Train a LoRA on the pictures in ``images`` for the SDXL ``model`` (a registry name or a
    folder; the default text-to-image model) and write it to ``output`` (``.safetensors``)."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import check_can_write, discard, output_path
    from kinema.generate.lora_train import save_lora, train_lora
    from kinema.models import registry

    target = output_path(output)
    if target.suffix.lower() != ".safetensors":
        raise InvalidArgumentError("a LoRA is written as .safetensors", path=target,
                                   hint="name the output e.g. face.safetensors")
    settings.check()
    check_can_write(target, overwrite)
    files, pictures = read_pictures(images)
    folder = registry.resolve(model, task=TASK)
    found = registry.identity(model, task=TASK)
    sources = [records.Source.of(f) for f in files]
    store = checkpoint_folder(target)
    _prepare_checkpoints(store, resume, overwrite)
    inputs = {"images": [s.sha256 for s in sources], "model": found.weights_sha256}
    started = time.monotonic()
    trained = yield from train_lora(folder, pictures, settings, checkpoint_folder=store, inputs=inputs,
                                    resume=resume, device=device, dtype=dtype)
    seconds = time.monotonic() - started
    save_lora(trained, target, overwrite=overwrite)
    ref = ModelRef(model_id=found.model_id, revision=found.revision, weights_sha256=found.weights_sha256)
    record = records.write_record(target, _recipe(settings, ref, trained, sources), sources)
    discard(store)
    return LoraResult(target, record, trained.first_step, trained.losses, seconds)
