"""Transparent assets from words: generate a picture, cut its object out, place it in a project.

:func:`make_asset` is a generator of ``core.jobs.Progress`` (one event per denoising step, then
the cut-out, then the write). The picture comes from SDXL (:mod:`kinema.generate.sdxl`); the
cut-out (:mod:`kinema.vision.cutout`) boxes the subject with Grounding DINO and masks it with
SAM 2 where both models are on this machine (or named), else uses the bundled salient-object
model. The PNG is written atomically with ``OUT.provenance.json`` beside it holding the
:class:`~kinema.document.recipes.AssetRecipe` (see :mod:`kinema.app.operation_records`). With a
project the PNG joins its media pool and becomes a still on a new layer, its object's centre at
the point given, and the recipe is stored as ``asset-<media id>``, all in one save.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.jobs import Emit, Progress, Steps, mapped, threaded
from kinema.document.recipes import AssetRecipe, LoraRef, ModelRef
from kinema.vision.cutout import Cutout, Cutter, Settings

if TYPE_CHECKING:
    from kinema.document.edits import Edit
    from kinema.document.model import Project
    from kinema.generate.sdxl import ImageGenerator, Request

log = logging.getLogger(__name__)

CUTOUTS = ("auto", "detector", "salient")
"""How the object is found: ``detector`` (Grounding DINO and SAM 2), ``salient`` (the
bundled U²-Net small), ``auto`` (the detector where both its models are here)."""


@dataclass(frozen=True)
class Spot:
    """Where an asset goes in a project: its object's centre at ``(x, y)`` canvas pixels from
    timeline frame ``frame`` to the end, scaled by ``scale``."""

    x: float
    y: float
    frame: int
    scale: float = 1.0


@dataclass(frozen=True)
class Asset:
    """What :func:`make_asset` wrote: the PNG (``size`` W, H; its object's ``centre`` in it),
    its provenance record and recipe, whether the cut-out found the object, and the layer it
    became in the project (if one was given)."""

    output: Path
    record: Path
    size: tuple[int, int]
    centre: tuple[float, float]
    found: bool
    recipe: AssetRecipe
    layer: str | None = None


def model_ref(model: str | os.PathLike[str] | None, task: str) -> ModelRef:
    """How a recipe names the weights :func:`~kinema.models.registry.resolve` picks for
    ``task``: hub repository and revision (or folder), and the hash of the weight files."""
    from kinema.models.registry import identity

    return ModelRef(**asdict(identity(model, task=task)))


def image_generator(model: str | os.PathLike[str] | None, loras: Sequence[tuple[Path, float]] = (),
                    device: Any = None) -> ImageGenerator:
    """SDXL ``model`` (a folder or a registry name, default ``sdxl-base``) loaded with
    ``loras`` at their weights; a registry model's card fills what a request leaves unset."""
    from kinema.generate.sdxl import ImageGenerator
    from kinema.models.registry import DEFAULTS, MODELS, resolve

    folder = resolve(model, task="text-to-image")
    entry = MODELS.get(str(model) if model is not None else DEFAULTS["text-to-image"])
    return ImageGenerator(folder, loras=loras, card=entry.card if entry else None, device=device)


def lora_refs(loras: Sequence[tuple[Path, float]]) -> list[LoraRef]:
    """LoRA files as a recipe names them: path, content hash, weight."""
    from kinema.core.hashing import file_sha256

    return [LoraRef(model_id=str(Path(path).resolve()), weights_sha256=file_sha256(path),
                    weight=float(weight)) for path, weight in loras]


def _present(model: str | os.PathLike[str] | None, task: str) -> bool:
    from kinema.models.registry import resolve

    try:
        resolve(model, task=task)
    except ModelNotFoundError:
        return False
    return True


def cutout_method(cutout: str, detector: str | os.PathLike[str] | None,
                  segmenter: str | os.PathLike[str] | None) -> str:
    """``detector`` or ``salient``: ``auto`` takes the detector when a detector or segmenter
    is named or both default models are on this machine."""
    if cutout not in CUTOUTS:
        raise InvalidArgumentError(f"unknown cut-out {cutout!r}", hint=f"use one of {', '.join(CUTOUTS)}")
    if cutout == "salient" and (detector is not None or segmenter is not None):
        raise InvalidArgumentError("--detector and --segmenter are for the detector cut-out",
                                   hint="leave them out, or use --cutout detector (or auto)")
    if cutout != "auto":
        return cutout
    named = detector is not None or segmenter is not None
    if named or (_present(None, "detect-text") and _present(None, "segment-video")):
        return "detector"
    log.info("cutting out with the bundled salient-object model (for Grounding DINO and SAM 2: "
             "kinema models pull grounding-dino-tiny, kinema models pull sam2-tiny)")
    return "salient"


def load_cutter(method: str, detector: str | os.PathLike[str] | None = None,
                segmenter: str | os.PathLike[str] | None = None, *, device: Any = None,
                settings: Settings | None = None) -> tuple[Cutter, ModelRef, ModelRef | None]:
    """The cut-out models of ``method`` loaded once (with ``settings``, default
    :class:`~kinema.vision.cutout.Settings`), and the identities of its segmenting model and
    detector (none on the salient path)."""
    settings = settings or Settings()
    if method == "detector":
        from kinema.vision.grounding import TextDetector
        from kinema.vision.sam2 import Sam2ImageSegmenter

        words = TextDetector(detector, device=device)
        masks = Sam2ImageSegmenter(segmenter, device=device)
        return (Cutter(detector=words, segmenter=masks, settings=settings),
                model_ref(segmenter, "segment-video"), model_ref(detector, "detect-text"))
    from kinema.app.operation_records import bundled_model
    from kinema.models.bundled import model_file
    from kinema.vision.oneclick import SALIENT, SalientModel

    salient = SalientModel(model_file(*SALIENT))
    return Cutter(salient=salient, settings=settings), bundled_model(*SALIENT), None


def denoise(generator: ImageGenerator, request: Request) -> Steps[np.ndarray]:
    """``generator.generate(request)`` on a worker thread, with an event after every denoising
    step; closing this generator stops the generation at its next step."""
    result: dict[str, np.ndarray] = {}

    def work(emit: Emit) -> None:
        result["image"] = generator.generate(
            request, on_step=lambda step, steps: emit("step", Progress(step, steps, "steps")))

    for _kind, event in threaded(work, "kinema-generate"):
        yield event  # type: ignore[misc]
    return result["image"]


def check_spot(project: str | os.PathLike[str], spot: Spot) -> None:
    """Fail now, before the work, when ``project`` cannot take the asset at ``spot``."""
    from kinema.app.operation_records import check_project
    from kinema.document import store

    check_project(project)
    duration = store.load(project).timeline.duration
    if not 0 <= spot.frame < duration:
        raise InvalidArgumentError(f"--at frame {spot.frame} is outside the timeline (frames 0 to "
                                   f"{duration - 1})")
    if not spot.scale > 0:
        raise InvalidArgumentError(f"--scale must be positive, got {spot.scale}")


def make_asset(request: Request, out: str | os.PathLike[str], *, subject: str | None = None,
               model: str | os.PathLike[str] | None = None, loras: Sequence[tuple[Path, float]] = (),
               cutout: str = "auto", detector: str | os.PathLike[str] | None = None,
               segmenter: str | os.PathLike[str] | None = None, device: Any = None,
               settings: Settings | None = None, overwrite: bool = False,
               project: str | os.PathLike[str] | None = None, spot: Spot | None = None) -> Steps[Asset]:
    """The transparent asset ``request`` describes, written to ``out`` (a ``.png``) with its
    recipe beside it; with ``project`` and ``spot`` placed there as a still on a new layer.

    ``subject`` is what the cut-out looks for (default :func:`~kinema.vision.cutout.subject_of`
    the prompt), with ``settings`` (default :class:`~kinema.vision.cutout.Settings`). Where
    it finds nothing, a warning says so and the whole picture is kept, opaque. Nothing is
    written when anything fails."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import check_can_write, check_not_input
    from kinema.vision.cutout import subject_of

    target = Path(out)
    if target.suffix.lower() != ".png":
        raise InvalidArgumentError("an asset is a PNG (straight-alpha RGBA)", path=target,
                                   hint="name the output asset.png")
    if (project is None) != (spot is None):
        raise InvalidArgumentError("--project and --at go together",
                                   hint="give both to place the asset, or neither")
    check_can_write(target, overwrite)
    check_not_input(target, [project])
    if project is not None and spot is not None:
        check_spot(project, spot)
    settings = settings or Settings()
    words = subject or subject_of(request.prompt)
    method = cutout_method(cutout, detector, segmenter)
    cutter, cut_model, box_model = load_cutter(method, detector, segmenter, device=device,
                                               settings=settings)
    generator = image_generator(model, loras, device)
    r = request.settled(generator.card)
    total = r.steps + 2  # the denoising steps, the cut-out, the write
    image = yield from mapped(denoise(generator, r), lambda e: Progress(e.done, total, "steps"))
    cut = cutter(image, words)
    yield Progress(total - 1, total, "steps")
    recipe = AssetRecipe(
        id=f"asset-{target.name}", model=model_ref(model, "text-to-image"),
        **records.placement_of(generator), seed=r.seed, prompt=r.prompt, negative=r.negative,
        steps=r.steps, guidance=r.guidance, scheduler=r.scheduler, loras=lora_refs(loras),
        size=r.size, subject=words, cutout=cut_model, detector=box_model,
        cutout_settings=settings.record(), uncut=not cut.found)
    if not cut.found:
        log.warning(f"the cut-out found no {words!r} in the picture: kept it whole and opaque "
                    "(try --object with other words)")
    size = (cut.rgba.shape[1], cut.rgba.shape[0])
    record, layer = _write(target, cut, recipe, overwrite, project, spot)
    yield Progress(total, total, "steps")
    return Asset(target, record, size, cut.centre, cut.found, recipe, layer)


def _write(target: Path, cut: Cutout, recipe: AssetRecipe, overwrite: bool,
           project: str | os.PathLike[str] | None, spot: Spot | None) -> tuple[Path, str | None]:
    """The PNG, its provenance record and (with ``project``) its place there; the files this
    wrote go again if a later step fails, so a failure leaves no asset without its recipe."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import atomic_write_bytes
    from kinema.media.image import encode_png

    atomic_write_bytes(target, encode_png(cut.rgba), overwrite=overwrite)
    record = records.record_path(target)
    try:
        records.write_record(target, recipe, [])
        layer = None
        if project is not None and spot is not None:
            size = (cut.rgba.shape[1], cut.rgba.shape[0])
            layer = _place(project, Asset(target, record, size, cut.centre, cut.found, recipe), spot)
    except BaseException:
        target.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        raise
    return record, layer


def _place(project: str | os.PathLike[str], asset: Asset, spot: Spot) -> str:
    """``asset`` placed at ``spot`` in ``project`` (:func:`placement`), in one save; returns
    the new layer's id."""
    from kinema.document import store

    folder = store.project_path(project)
    with store.ProjectFile(folder) as pf:
        edit, layer_id = placement(pf.project, folder, asset, spot)
        pf.history.do(edit)
        pf.save()
    return layer_id


def placement(project: Project, folder: Path, asset: Asset, spot: Spot) -> tuple[Edit, str]:
    """One undoable edit of ``project`` (in ``folder``) that puts ``asset`` in its media pool
    (its facts renewed where the pool has it), on a new top layer as a still from
    ``spot.frame`` on with its object's centre at the spot, and its recipe in as
    ``asset-<media id>``; and the id that layer will have."""
    from kinema.app.operation_records import pool_ref
    from kinema.document import edits
    from kinema.document.model import Animated, AssetItem, Transform, VideoLayer

    ref = pool_ref(project, Path(folder), asset.output)
    tl = project.timeline
    width, height = asset.size
    # The layer's centre lands on canvas centre + position; the object's centre is off
    # the PNG's centre by (centre - size / 2), scaled with the layer.
    dx = spot.x - spot.scale * (asset.centre[0] - width / 2) - tl.width / 2
    dy = spot.y - spot.scale * (asset.centre[1] - height / 2) - tl.height / 2
    items = {i.id for layer in tl.video_layers for i in layer.items}
    layer_id = _free({layer.id for layer in tl.video_layers}, "l")
    layer = VideoLayer(
        id=layer_id, name=f"asset {asset.recipe.subject}",
        transform=Transform(position=Animated(value=(dx, dy)),
                            scale=Animated(value=(spot.scale, spot.scale))),
        items=[AssetItem(id=_free(items, "x"), media_id=ref.id, still=True, start=spot.frame,
                         duration=tl.duration - spot.frame)])
    steps = [edits.record_media(ref, asset.recipe.model_copy(update={"id": f"asset-{ref.id}"})),
             edits.add_layer(layer)]

    def apply(doc: Project) -> None:
        for step in steps:
            step.apply(doc)

    return edits.Edit(f"Place asset {asset.recipe.subject}", apply), layer_id


def _free(taken: Collection[str], prefix: str) -> str:
    """The first of ``prefix1``, ``prefix2``, ... not in ``taken``."""
    return next(f"{prefix}{k}" for k in count(1) if f"{prefix}{k}" not in taken)
