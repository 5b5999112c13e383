"""Text-to-video: a clip from words (``kinema t2v``), Wan 2.1 T2V through diffusers.

:func:`make_clip` is a generator of ``core.jobs.Progress``: one event per denoising step, then
one when the clip is written. The generator is a ``t2v`` backend (:mod:`kinema.models.backends`:
``wan``, Wan 2.1 T2V, is built in; other families join through the ``kinema.backends`` entry
point); its model a registry name of the backend's model task (``text-to-video``, default
``wan2.1-t2v-1.3b``) or a folder (a diffusers ``WanPipeline`` for Wan); what the request leaves
unset (frames, size, steps, guidance) comes from the model's card, as does the frame rate the
clip is written at: the rate the model was trained at (16 fps for Wan 2.1), since the same
frames at another rate would play faster or slower than the motion it learnt.

The clip is an ``.mp4`` (H.264), a ``.mov`` (ProRes 422 HQ) or a folder of PNGs, written
atomically, with ``OUT.provenance.json`` beside it holding the
:class:`~kinema.document.recipes.T2VRecipe` (see :mod:`kinema.app.operation_records`). A movie's
own metadata carries the prompt as its title and, in its comment, the frame count, rate and
duration with a pointer to the record. With a project the clip joins its media pool with its
recipe (``t2v-<media id>``); a folder of PNGs stores only the recipe there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinema.core.errors import InvalidArgumentError, MediaWriteError
from kinema.core.jobs import Emit, Progress, Steps, mapped, threaded
from kinema.document.recipes import T2VRecipe

if TYPE_CHECKING:
    import numpy as np

    from kinema.generate.wan import ClipRequest, TextToVideo

TASK = "text-to-video"
"""The registry task of the default backend's models."""
BACKEND = "wan"
CODECS = {".mp4": "h264", ".mov": "prores", "": "png"}
"""What each kind of output is written with: H.264, ProRes 422 HQ, a folder of PNGs."""


@dataclass(frozen=True)
class ClipSettings:
    """What a user asks for; ``None`` takes the model card's value."""

    prompt: str
    negative: str = ""
    frames: int | None = None
    size: tuple[int, int] | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class VideoCard:
    """A video model's defaults: sampling (steps, guidance, scheduler, size W x H) and the
    frame count and rate it was trained at."""

    steps: int
    guidance: float
    scheduler: str
    size: tuple[int, int]
    frames: int
    fps: Fraction

    @classmethod
    def read(cls, folder: Path, name: str | os.PathLike[str] | None, task: str = TASK) -> VideoCard:
        """The card of the model in ``folder`` (its ``kinema.json``, else the registry's entry
        for ``name``, else the default model of ``task``'s)."""
        import json

        from kinema.models.registry import DEFAULTS, MODELS

        path = folder / "kinema.json"
        entry = MODELS.get(str(name)) if name is not None else None
        fallback = (entry or MODELS[DEFAULTS[task]]).card or {}
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else dict(fallback)
        data = {**fallback, **data}
        return cls(steps=int(data["steps"]), guidance=float(data["guidance"]),
                   scheduler=str(data["scheduler"]), size=(int(data["size"][0]), int(data["size"][1])),
                   frames=int(data["frames"]), fps=Fraction(str(data["fps"])))

    def settled(self, settings: ClipSettings) -> ClipRequest:
        """``settings`` with every unset value taken from this card."""
        from kinema.generate.wan import ClipRequest

        return ClipRequest(
            prompt=settings.prompt, negative=settings.negative,
            frames=self.frames if settings.frames is None else settings.frames,
            size=self.size if settings.size is None else settings.size,
            steps=self.steps if settings.steps is None else settings.steps,
            guidance=self.guidance if settings.guidance is None else settings.guidance,
            seed=settings.seed)


@dataclass(frozen=True)
class Clip:
    """What :func:`make_clip` wrote: the clip (``frames`` of ``size`` at ``fps``), its
    provenance record and recipe, and the recipe's id in the project (if one was given)."""

    output: Path
    record: Path
    frames: int
    size: tuple[int, int]
    fps: Fraction
    recipe: T2VRecipe
    recipe_id: str | None = None

    @property
    def duration(self) -> Fraction:
        """The clip's length in seconds."""
        return Fraction(self.frames) / self.fps


def check_settings(settings: ClipSettings | ClipRequest) -> None:
    """Fail now, before a model loads, on what Wan cannot make: no prompt, frames other than
    4k+1, sides that are not multiples of 16, steps or guidance out of range (unset values,
    ``None``, are the card's and checked once it is read)."""
    from kinema.generate.wan import FRAMES_MULTIPLE, check_size

    if not settings.prompt.strip():
        raise InvalidArgumentError("the prompt is empty",
                                   hint='say what to make, e.g. "a red fox running through snow"')
    frames, size = settings.frames, settings.size
    if frames is not None and (frames < 1 or (frames - 1) % FRAMES_MULTIPLE):
        raise InvalidArgumentError(f"--frames {frames}: Wan makes 4k+1 frames",
                                   hint="e.g. 33, 49 or 81 (81 is 5 s at 16 fps)")
    if size is not None:
        if size[0] < 1 or size[1] < 1:
            raise InvalidArgumentError(f"--size {size[0]}x{size[1]} is empty", hint="e.g. --size 832x480")
        check_size(size)
    if settings.steps is not None and settings.steps < 1:
        raise InvalidArgumentError(f"--steps must be at least 1, got {settings.steps}")
    if settings.guidance is not None and settings.guidance < 0:
        raise InvalidArgumentError(f"--guidance must not be negative, got {settings.guidance}")


def check_output(target: Path, overwrite: bool, project: str | os.PathLike[str] | None) -> None:
    """Fail now, before the work, when ``target`` cannot take the clip."""
    from kinema.app.operation_records import check_project
    from kinema.core.atomic import check_can_write, check_not_input, output_path

    suffix = target.suffix.lower()
    if suffix not in CODECS:
        raise InvalidArgumentError(f"cannot write a clip to a {suffix} file", path=target,
                                   hint="name a .mp4 (H.264), a .mov (ProRes) or a folder (PNGs)")
    folder = suffix == ""
    check_can_write(target, overwrite, folder=folder)
    check_not_input(target, [project])
    parent = output_path(target).parent
    if not parent.is_dir():
        raise MediaWriteError("output folder does not exist", path=parent, hint="create it first")
    check_project(project)


def denoise(generator: TextToVideo, request: ClipRequest) -> Steps[list[np.ndarray]]:
    """``generator.generate(request)`` on a worker thread, an event after every denoising
    step; closing this generator stops the generation at its next step."""
    result: dict[str, list[np.ndarray]] = {}

    def work(emit: Emit) -> None:
        result["frames"] = generator.generate(
            request, on_step=lambda step, steps: emit("step", Progress(step, steps, "steps")))

    for _kind, event in threaded(work, "kinema-t2v"):
        yield event  # type: ignore[misc]
    return result["frames"]


def summary(clip_name: str, model: str, seed: int, frames: int, fps: Fraction) -> str:
    """The movie's comment: what made it, its frame count, rate and duration, and where its
    recipe is."""
    seconds = Fraction(frames) / fps
    return (f"kinema t2v ({model}, seed {seed}): {frames} frames at {_number(fps)} fps, "
            f"{_number(seconds)} s; recipe in {clip_name}.provenance.json")


def _number(value: Fraction) -> str:
    """``16``, ``29.97``, ``5.0625``: a rate or a duration as people write it."""
    return f"{float(value):.6g}"


def make_clip(settings: ClipSettings, out: str | os.PathLike[str], *,
              model: str | os.PathLike[str] | None = None, backend: str = BACKEND,
              device: Any = None, dtype: Any = None, overwrite: bool = False,
              project: str | os.PathLike[str] | None = None,
              generator: TextToVideo | None = None) -> Steps[Clip]:
    """The clip ``settings`` describe, written to ``out`` (``.mp4``, ``.mov`` or a folder of
    PNGs) at the model's frame rate, with its recipe beside it; with ``project`` the clip (a
    movie) joins its media pool and the recipe is stored there. ``backend`` names the ``t2v``
    backend, ``model`` its weights; ``generator``: one already loaded from ``model`` to use
    instead. Everything that can be checked is checked before the model loads; nothing is
    written when anything fails."""
    from kinema.app.asset_jobs import model_ref
    from kinema.app.operation_records import placement_of
    from kinema.models import backends
    from kinema.models.registry import DEFAULTS, is_model_folder, resolve

    target = Path(out)
    check_settings(settings)
    check_output(target, overwrite, project)
    kind = backends.get("t2v", backend)
    task = kind.model_task or TASK
    folder = resolve(model, task=task)
    card = VideoCard.read(folder, model, task)
    request = card.settled(settings)
    check_settings(request)  # the card's values
    total = request.steps + 1  # the denoising steps, then the write
    yield Progress(0, total, "steps")
    if generator is None:
        generator = kind.create(model=folder, device=device, dtype=dtype)
    frames = yield from mapped(denoise(generator, request), lambda e: Progress(e.done, total, "steps"))
    recipe = T2VRecipe(
        id=f"t2v-{target.name}", model=model_ref(model, task), **placement_of(generator),
        seed=request.seed, prompt=request.prompt, negative=request.negative, steps=request.steps,
        guidance=request.guidance, scheduler=card.scheduler, size=request.size,
        frames=len(frames), rate=card.fps)
    name = (DEFAULTS[task] if model is None else
            Path(model).name if is_model_folder(model) else str(model))
    record, recipe_id = _write(target, frames, card.fps, request, recipe, name, overwrite, project)
    yield Progress(total, total, "steps")
    return Clip(target, record, len(frames), request.size, card.fps, recipe, recipe_id)


def _write(target: Path, frames: list[np.ndarray], fps: Fraction, request: ClipRequest,
           recipe: T2VRecipe, model_name: str, overwrite: bool,
           project: str | os.PathLike[str] | None) -> tuple[Path, str | None]:
    """The clip, its provenance record and (with ``project``) its recipe there; what this wrote
    goes again if a later step fails, so no clip is left without its recipe."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import output_path
    from kinema.media.writer import VideoWriter

    suffix = target.suffix.lower()
    movie = suffix != ""
    existed = output_path(target).exists()
    metadata = {"title": request.prompt,
                "comment": summary(target.name, model_name, request.seed, len(frames), fps)}
    with VideoWriter(target, fps, request.size, codec=CODECS[suffix], overwrite=overwrite,
                     metadata=metadata if movie else None) as writer:
        for frame in frames:
            writer.write(frame)
    record = records.record_path(target)
    try:
        records.write_record(target, recipe, [])
        recipe_id = None
        if project is not None:
            recipe_id = records.store_recipe(project, recipe, [], media=target if movie else None)
    except BaseException:
        if movie:
            target.unlink(missing_ok=True)
        elif not existed:
            shutil.rmtree(target, ignore_errors=True)
        record.unlink(missing_ok=True)
        raise
    return record, recipe_id
