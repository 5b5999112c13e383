"""Restyle an object on key frames of a video or a project: ``kinema restyle``.

:func:`restyle` reads each key frame and the object's mask there (a project's mask track, or
a ``kinema track -o masks.npz`` label map, whose non-zero labels are the object), grows the
mask by the margin and feathers it, makes the control images the key asks for (canny at the
model's scale, OpenPose skeletons from the bundled pose model on frames where it finds people,
depth from Depth Anything where that model is present) and hands the keys, one at a time, to
:func:`kinema.generate.restyle.restyle_keys`. Outside the grown and feathered matte every
pixel of a key is the decoded source frame, bit for bit.

Output: a folder with one PNG per key named by its source frame, ``{frame:05d}.png``
(``00024.png`` is frame 24 of the footage), written atomically as a kinema folder output (see
:func:`kinema.core.atomic.commit_frames`). The :class:`~kinema.document.recipes.RestyleRecipe`
goes to ``KEYS.provenance.json`` beside the folder, the sidecar every kinema file operation
writes (:mod:`kinema.app.operation_records`), so the folder holds nothing but the keys. With a
project, the recipe is also stored there and the keys become the inputs of a stylise layer on
top (a :class:`~kinema.document.model.StyleItem`); restyling into the same folder again
updates that layer.

:func:`restyle_masks` does the work on masks already open (the editor passes its live mask
store), writing the keys and the record; :func:`style_edit` is the one undoable document edit
that stores the recipe and the style layer, which :func:`restyle` applies to a project file and
the editor through its history.

The model loads once and keys stream: a key's frame is read when its turn comes and its PNG
written as soon as it is made, so memory does not grow with the number of keys. The diffusion
runs on a worker thread, so progress comes after every denoising step.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import count, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from kinema.core.errors import InvalidArgumentError, MediaOpenError, ModelNotFoundError
from kinema.core.jobs import Emit, Progress, Steps, threaded
from kinema.generate.control import CANNY_THRESHOLDS, KINDS, ControlSpec, check_thresholds

if TYPE_CHECKING:
    from kinema.app.operation_records import Source
    from kinema.document.edits import Edit
    from kinema.document.model import Project
    from kinema.document.recipes import RestyleRecipe

DEFAULT_MODEL = "sdxl-inpaint"
READ_CACHE_BYTES = 32 * 2**20
"""The footage reader's own frame cache: each key is read once, in order, so the process-wide
cache (1 GiB) would only keep the frames decoded on the way to them."""
CONTROL_KINDS = KINDS
"""The conditions a restyle can ask for (the editor's Restyle panel offers each)."""
KEY_NAME = "{frame:05d}.png"
"""The name of a key's PNG in the output folder: its source frame, five digits."""


@dataclass(frozen=True)
class RestyleResult:
    """What :func:`restyle` wrote: the keys folder, the key ``frames``, those that got the pose
    condition (``posed``), the provenance record, and in a project the recipe and layer ids."""

    output: Path
    frames: tuple[int, ...]
    posed: tuple[int, ...]
    record: Path
    recipe_id: str | None = None
    layer_id: str | None = None


@dataclass(frozen=True)
class Styled:
    """What :func:`restyle_masks` wrote: the keys folder, the key ``frames``, those that got the
    pose condition, the provenance record, the recipe, each key's sha256 by frame, the files
    read (``sources``) and the mask track styled (a project's)."""

    output: Path
    frames: tuple[int, ...]
    posed: tuple[int, ...]
    record: Path
    recipe: RestyleRecipe
    keys: dict[int, str]
    sources: tuple[Source, ...]
    track_id: str | None = None


class MaskSource(Protocol):
    """An object's masks by source frame: ``read(i)`` is a ``bool (H, W)`` or ``None``."""

    name: str
    frames: int
    size: tuple[int, int]

    def read(self, i: int) -> np.ndarray | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TrackMasks:
    """A project's mask track as a :class:`MaskSource`, named by the track's name."""

    name: str
    frames: int
    size: tuple[int, int]
    store: Any

    def read(self, i: int) -> np.ndarray | None:
        return self.store.read(i)

    def close(self) -> None:
        """Nothing to release: the track's chunks are read as needed."""


class LabelFile:
    """The label maps of a ``kinema track -o masks.npz`` file, read one frame at a time (the
    file is never loaded whole; frames asked for in increasing order are read in one pass).
    A frame's mask is where any object is (labels above 0)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_file():
            raise MediaOpenError("mask file not found", path=self.path,
                                 hint="give a label map from kinema track -o masks.npz")
        try:
            self._zip = zipfile.ZipFile(self.path)
            self._entry = self._zip.open("masks.npy")
            version = np.lib.format.read_magic(self._entry)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(self._entry)
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise InvalidArgumentError(f"is not a kinema label map ({exc})", path=self.path,
                                       hint="give a file kinema track -o masks.npz wrote") from None
        if len(shape) != 3 or dtype != np.uint8:
            raise InvalidArgumentError(f"holds {dtype} {shape} masks, not uint8 (frames, H, W)",
                                       path=self.path)
        self.frames, height, width = shape
        self.size = (width, height)
        self._start = self._entry.tell()

    def read(self, i: int) -> np.ndarray:
        width, height = self.size
        self._entry.seek(self._start + i * width * height)
        data = self._entry.read(width * height)
        return np.frombuffer(data, np.uint8).reshape(height, width) > 0

    def close(self) -> None:
        self._entry.close()
        self._zip.close()


def pose_control(estimator: Any, frame: np.ndarray) -> np.ndarray | None:
    """The OpenPose control image of everyone the pose model finds in ``frame``, or ``None``
    when it finds no one (that frame gets no pose condition)."""
    from kinema.vision.pose import draw_openpose

    people = [kp for kp in (p.openpose() for p in estimator.people(frame)) if (kp[:, 2] > 0).any()]
    return draw_openpose(people, (frame.shape[1], frame.shape[0])) if people else None


def control_specs(weights: Mapping[str, float]) -> list[ControlSpec]:
    """Conditions by kind and weight, each over the whole sampling (as the editor asks)."""
    for kind, weight in weights.items():
        if kind not in KINDS:
            raise InvalidArgumentError(f"unknown control {kind!r}", hint=f"use {', '.join(KINDS)}")
        if weight < 0:
            raise InvalidArgumentError(f"control {kind} has a negative weight {weight}")
    return [ControlSpec(kind, float(weight)) for kind, weight in weights.items()]  # type: ignore[arg-type]


def restyle(source: str | os.PathLike[str], output: str | os.PathLike[str], *, frames: Sequence[int],
            track: str | None = None, mask: str | os.PathLike[str] | None = None,
            **options: Any) -> Steps[RestyleResult]:
    """Restyle the object on key ``frames`` of ``source`` (a video with ``mask``, or a project
    with ``track``: a mask track's id or name) and write one PNG per key into ``output``;
    ``options`` are those of :func:`restyle_masks`. In a project the keys become a style layer
    (:func:`style_edit`), saved."""
    from kinema.app import operation_records as records
    from kinema.core import atomic

    in_project = is_project(source)
    project = source if in_project else None
    atomic.check_not_input(output, [source, mask])
    records.check_project(project)
    masks, footage, track_id = _open_masks(source, in_project, track, mask)
    try:
        styled = yield from restyle_masks(masks, footage, output, frames=frames, track_id=track_id,
                                          inputs=[mask] if mask is not None else [], **options)
    finally:
        masks.close()
    if project is None or track_id is None:
        return RestyleResult(styled.output, styled.frames, styled.posed, styled.record)
    recipe_id, layer_id = store_style(project, styled)
    return RestyleResult(styled.output, styled.frames, styled.posed, styled.record, recipe_id, layer_id)


def restyle_masks(masks: MaskSource, footage: str | os.PathLike[str], output: str | os.PathLike[str], *,
                  prompt: str, frames: Sequence[int], track_id: str | None = None,
                  inputs: Sequence[str | os.PathLike[str]] = (), negative: str = "",
                  controls: Sequence[ControlSpec] = (),
                  loras: Sequence[tuple[str | os.PathLike[str], float]] = (), seed: int = 0,
                  strength: float = 0.7, steps: int | None = None, guidance: float | None = None,
                  scheduler: str | None = None, margin: int = 8, feather: float = 4.0,
                  grid: bool = False, model: str | os.PathLike[str] | None = None,
                  controlnets: Mapping[str, str | os.PathLike[str]] | None = None,
                  depth_model: str | os.PathLike[str] | None = None,
                  canny: tuple[int, int] = CANNY_THRESHOLDS, device: Any = None, dtype: Any = None,
                  overwrite: bool = False,
                  on_key: Callable[[int, np.ndarray], None] | None = None,
                  checkpoint: Path | None = None, ray: bool = False) -> Steps[Styled]:
    """Restyle the object of the open ``masks`` (of ``footage``; a project's mask track
    ``track_id``) on key ``frames``: one PNG per key into ``output`` and the recipe in
    ``OUTPUT.provenance.json``, its sources the footage and ``inputs`` (a label map file).
    Nothing is stored in a project: :func:`style_edit` does that.

    Everything is checked before the model loads: the output may be written, the masks are
    not empty on any key, every key is inside the footage, the models and LoRA files are here.
    ``on_key(frame, image)`` sees each finished key (a preview). Progress counts denoising
    steps; its messages say which keys had no people for the pose condition.

    ``checkpoint``: a folder that keeps each finished key of this very job (the caller keys
    it by the whole recipe) so a run cut short resumes without making them again.

    With ``ray`` the keys are restyled by Ray actors (:mod:`kinema.app.ray_pool`), each holding
    the model (one per GPU on a cluster with GPUs), a picture (``grid`` x ``grid`` keys) at a
    time, the same :func:`~kinema.generate.restyle.restyle_keys` as here; progress then counts
    pictures. The model is not loaded here.
    """
    from kinema.app import operation_records as records
    from kinema.core import atomic
    from kinema.media import open_video

    target = atomic.output_path(output)
    atomic.check_can_write(target, overwrite, folder=True)
    settings = _settings(prompt, negative, seed, strength, steps, guidance, scheduler)
    check_thresholds(*canny)
    keys = sorted(set(frames))
    with open_video(footage, prefetch=False, cache_bytes=READ_CACHE_BYTES) as reader:
        boxes = _check_keys(keys, masks, reader, margin, feather)
        models = _Models.resolve(model, controls, controlnets, depth_model, loras)
        generator = _OnRay(models, device, dtype) if ray else models.load(device, dtype)
        annotators = models.annotators(device)
        window = _window(generator, boxes, reader.size, grid)
        posed: list[int] = []
        kept = _kept_keys(checkpoint, keys, window.cells)
        stream = _keys([k for k in keys if k not in kept], reader, masks, controls, annotators,
                       canny, margin, feather, posed)
        written = yield from _write_keys(generator, stream, window, settings, target, overwrite,
                                         len(keys) - len(kept), on_key, kept, checkpoint)
    sources = [records.Source.of(path) for path in (footage, *inputs)]
    recipe = models.recipe(generator, settings, keys, track_id, margin, feather, controls, canny,
                           window.grid, sources, name=target.name)
    record = records.write_record(target, recipe, sources)
    return Styled(target, tuple(keys), tuple(posed), record, recipe, written, tuple(sources), track_id)


def is_project(source: str | os.PathLike[str]) -> bool:
    from kinema.document.store import DOCUMENT, SUFFIX

    path = Path(source)
    return path.suffix == SUFFIX or (path / DOCUMENT).is_file()


def _open_masks(source: str | os.PathLike[str], in_project: bool, track: str | None,
                mask: str | os.PathLike[str] | None) -> tuple[MaskSource, Path, str | None]:
    """The object's masks, the footage they belong to, and the mask track's id (a project)."""
    if in_project:
        if track is None or mask is not None:
            raise InvalidArgumentError("a project takes --track OBJ (its mask track), not --mask")
        return project_track(source, track)
    if mask is None or track is not None:
        raise InvalidArgumentError("a video takes --mask MASKS.npz (from kinema track -o); "
                                   "--track names a project's mask track")
    return LabelFile(mask), Path(source), None


def project_track(source: str | os.PathLike[str], name: str) -> tuple[MaskSource, Path, str]:
    """Project ``source``'s mask track ``name`` (its id or name) as a :class:`MaskSource`, the
    footage it belongs to, and the track's id; one error naming the tracks there if none is."""
    from kinema.app.export_jobs import open_track, track_footage
    from kinema.document import store

    folder = store.project_path(source)
    project = store.load(folder)
    ref, masks = open_track(project, folder, name)
    footage = track_footage(project, folder, ref)
    return TrackMasks(ref.name, ref.frames, (ref.width, ref.height), masks), footage, ref.id


def _check_keys(keys: list[int], masks: MaskSource, reader: Any, margin: int,
                feather: float) -> list[tuple[int, int, int, int]]:
    """Every key inside the footage and the masks, the object on each; their mattes' boxes."""
    from kinema.core.frames import check_index
    from kinema.generate.restyle import matte_box

    if not keys:
        raise InvalidArgumentError("no key frames given", hint="give --frames, e.g. 0,24,47")
    if masks.size != reader.size:
        raise InvalidArgumentError(f"the masks are {masks.size[0]}x{masks.size[1]} but the footage "
                                   f"is {reader.size[0]}x{reader.size[1]}", path=masks.name)
    for frame in keys:
        check_index(frame, min(len(reader), masks.frames), path=masks.name)
    boxes, empty = [], []
    for frame in keys:
        box = matte_box(restyle_mattes(masks.read(frame), masks.size, margin, feather)[1])
        if box is None:
            empty.append(frame)
        else:
            boxes.append(box)
    if empty:
        which = "every key frame" if len(empty) == len(keys) else "key frames " + ", ".join(map(str, empty))
        raise InvalidArgumentError(f"the mask of {masks.name} is empty on {which}",
                                   hint="track the object on those frames, or choose frames where it is")
    return boxes


def restyle_mattes(mask: np.ndarray | None, size: tuple[int, int], margin: int,
            feather: float) -> tuple[np.ndarray, np.ndarray]:
    """The region the model repaints (the mask grown by ``margin``) and the matte the key is
    composited through (that region feathered)."""
    from kinema.render.mattes import matte_from_mask

    if mask is None:
        mask = np.zeros(size[::-1], bool)
    region = matte_from_mask(mask, grow=margin) > 0.5
    return region, matte_from_mask(region, feather=feather)


@dataclass
class _Models:
    """The weights a restyle runs, resolved before any work: the SDXL folder and its card, a
    ControlNet per condition, the depth model when asked for, the LoRA files."""

    name: str | os.PathLike[str]
    folder: Path
    card: dict | None
    nets: dict[str, tuple[str | os.PathLike[str] | None, Path]]
    depth: tuple[str | os.PathLike[str] | None, Path] | None
    pose: bool
    loras: list[tuple[Path, float]]

    @classmethod
    def resolve(cls, model: str | os.PathLike[str] | None, controls: Sequence[ControlSpec],
                controlnets: Mapping[str, str | os.PathLike[str]] | None,
                depth_model: str | os.PathLike[str] | None,
                loras: Sequence[tuple[str | os.PathLike[str], float]]) -> _Models:
        from kinema.models.registry import MODELS, resolve

        name = model if model is not None else DEFAULT_MODEL
        folder = resolve(name, task="text-to-image")
        card = MODELS[str(name)].card if str(name) in MODELS else None
        given = dict(controlnets or {})
        unused = sorted(set(given) - {c.kind for c in controls})
        if unused:
            raise InvalidArgumentError(f"--controlnet {', '.join(unused)} is given but not asked for",
                                       hint="add it to --control, e.g. --control canny=0.6")
        nets = {c.kind: (given.get(c.kind), resolve(given.get(c.kind), task=f"control-{c.kind}"))
                for c in controls}
        kinds = {c.kind for c in controls}
        depth = (depth_model, resolve(depth_model, task="depth")) if "depth" in kinds else None
        if "pose" in kinds:
            from kinema.app.pose_jobs import check_pose_models

            check_pose_models()
        for path, _weight in loras:
            if not Path(path).is_file():
                raise ModelNotFoundError("LoRA file not found", path=path,
                                         hint="give a .safetensors file (kinema lora train writes one)")
        return cls(name, folder, card, nets, depth, "pose" in kinds,
                   [(Path(p), float(w)) for p, w in loras])

    def load(self, device: Any, dtype: Any) -> Any:
        from kinema.generate.sdxl import ImageGenerator

        return ImageGenerator(self.folder, controlnets={k: f for k, (_n, f) in self.nets.items()},
                              loras=self.loras, card=self.card, device=device, dtype=dtype)

    def annotators(self, device: Any) -> dict[str, Any]:
        """The models that make control images from frames: ``pose``, ``depth``."""
        return load_annotators(self.pose, None if self.depth is None else self.depth[1], device)

    def recipe(self, generator: Any, settings: Any, keys: list[int], track_id: str | None,
               margin: int, feather: float, controls: Sequence[ControlSpec],
               canny: tuple[int, int], grid: int, sources: list[Any], *, name: str) -> Any:
        """The :class:`~kinema.document.recipes.RestyleRecipe` of this run."""
        from kinema.app.operation_records import placement_of
        from kinema.core.hashing import file_sha256
        from kinema.document.recipes import ControlRef, LoraRef, RestyleRecipe
        from kinema.generate.sdxl import Request

        sampled = Request(settings.prompt, steps=settings.steps, guidance=settings.guidance,
                          scheduler=settings.scheduler).settled(generator.card)
        annotators = annotator_refs(self.pose, self.depth)
        return RestyleRecipe(
            id=f"restyle-{name}", model=model_ref(self.name, "text-to-image"),
            **placement_of(generator), seed=settings.seed, inputs=[s.as_input() for s in sources],
            prompt=settings.prompt, negative=settings.negative, steps=sampled.steps,
            guidance=sampled.guidance, scheduler=sampled.scheduler,
            loras=[LoraRef(model_id=str(p.resolve()), weights_sha256=file_sha256(p), weight=w)
                   for p, w in self.loras],
            track_id=track_id, frames=keys, strength=settings.strength, margin=margin,
            feather=feather, grid=grid, annotators=annotators,
            controls=[ControlRef(**model_ref(self.nets[c.kind][0], f"control-{c.kind}").model_dump(),
                                 kind=c.kind, weight=c.weight, start=c.start, end=c.end,
                                 thresholds=canny if c.kind == "canny" else None)
                      for c in controls])


@dataclass
class _OnRay:
    """Keys restyled by Ray actors, each loading the generator ``models.load(device, dtype)``;
    its ``card`` read here without the weights."""

    models: _Models
    device: Any
    dtype: Any

    @property
    def card(self) -> Any:
        from kinema.generate.sdxl import Card

        return Card.read(self.models.folder, self.models.card)

    def restyle(self, keys: Iterator[Any], window: Any, settings: Any) -> Iterator[Any]:
        """Each group of ``window.cells`` keys restyled on an actor, in the keys' order."""
        from kinema.app.ray_pool import map_actors

        def groups() -> Iterator[list[Any]]:
            while group := list(islice(keys, window.cells)):
                yield group

        made = map_actors(partial(self.models.load, self.device, self.dtype),
                          partial(_restyle_group, window, settings), groups(), ordered=True,
                          gpu=self.device != "cpu")
        for _group, restyled in made:
            yield from restyled


def _restyle_group(window: Any, settings: Any, generator: Any, group: list[Any]) -> list[Any]:
    """One group of keys restyled by ``generator`` (a Ray actor's work)."""
    from kinema.generate.restyle import restyle_keys

    return list(restyle_keys(generator, group, window, settings))


def _window(generator: Any, boxes: list[tuple[int, int, int, int]], size: tuple[int, int],
            grid: bool) -> Any:
    from kinema.generate.restyle import plan_window

    width, height = generator.card.size
    return plan_window(boxes, size, area=width * height, grid=2 if grid else 1)


def _settings(prompt: str, negative: str, seed: int, strength: float, steps: int | None,
              guidance: float | None, scheduler: str | None) -> Any:
    from kinema.generate.restyle import Settings

    if not prompt.strip():
        raise InvalidArgumentError("the prompt is empty", hint="say what the object becomes: --prompt ...")
    if not 0 < strength <= 1:
        raise InvalidArgumentError(f"--strength must be in (0, 1], got {strength}")
    return Settings(prompt, negative, seed, strength, steps, guidance, scheduler)


def _keys(keys: list[int], reader: Any, masks: MaskSource, controls: Sequence[ControlSpec],
          annotators: dict[str, Any], canny: tuple[int, int], margin: int, feather: float,
          posed: list[int]) -> Iterator[tuple[Any, str | None]]:
    """Each key frame with its mattes and control images, read when its turn comes, and a note
    for the user (a frame where the pose model finds no one)."""
    from kinema.generate.restyle import Key

    for frame in keys:
        image = reader[frame]
        region, alpha = restyle_mattes(masks.read(frame), masks.size, margin, feather)
        made = control_pictures(image, controls, annotators, canny)
        note = None
        if any(c.kind == "pose" for c in controls):
            if any(c.net == "pose" for c in made):
                posed.append(frame)
            else:
                note = f"key {frame}: no people found, no pose condition"
        yield Key(frame, image, region, alpha, tuple(made)), note


def control_pictures(image: np.ndarray, controls: Sequence[ControlSpec], annotators: dict[str, Any],
                     canny: tuple[int, int]) -> list[Any]:
    """Frame ``image``'s control conditions (:class:`~kinema.generate.restyle.KeyControl`): canny
    edges (a function of the picture cut, made when the cut is known), depth, and the pose of
    the people found (none where the pose model finds no one)."""
    from kinema.generate.control import canny_image, depth_image
    from kinema.generate.restyle import KeyControl

    made: list[KeyControl] = []
    for c in controls:
        if c.kind == "canny":
            picture: Any = partial(canny_image, low=canny[0], high=canny[1])
        elif c.kind == "depth":
            picture = depth_image(annotators["depth"].depth(image))
        else:
            picture = pose_control(annotators["pose"], image)
            if picture is None:
                continue
        made.append(KeyControl(c.kind, picture, c.weight, c.start, c.end))
    return made


def load_annotators(pose: bool, depth: Path | None, device: Any) -> dict[str, Any]:
    """The models that make control images from frames: the bundled ``pose`` model, and a
    ``depth`` model from its folder."""
    found: dict[str, Any] = {}
    if pose:
        from kinema.app.pose_jobs import DEFAULT_BACKEND
        from kinema.models import backends

        found["pose"] = backends.create("pose", DEFAULT_BACKEND)
    if depth is not None:
        from kinema.vision.depth import DepthEstimator

        found["depth"] = DepthEstimator(depth, device=device)
    return found


def annotator_refs(pose: bool, depth: tuple[str | os.PathLike[str] | None, Path] | None) -> list[Any]:
    """The models that made the control images, as a recipe records them: the bundled pose
    model (and its person detector) when ``pose``, the ``depth`` model (its name, folder)."""
    from kinema.app.pose_jobs import DEFAULT_BACKEND, pose_models

    found = []
    if pose:
        made = pose_models(DEFAULT_BACKEND)
        found += [m for m in (made.get("model"), made.get("detector")) if m is not None]
    if depth is not None:
        found.append(model_ref(depth[0], "depth"))
    return found


def model_ref(model: str | os.PathLike[str] | None, task: str) -> Any:
    """The :class:`~kinema.document.recipes.ModelRef` of ``model`` (a name, a folder, or the
    task's default) as a recipe records it."""
    from kinema.document.recipes import ModelRef
    from kinema.models.registry import identity

    found = identity(model, task=task)
    return ModelRef(model_id=found.model_id, revision=found.revision,
                    weights_sha256=found.weights_sha256)


def _kept_keys(checkpoint: Path | None, keys: list[int], cells: int) -> dict[int, bytes]:
    """The PNGs of the keys ``checkpoint`` holds, whole groups of ``cells`` keys only (a group
    is one picture: a part of one is made again)."""
    if checkpoint is None:
        return {}
    kept: dict[int, bytes] = {}
    for i in range(0, len(keys), cells):
        paths = [checkpoint / KEY_NAME.format(frame=k) for k in keys[i:i + cells]]
        if all(p.is_file() for p in paths):
            kept.update((k, p.read_bytes()) for k, p in zip(keys[i:i + cells], paths, strict=True))
    return kept


def _write_keys(generator: Any, stream: Iterator[tuple[Any, str | None]], window: Any, settings: Any,
                target: Path, overwrite: bool, total_keys: int,
                on_key: Callable[[int, np.ndarray], None] | None,
                kept: Mapping[int, bytes] | None = None,
                checkpoint: Path | None = None) -> Steps[dict[int, str]]:
    """Restyle the keys on a worker thread, writing each PNG into a temporary folder (and
    ``checkpoint``) as it comes, then commit the folder with the ``kept`` keys of an earlier
    run; returns each key's sha256 by frame."""
    import hashlib

    from kinema.core import atomic
    from kinema.generate.restyle import restyle_keys
    from kinema.media.image import encode_png

    calls = -(-total_keys // window.cells)
    temp = atomic.temp_path_for(target)

    def work(emit: Emit) -> None:
        def keys() -> Iterator[Any]:
            for key, note in stream:
                if note is not None:
                    emit("note", note)
                yield key

        if isinstance(generator, _OnRay):
            for k, done in enumerate(generator.restyle(keys(), window, settings)):
                if k % window.cells == 0:  # a picture finished: progress counts pictures
                    emit("step", (1, 1))
                emit("key", done)
            return
        for done in restyle_keys(generator, keys(), window, settings,
                                 on_step=lambda i, n: emit("step", (i, n))):
            emit("key", done)

    written: dict[int, str] = {}
    done = total = 0
    try:
        with atomic.naming_errors(target):
            temp.mkdir()
            for frame, data in (kept or {}).items():
                (temp / KEY_NAME.format(frame=frame)).write_bytes(data)
        if kept:
            yield Progress(0, calls, "steps", message=f"{len(kept)} keys kept from an earlier run")
        for kind, value in threaded(work, "kinema-restyle") if total_keys else ():
            if kind == "note":
                yield Progress(done, total, "steps", message=value)
            elif kind == "step":
                step, steps = value
                done, total = len(written) // window.cells * steps + step, calls * steps
                yield Progress(done, total, "steps")
            else:
                data = encode_png(value.image)
                name = KEY_NAME.format(frame=value.frame)
                with atomic.naming_errors(target):
                    (temp / name).write_bytes(data)
                if checkpoint is not None:
                    atomic.atomic_write_bytes(checkpoint / name, data, overwrite=True)
                written[value.frame] = hashlib.sha256(data).hexdigest()
                if on_key is not None:
                    on_key(value.frame, value.image)
        with atomic.naming_errors(target):
            atomic.commit_frames(temp, target, overwrite)
    except BaseException:
        atomic.discard(temp)
        raise
    written.update((frame, hashlib.sha256(data).hexdigest()) for frame, data in (kept or {}).items())
    return dict(sorted(written.items()))


def store_style(project: str | os.PathLike[str], styled: Styled) -> tuple[str, str]:
    """:func:`style_edit` applied to ``project`` and saved; the recipe's and layer's ids."""
    from kinema.document import store
    from kinema.document.model import StyleItem

    folder = store.project_path(project)
    with store.ProjectFile(folder) as pf:
        edit, layer_id = style_edit(pf.project, folder, styled)
        pf.history.do(edit)
        pf.save()
        layer = next(layer for layer in pf.project.timeline.video_layers if layer.id == layer_id)
    item = next(i for i in layer.items if isinstance(i, StyleItem))
    return item.recipe_id, layer_id


def style_edit(project: Project, folder: Path, styled: Styled) -> tuple[Edit, str]:
    """One undoable edit of ``project`` (in ``folder``) that stores ``styled``'s recipe (as
    ``restyle-K``, its inputs by media id where the pool has the file) and puts its keys in as
    a stylise layer's inputs: a new layer on top holding a
    :class:`~kinema.document.model.StyleItem`, or the layer already holding this folder's keys
    updated; and the id of that layer."""
    from kinema.document.edits import Edit, add_layer
    from kinema.document.model import StyleItem, VideoLayer
    from kinema.document.recipes import StyleKey

    track_id, target = styled.track_id, styled.output
    if track_id is None or track_id not in project.mask_tracks:
        raise InvalidArgumentError(f"the project has no mask track {track_id!r} to style")
    recipe = _project_recipe(project, styled)
    layers = project.timeline.video_layers
    start, duration, source_start = style_placement(project, project.mask_tracks[track_id].media_id)
    existing = next(((layer, item) for layer in layers for item in layer.items
                     if isinstance(item, StyleItem) and item.keys_path is not None
                     and Path(item.keys_path) == target), None)
    item_ids = {item.id for layer in layers for item in layer.items}
    painted = [] if existing is None else [k for k in existing[1].keys
                                           if k.path is not None and k.frame not in styled.keys]
    keys = [StyleKey(frame=f, sha256=h) for f, h in styled.keys.items()]
    item = StyleItem(
        id=existing[1].id if existing else next(f"s{k}" for k in count(1) if f"s{k}" not in item_ids),
        track_id=track_id, keys_path=str(target),
        keys_relative_path=os.path.relpath(target, Path(folder).resolve()),
        keys=sorted([*keys, *painted], key=lambda k: k.frame), recipe_id=recipe.id,
        start=start, duration=duration, source_start=source_start,
        quality=existing[1].quality if existing else "fast")
    name = project.mask_tracks[track_id].name
    if existing is not None:
        layer_id = existing[0].id

        def place(doc: Project) -> None:
            for layer in doc.timeline.video_layers:
                layer.items = [item if i.id == item.id else i for i in layer.items]
    else:
        layer_id = next(f"l{k}" for k in count(1) if f"l{k}" not in {layer.id for layer in layers})
        place = add_layer(VideoLayer(id=layer_id, name=f"{name} style", items=[item])).apply

    def apply(doc: Project) -> None:
        doc.recipes[recipe.id] = recipe
        place(doc)

    return Edit(f"Restyle {name}", apply), layer_id


def _project_recipe(project: Project, styled: Styled) -> Any:
    """``styled``'s recipe as ``project`` stores it (as
    :func:`kinema.app.operation_records.store_recipe` does): the first free ``restyle-K``, the
    inputs by media id where the pool has the file."""
    from kinema.document.recipes import InputRef

    pool = {Path(m.path).resolve(): m.id for m in project.media.values()}
    inputs = [InputRef(id=pool.get(s.path.resolve(), s.path.name), sha256=s.sha256)
              for s in styled.sources]
    operation = styled.recipe.operation
    recipe_id = next(f"{operation}-{k}" for k in count(1) if f"{operation}-{k}" not in project.recipes)
    return styled.recipe.model_copy(update={"id": recipe_id, "inputs": inputs})


def style_placement(project: Any, media_id: str) -> tuple[int, int, int]:
    """Where a style of ``media_id``'s object sits on the timeline: over the first clip of that
    media, else over the whole timeline; as its start, duration and first footage frame."""
    from kinema.document.model import ClipItem

    rate = project.timeline.rate
    for layer in project.timeline.video_layers:
        for item in layer.items:
            if isinstance(item, ClipItem) and item.media_id == media_id:
                first = round(item.source_range.start_time.seconds * project.media[media_id].rate)
                return item.start, int(item.source_range.duration.seconds * rate), first
    return 0, project.timeline.duration, 0
