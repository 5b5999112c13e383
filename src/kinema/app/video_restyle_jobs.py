"""Restyle an object through a whole shot with a video diffusion model: ``kinema restyle
--engine animatediff|wan-vace``.

The shot streams through window by window (:func:`kinema.generate.video_windows.plan_windows`):
frames are decoded once, in order, and held only while a window that needs them is to come;
the model's output for the frames two windows share is crossfaded by the stitcher; each
finished frame is composited and written at once. So memory holds one window whatever the
shot's length.

The model works on one crop of the shot: the box around the object on every frame (its masks
read first, a pass over masks only), with some context, at the model's working area and the
crop's aspect. Each frame's restyle is scaled back into the crop and composited through the
object's matte (the mask grown by ``margin`` and feathered): every pixel where the matte is 0
is the decoded source, bit for bit. Control images (edges, pose, depth) are made per frame,
of the crop at the working size. A frame where the pose model finds no one gets a black pose
image (no skeleton: no condition).

The output is a folder of PNGs named by frame or a movie (ProRes 4444 with the matte as alpha
in a ``.mov``); its :class:`~kinema.document.recipes.RestyleRecipe` goes beside it. From a
project, a movie output also joins the media pool with its recipe and shows on a new layer
over the clip (one undoable edit).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.app.restyle_jobs import MaskSource
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Progress, Steps, threaded
from kinema.generate.control import CANNY_THRESHOLDS, ControlSpec, check_thresholds

ENGINES = ("animatediff", "wan-vace")
"""The video engines (the ``keys`` engine restyles keys and carries them: kinema propagate)."""
WINDOWS = {"animatediff": (16, 4), "wan-vace": (33, 9)}
"""Each engine's default window and overlap: AnimateDiff's motion modules were trained on 16
frames; Wan takes 4k+1."""
CONTROL_KINDS = {"animatediff": ("canny", "pose"), "wan-vace": ("canny", "pose", "depth")}
CONTEXT = 0.125
"""Context around the object's box, of the box's larger side, on every side of the crop."""


@dataclass(frozen=True)
class VideoRestyled:
    """What :func:`restyle_video` wrote: the output, its frames and windows, the provenance
    record and recipe, and in a project the layer showing it."""

    output: Path
    frames: int
    windows: int
    record: Path
    recipe: Any
    layer_id: str | None = None
    sources: tuple[Any, ...] = ()
    """The inputs' records (:class:`~kinema.app.operation_records.Source`), for
    :func:`video_layer_edit`."""


@dataclass(frozen=True)
class _Crop:
    """Where the model works: ``box`` (x0, y0, x1, y1) of the frame at ``size`` (W, H)."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]


def restyle_video(source: str | os.PathLike[str], output: str | os.PathLike[str], *, engine: str,
                  prompt: str, track: str | None = None, mask: str | os.PathLike[str] | None = None,
                  overwrite: bool = False, **options: Any) -> Steps[VideoRestyled]:
    """Restyle the object of ``source`` (a video with ``mask``, or a project with ``track``)
    through the whole shot with ``engine``, into ``output`` (a folder or a movie): the masks
    opened, then :func:`restyle_video_masks` (``options`` are its own). From a project, a movie
    output joins the media pool and shows on a new layer (:func:`video_layer_edit`, saved)."""
    from kinema.app.restyle_jobs import _open_masks, is_project
    from kinema.core import atomic

    if engine not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}",
                                   hint=f"use one of keys, {', '.join(ENGINES)}")
    target = atomic.output_path(output)
    in_project = is_project(source)
    atomic.check_not_input(target, [source, mask, options.get("reference")])
    masks, footage, track_id = _open_masks(source, in_project, track, mask)
    try:
        made = yield from restyle_video_masks(masks, footage, target, engine=engine, prompt=prompt,
                                              track_id=track_id, inputs=[mask] if mask else [],
                                              overwrite=overwrite, **options)
    finally:
        masks.close()
    if in_project and target.suffix:
        from dataclasses import replace

        made = replace(made, layer_id=_add_layer(source, target, made.recipe, list(made.sources), track_id))
    return made


def restyle_video_masks(masks: MaskSource, footage: str | os.PathLike[str], output: str | os.PathLike[str],
                        *, engine: str, prompt: str, track_id: str | None = None,
                        inputs: Sequence[str | os.PathLike[str]] = (), negative: str = "",
                        controls: Sequence[ControlSpec] = (), seed: int = 0, strength: float = 0.6,
                        steps: int | None = None, guidance: float | None = None,
                        window: int | None = None, overlap: int | None = None, margin: int = 8,
                        feather: float = 4.0, model: str | os.PathLike[str] | None = None,
                        motion_model: str | os.PathLike[str] | None = None,
                        controlnets: Mapping[str, str | os.PathLike[str]] | None = None,
                        depth_model: str | os.PathLike[str] | None = None,
                        reference: str | os.PathLike[str] | None = None,
                        canny: tuple[int, int] = CANNY_THRESHOLDS, device: Any = None,
                        dtype: Any = None, overwrite: bool = False,
                        on_window: Callable[[int, list[np.ndarray]], None] | None = None
                        ) -> Steps[VideoRestyled]:
    """Restyle the object ``masks`` hold (of mask track ``track_id``, if a project's) through
    the whole shot of ``footage`` with ``engine``, into ``output`` (a folder or a movie) with
    its record beside it; no project is opened or changed (the masks may be a live store, the
    editor's). ``inputs``: more files the output was made from (a mask file), recorded. The
    options (engine, models, window against the shot's length, reference, output) are checked
    when this is called, before a job starts or a model loads, and the masks when the work
    starts; ``on_window(first_frame, frames)`` sees each window's finished frames (a preview).
    Progress counts frames written, with each window's steps. ``masks`` stay open."""
    from kinema.app import operation_records as records
    from kinema.app.frame_output import write_frames
    from kinema.app.restyle_jobs import _settings
    from kinema.core import atomic
    from kinema.generate.video_windows import check_window, plan_windows
    from kinema.media import open_video

    if engine not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}",
                                   hint=f"use one of keys, {', '.join(ENGINES)}")
    target = atomic.output_path(output)
    atomic.check_not_input(target, [footage, *inputs, reference])
    atomic.check_can_write(target, overwrite, folder=target.suffix == "")
    settings = _settings(prompt, negative, seed, strength, steps, guidance, None)
    check_thresholds(*canny)
    models = _VideoModels.resolve(engine, model, motion_model, controls, controlnets, depth_model)
    with open_video(footage, prefetch=False) as reader:
        frames = _check_masks(masks, reader)
    size, step = window or WINDOWS[engine][0], overlap or WINDOWS[engine][1]
    if window is not None:
        check_window(frames, window)
    plan = plan_windows(frames, size, step, multiple=models.multiple)
    picture = _reference(reference, models)
    sources = [records.Source.of(p) for p in (footage, *inputs, reference) if p is not None]

    def work() -> Steps[VideoRestyled]:
        with open_video(footage, prefetch=False) as reader:
            crop = _plan_crop(masks, frames, reader.size, margin, feather, models)
            engine_ = models.load(picture, device, dtype)
            request = models.request(settings, crop.size)
            annotators = models.annotators(device)
            shot = _Shot(reader, masks, frames, margin, feather)
            stream = _restyled(shot, plan, crop, engine_, request, controls, annotators, canny,
                               frames, on_window)
            yield from write_frames(stream, target, fps=reader.fps, size=reader.size, total=frames,
                                    alpha=shot.alpha if target.suffix else None,
                                    overwrite=overwrite)
        recipe = models.recipe(engine_, settings, request, track_id, margin, feather, controls,
                               canny, size, step, sources, reference, name=target.name)
        record = records.write_record(target, recipe, sources)
        return VideoRestyled(target, frames, len(plan), record, recipe, sources=tuple(sources))

    return work()


def _check_masks(masks: MaskSource, reader: Any) -> int:
    """The masks fit the footage; the shot's frame count (as far as both reach)."""
    if masks.size != reader.size:
        raise InvalidArgumentError(f"the masks are {masks.size[0]}x{masks.size[1]} but the footage "
                                   f"is {reader.size[0]}x{reader.size[1]}", path=masks.name,
                                   hint="give masks tracked on this video (kinema track VIDEO -o masks.npz)")
    return min(len(reader), masks.frames)


def _plan_crop(masks: MaskSource, frames: int, size: tuple[int, int], margin: int, feather: float,
               models: _VideoModels) -> _Crop:
    """The crop around the object on every frame, with context, and its working size: the
    model's area at the crop's aspect, sides a multiple of the model's."""
    import math

    from kinema.app.restyle_jobs import restyle_mattes
    from kinema.generate.restyle import matte_box

    boxes = [b for i in range(frames)
             if (b := matte_box(restyle_mattes(masks.read(i), size, margin, feather)[1])) is not None]
    if not boxes:
        raise InvalidArgumentError("the object is on no frame of the shot (its masks are empty)",
                                   path=masks.name, hint="track it first: kinema track")
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = max(8, math.ceil(CONTEXT * max(x1 - x0, y1 - y0)))
    box = (max(0, x0 - pad), max(0, y0 - pad), min(size[0], x1 + pad), min(size[1], y1 + pad))
    aspect = (box[2] - box[0]) / (box[3] - box[1])
    width, height = models.card.size
    side = models.side

    def fit(x: float) -> int:
        return max(side, int(round(x / side)) * side)

    area = width * height
    return _Crop(box, (fit(math.sqrt(area * aspect)), fit(math.sqrt(area / aspect))))


def _reference(path: str | os.PathLike[str] | None, models: _VideoModels) -> np.ndarray | None:
    """The reference picture (wan-vace), read; refused for an engine that takes none."""
    if path is None:
        return None
    if models.engine != "wan-vace":
        raise InvalidArgumentError(f"the {models.engine} engine takes no --reference",
                                   hint="use --engine wan-vace for a reference picture")
    from kinema.core.errors import MediaOpenError
    from kinema.media.image import read_image

    if not Path(path).is_file():
        raise MediaOpenError("reference picture not found", path=path, hint="give a PNG")
    try:
        return read_image(path)[..., :3]
    except Exception as exc:  # any decoder's complaint, as one line
        raise MediaOpenError(f"cannot be read as an image: {exc}", path=path, hint="give a PNG") from exc


class _Shot:
    """The shot's frames and the object's mattes, decoded once, in order, each held from the
    first window that needs it until the last one has been written."""

    def __init__(self, reader: Any, masks: MaskSource, total: int, margin: int, feather: float) -> None:
        self.decoded = reader.frames(0, total)
        self.masks, self.size, self.margin, self.feather = masks, reader.size, margin, feather
        self.frames: dict[int, np.ndarray] = {}
        self.mattes: dict[int, np.ndarray] = {}
        self.next = 0

    def window(self, frames: range) -> list[np.ndarray]:
        """The frames of a window (those not read yet decoded now)."""
        from kinema.app.restyle_jobs import restyle_mattes

        while self.next < frames.stop:
            self.frames[self.next] = np.asarray(next(self.decoded))[..., :3]
            self.mattes[self.next] = restyle_mattes(self.masks.read(self.next), self.size,
                                                    self.margin, self.feather)[1]
            self.next += 1
        return [self.frames[i] for i in frames]

    def release(self, before: int) -> None:
        """Frames before ``before`` (written, and in no window to come) are needed no more."""
        for i in [i for i in self.frames if i < before]:
            del self.frames[i], self.mattes[i]

    def alpha(self, i: int) -> np.ndarray:
        """Frame ``i``'s matte, for the writer."""
        return self.mattes[i]


def _restyled(shot: _Shot, plan: list[Any], crop: _Crop, engine: Any, request: Any,
              controls: Sequence[ControlSpec], annotators: dict[str, Any], canny: tuple[int, int],
              total: int, on_window: Callable[[int, list[np.ndarray]], None] | None
              ) -> Iterator[Any]:
    """The shot restyled window by window, in order, as ``(frame, image)``, with each window's
    steps as progress (see the module's description)."""
    from kinema.generate.propagate import compose
    from kinema.generate.video_windows import Stitcher

    stitcher = Stitcher()
    written = 0
    engine.reset()
    for k, window in enumerate(plan):
        following = plan[k + 1] if k + 1 < len(plan) else None
        frames = shot.window(window.frames)
        cuts = [_cut(f, crop) for f in frames]
        mattes = [_cut(shot.mattes[i], crop) for i in window.frames]
        conditions = {c.kind: [_control(c, f, cut, annotators, canny, crop)
                               for f, cut in zip(frames, cuts, strict=True)] for c in controls}
        keep = 0 if following is None else window.stop - following.start
        made: list[np.ndarray] = []

        def work(emit: Any, window: Any = window, args: tuple = (cuts, mattes, conditions, keep),
                 made: list[np.ndarray] = made) -> None:
            cut, matte, condition, kept = args
            made.extend(engine.window(cut, matte, condition, request, window, kept,
                                      on_step=lambda done, of: emit("step", (done, of))))

        for _kind, (step, steps) in threaded(work, "kinema-video-restyle"):  # type: ignore[misc]
            yield Progress(written, total, "frames",
                           f"window {k + 1}/{len(plan)}: step {step}/{steps}")
        composed = [compose(_paste(f, cut, crop).astype(np.float32), f, shot.mattes[i])
                    for i, f, cut in zip(window.frames, frames, made, strict=True)]
        if on_window is not None:
            on_window(window.start, composed)
        for i, image in stitcher.add(window, composed, following):
            written += 1
            yield i, image
        shot.release(following.start if following is not None else window.stop)


def _cut(image: np.ndarray, crop: _Crop) -> np.ndarray:
    """The crop of ``image`` (a frame or a matte)."""
    x0, y0, x1, y1 = crop.box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _paste(frame: np.ndarray, made: np.ndarray, crop: _Crop) -> np.ndarray:
    """``frame`` with the crop replaced by ``made`` scaled to it."""
    from kinema.generate.restyle import resize

    x0, y0, x1, y1 = crop.box
    out = frame.copy()
    out[y0:y1, x0:x1] = resize(made, (x1 - x0, y1 - y0))
    return out


def _control(spec: ControlSpec, frame: np.ndarray, cut: np.ndarray, annotators: dict[str, Any],
             canny: tuple[int, int], crop: _Crop) -> np.ndarray:
    """``spec``'s control image of ``frame``'s crop at the working size; black where the pose
    model finds no one."""
    from kinema.app.restyle_jobs import control_pictures
    from kinema.generate.restyle import resize

    made = control_pictures(frame, [spec], annotators, canny)
    if not made:
        return np.zeros((crop.size[1], crop.size[0], 3), np.uint8)
    picture = made[0].image
    if callable(picture):  # canny: of the crop at the model's scale
        return picture(resize(cut, crop.size))
    return resize(_cut(picture, crop), crop.size)


@dataclass
class _VideoModels:
    """The weights a video restyle runs, resolved before any work."""

    engine: str
    name: str | os.PathLike[str] | None
    folder: Path
    card: Any
    motion: tuple[str | os.PathLike[str] | None, Path] | None
    nets: dict[str, tuple[str | os.PathLike[str] | None, Path]]
    depth: tuple[str | os.PathLike[str] | None, Path] | None
    pose: bool

    @property
    def multiple(self) -> int:
        """Windows take ``multiple * k + 1`` frames."""
        return 4 if self.engine == "wan-vace" else 1

    @property
    def side(self) -> int:
        """The working size's sides are multiples of this."""
        return 16 if self.engine == "wan-vace" else 8

    @classmethod
    def resolve(cls, engine: str, model: str | os.PathLike[str] | None,
                motion_model: str | os.PathLike[str] | None, controls: Sequence[ControlSpec],
                controlnets: Mapping[str, str | os.PathLike[str]] | None,
                depth_model: str | os.PathLike[str] | None) -> _VideoModels:
        from kinema.generate.sdxl import Card
        from kinema.models.registry import DEFAULTS, MODELS, resolve

        kinds = [c.kind for c in controls]
        allowed = CONTROL_KINDS[engine]
        wrong = [k for k in kinds if k not in allowed]
        if wrong:
            raise InvalidArgumentError(f"the {engine} engine has no {', '.join(wrong)} control",
                                       hint=f"use {', '.join(allowed)}")
        if engine == "wan-vace" and len(kinds) > 1:
            raise InvalidArgumentError("the wan-vace engine takes one control", hint="give one of "
                                       f"{', '.join(allowed)}")
        if engine == "animatediff" and motion_model is not None and Path(motion_model) == Path(model or ""):
            raise InvalidArgumentError("--motion-model is the same as --model")
        task = "text-to-image-sd15" if engine == "animatediff" else "video-edit"
        folder = resolve(model, task=task)
        name = model if model is not None else DEFAULTS[task]
        card = Card.read(folder, MODELS[str(name)].card if str(name) in MODELS else None)
        motion = None
        if engine == "animatediff":
            motion = (motion_model, resolve(motion_model, task="motion-adapter"))
            given = dict(controlnets or {})
            nets = {k: (given.get(k), resolve(given.get(k), task=f"control-{k}-sd15")) for k in kinds}
        else:
            if controlnets:
                raise InvalidArgumentError("the wan-vace engine takes no ControlNets",
                                           hint="its control video goes into the model itself")
            nets = {}
        depth = (depth_model, resolve(depth_model, task="depth")) if "depth" in kinds else None
        if "pose" in kinds:
            from kinema.app.pose_jobs import check_pose_models

            check_pose_models()
        return cls(engine, name, folder, card, motion, nets, depth, "pose" in kinds)

    def load(self, reference: np.ndarray | None, device: Any, dtype: Any) -> Any:
        """The engine, loaded."""
        if self.engine == "animatediff":
            from kinema.generate.animatediff import AnimateDiffEngine

            assert self.motion is not None
            return AnimateDiffEngine(self.folder, self.motion[1],
                                     controlnets={k: f for k, (_n, f) in self.nets.items()},
                                     device=device, dtype=dtype)
        from kinema.generate.wan import VaceEngine

        return VaceEngine(self.folder, reference=reference, device=device, dtype=dtype)

    def annotators(self, device: Any) -> dict[str, Any]:
        """The models that make control images from frames: ``pose``, ``depth``."""
        from kinema.app.restyle_jobs import load_annotators

        return load_annotators(self.pose, None if self.depth is None else self.depth[1], device)

    def request(self, settings: Any, size: tuple[int, int]) -> Any:
        """The request every window shares: the settings with the card's defaults filled in."""
        from kinema.generate.video_windows import VideoRequest

        return VideoRequest(prompt=settings.prompt, negative=settings.negative,
                            strength=settings.strength, steps=settings.steps or self.card.steps,
                            guidance=settings.guidance if settings.guidance is not None
                            else self.card.guidance, seed=settings.seed, size=size)

    def recipe(self, engine: Any, settings: Any, request: Any, track_id: str | None, margin: int,
               feather: float, controls: Sequence[ControlSpec], canny: tuple[int, int],
               window: int, overlap: int, sources: list[Any],
               reference: str | os.PathLike[str] | None, *, name: str) -> Any:
        """The :class:`~kinema.document.recipes.RestyleRecipe` of this run."""
        from kinema.app.operation_records import placement_of
        from kinema.app.restyle_jobs import annotator_refs, model_ref
        from kinema.core.hashing import file_sha256
        from kinema.document.recipes import ControlRef, RestyleRecipe

        task = "text-to-image-sd15" if self.engine == "animatediff" else "video-edit"
        annotators = annotator_refs(self.pose, self.depth)
        return RestyleRecipe(
            id=f"restyle-{name}", engine=self.engine, model=model_ref(self.name, task),
            motion_model=model_ref(self.motion[0], "motion-adapter") if self.motion else None,
            **placement_of(engine), seed=settings.seed, inputs=[s.as_input() for s in sources],
            prompt=settings.prompt, negative=settings.negative, steps=request.steps,
            guidance=request.guidance, scheduler="ddim" if self.engine == "animatediff" else "unipc",
            track_id=track_id, strength=settings.strength, margin=margin, feather=feather,
            annotators=annotators, window=window, overlap=overlap, size=request.size,
            reference_sha256=file_sha256(reference) if reference is not None else None,
            controls=[ControlRef(**(model_ref(self.nets[c.kind][0], f"control-{c.kind}-sd15").model_dump()
                                    if c.kind in self.nets else {"model_id": self.engine}),
                                 kind=c.kind, weight=c.weight, start=c.start, end=c.end,
                                 thresholds=canny if c.kind == "canny" else None)
                      for c in controls])


def _add_layer(project: str | os.PathLike[str], movie: Path, recipe: Any, sources: list[Any],
               track_id: str | None) -> str:
    """:func:`video_layer_edit` done on ``project`` (opened, locked) and saved; the layer's id."""
    from kinema.document import store

    folder = store.project_path(project)
    with store.ProjectFile(folder) as pf:
        edit, layer_id = video_layer_edit(pf.project, folder, movie, recipe, sources, track_id)
        pf.history.do(edit)
        pf.save()
    return layer_id


def video_layer_edit(project: Any, folder: Path, movie: Path, recipe: Any, sources: list[Any],
                     track_id: str | None) -> tuple[Any, str]:
    """One undoable edit of ``project`` (in ``folder``): the movie into its media pool with its
    recipe (inputs by media id where the pool has the file), shown on a new top layer over the
    clip of the object's footage; and the new layer's id. The editor does it on its own history."""
    from itertools import count

    from kinema.app.operation_records import pool_ref
    from kinema.app.restyle_jobs import style_placement
    from kinema.document import edits
    from kinema.document.model import ClipItem, VideoLayer
    from kinema.document.recipes import InputRef
    from kinema.document.timing import TimeRange

    doc = project
    if track_id is not None and track_id not in doc.mask_tracks:
        raise InvalidArgumentError(f"the project has no mask track {track_id!r} to show restyled")
    pool = {Path(m.path).resolve(): m.id for m in doc.media.values()}
    ref = pool_ref(doc, folder, movie)
    stored = recipe.model_copy(update={
        "id": f"restyle-{ref.id}",
        "inputs": [InputRef(id=pool.get(s.path.resolve(), s.path.name), sha256=s.sha256)
                   for s in sources]})
    media_id = doc.mask_tracks[track_id].media_id if track_id else ref.id
    start, duration, first = style_placement(doc, media_id)
    layers = doc.timeline.video_layers
    layer_id = next(f"l{k}" for k in count(1) if f"l{k}" not in {layer.id for layer in layers})
    items = {i.id for layer in [*layers, *doc.timeline.audio_tracks] for i in layer.items}
    item_id = next(f"c{k}" for k in count(1) if f"c{k}" not in items)
    name = doc.mask_tracks[track_id].name if track_id else movie.stem
    duration = min(duration, ref.frames - first)
    layer = VideoLayer(id=layer_id, name=f"{name} restyled", items=[ClipItem(
        id=item_id, media_id=ref.id, start=start,
        source_range=TimeRange.from_frames(first, duration, ref.rate))])
    steps = [edits.record_media(ref, stored), edits.add_layer(layer)]

    def apply(doc: Any) -> None:
        for step in steps:
            step.apply(doc)

    return edits.Edit(f"Restyle {name} ({recipe.engine})", apply), layer_id
