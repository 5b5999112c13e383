"""The use cases a ``kinema serve`` worker can run for this machine: each checks what it can
here (the output may be written, the inputs are files, models are names the server can know),
sends the inputs, builds the spec of :mod:`kinema.app.remote_jobs` and hands it to
:func:`kinema.app.remote.run_remote`. Their results equal the local use case's, bit for bit,
on equal models and devices."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kinema.app.remote import Preview, RemoteResult, RemoteWorker, run_remote
from kinema.app.remote_jobs import (
    MODEL_NAME,
    MOVIES,
    AssetSpec,
    ControlInput,
    InputFile,
    InterpolateSpec,
    KeyInput,
    LoraInput,
    PromptInput,
    PropagateSpec,
    RestyleSpec,
    T2VSpec,
    TrackSpec,
    UpscaleSpec,
)
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import Progress, Steps

if TYPE_CHECKING:
    from kinema.app.asset_jobs import Asset
    from kinema.app.restyle_jobs import MaskSource, Styled
    from kinema.app.video_restyle_jobs import VideoRestyled


def model_name(value: str | os.PathLike[str] | None, flag: str) -> str | None:
    """``value`` as a model name for the server (a folder here means nothing there)."""
    if value is None:
        return None
    text = str(value)
    if not re.fullmatch(MODEL_NAME, text):
        raise InvalidArgumentError(f"{flag} {text}: with --remote a model is a name the server "
                                   "knows, not a folder here",
                                   hint="a registry name, or one given to kinema serve --model "
                                        "NAME=DIR on the server")
    return text


class _Sent:
    """The input files sent so far, to name them in the record with their paths here."""

    def __init__(self, worker: RemoteWorker) -> None:
        self.worker = worker
        self.paths: dict[str, Path] = {}

    def __call__(self, path: str | os.PathLike[str]) -> InputFile:
        if not Path(path).is_file():
            raise InvalidArgumentError("no such file", path=path)
        sent = self.worker.send(path)
        self.paths[sent.sha256] = Path(path)
        return sent

    def loras(self, loras: Sequence[tuple[str | os.PathLike[str], float]]) -> list[LoraInput]:
        return [LoraInput(file=self(path), weight=weight) for path, weight in loras]


def _checked_output(out: str | os.PathLike[str], inputs: Sequence[Any], overwrite: bool,
                    folder: bool = False) -> Path:
    from kinema.core.atomic import check_can_write, check_not_input, output_path

    target = output_path(out)
    check_not_input(target, [p for p in inputs if p is not None])
    check_can_write(target, overwrite, folder=folder)
    return target


def interpolate_remote(worker: RemoteWorker, src: str | os.PathLike[str],
                       dst: str | os.PathLike[str], *, factor: int = 2, backend: str = "flow",
                       cut_guard: bool = True, overwrite: bool = False) -> Steps[RemoteResult]:
    """``interpolate_video`` run by ``worker``: the video uploaded (unless the server has it),
    the result written to ``dst`` (an ``.mp4``) with the server's record beside it."""
    if not 2 <= factor <= 16:
        raise InvalidArgumentError(f"--factor must be 2 to 16 on a remote worker, got {factor}")
    if Path(dst).suffix.lower() != ".mp4":
        raise InvalidArgumentError("a remote interpolate writes an MP4", path=dst,
                                   hint="name the output .mp4 (frame folders and other codecs: "
                                        "run locally)")
    target = _checked_output(dst, [src], overwrite)
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    spec = InterpolateSpec(video=sent(src), factor=factor, backend=backend, cut_guard=cut_guard)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths))


def asset_remote(worker: RemoteWorker, prompt: str, out: str | os.PathLike[str], *,
                 subject: str | None = None, negative: str = "", seed: int = 0,
                 size: tuple[int, int] | None = None, steps: int | None = None,
                 guidance: float | None = None, scheduler: str | None = None,
                 model: str | None = None,
                 loras: Sequence[tuple[str | os.PathLike[str], float]] = (),
                 cutout: str = "auto", detector: str | None = None, segmenter: str | None = None,
                 min_score: float = 0.3, overwrite: bool = False) -> Steps[RemoteResult]:
    """``kinema asset`` on ``worker``: the PNG and its record at ``out``."""
    target = _checked_output(out, [], overwrite)
    if target.suffix.lower() != ".png":
        raise InvalidArgumentError("an asset is a PNG (straight-alpha RGBA)", path=target,
                                   hint="name the output asset.png")
    names = {flag: model_name(value, flag) for flag, value in
             (("--model", model), ("--detector", detector), ("--segmenter", segmenter))}
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    spec = AssetSpec(prompt=prompt, subject=subject, negative=negative, seed=seed, size=size,
                     steps=steps, guidance=guidance, scheduler=scheduler, model=names["--model"],
                     loras=sent.loras(loras), cutout=cutout, detector=names["--detector"],
                     segmenter=names["--segmenter"], min_score=min_score)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths))


def restyle_remote(worker: RemoteWorker, video: str | os.PathLike[str],
                   out: str | os.PathLike[str], *, mask: str | os.PathLike[str], prompt: str,
                   frames: Sequence[int] = (), engine: str | None = None,
                   controls: Sequence[Any] = (),
                   loras: Sequence[tuple[str | os.PathLike[str], float]] = (),
                   model: str | None = None, controlnets: Mapping[str, str] | None = None,
                   depth_model: str | None = None, motion_model: str | None = None,
                   reference: str | os.PathLike[str] | None = None, overwrite: bool = False,
                   on_preview: Preview | None = None,
                   **options: Any) -> Steps[RemoteResult]:
    """``kinema restyle VIDEO --mask M`` on ``worker``: the keys folder (no ``engine``) or the
    restyled shot (a folder, or a ``.mov``) at ``out`` with its record. ``options`` are the
    spec's numbers (seed, strength, steps, guidance, margin, feather, grid, canny, window,
    overlap)."""
    movie = Path(out).suffix.lower() == ".mov"
    if movie and engine is None:
        raise InvalidArgumentError("key frames go to a folder", path=out,
                                   hint="name a folder for -o, or restyle the shot with --engine")
    target = _checked_output(out, [video, mask, reference], overwrite, folder=not movie)
    names = {"--model": model_name(model, "--model"),
             "--depth-model": model_name(depth_model, "--depth-model"),
             "--motion-model": model_name(motion_model, "--motion-model")}
    nets = {kind: model_name(name, f"--controlnet {kind}=")
            for kind, name in (controlnets or {}).items()}
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    spec = RestyleSpec(
        video=sent(video), masks=sent(mask), movie=movie, prompt=prompt, engine=engine,
        frames=sorted(set(frames)),
        controls=[ControlInput(kind=c.kind, weight=c.weight, start=c.start, end=c.end)
                  for c in controls],
        loras=sent.loras(loras), model=names["--model"], controlnets=nets,
        depth_model=names["--depth-model"], motion_model=names["--motion-model"],
        reference=sent(reference) if reference is not None else None,
        **{k: v for k, v in options.items() if v is not None})
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths,
                                  on_preview=on_preview))


def t2v_remote(worker: RemoteWorker, settings: Any, out: str | os.PathLike[str], *,
               model: str | None = None, overwrite: bool = False) -> Steps[RemoteResult]:
    """``kinema t2v`` on ``worker`` (``settings``: a :class:`~kinema.app.t2v_jobs.ClipSettings`):
    the clip (``.mp4`` or ``.mov``) and its record at ``out``."""
    suffix = Path(out).suffix.lower()
    if suffix not in MOVIES:
        raise InvalidArgumentError("a remote t2v writes a movie", path=out,
                                   hint="name the output .mp4 or .mov (frame folders: run locally)")
    target = _checked_output(out, [], overwrite)
    spec = T2VSpec(prompt=settings.prompt, negative=settings.negative, frames=settings.frames,
                   size=settings.size, steps=settings.steps, guidance=settings.guidance,
                   seed=settings.seed, model=model_name(model, "--model"), suffix=suffix)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite))


def upscale_remote(worker: RemoteWorker, source: str | os.PathLike[str],
                   out: str | os.PathLike[str], *, scale: int = 4, model: str = "x4plus",
                   overwrite: bool = False) -> Steps[RemoteResult]:
    """``kinema upscale`` on ``worker``: the larger image or video and its record at ``out``."""
    suffixes = UpscaleSpec.model_fields["suffix"].annotation.__args__  # the allowed outputs
    suffix = Path(out).suffix.lower()
    if suffix not in suffixes:
        raise InvalidArgumentError(f"a remote upscale writes {', '.join(suffixes)}", path=out)
    target = _checked_output(out, [source], overwrite)
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    spec = UpscaleSpec(source=sent(source), scale=scale, model=model, suffix=suffix)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths))


def propagate_remote(worker: RemoteWorker, video: str | os.PathLike[str],
                     out: str | os.PathLike[str], *, keys: Mapping[int, str | os.PathLike[str]],
                     mask: str | os.PathLike[str] | None = None, start: int = 0,
                     end: int | None = None, quality: str = "fast",
                     overwrite: bool = False) -> Steps[RemoteResult]:
    """``kinema propagate`` on ``worker``: the styled frames (a folder, or a ``.mov``) and
    their record at ``out``."""
    movie = Path(out).suffix.lower() == ".mov"
    if Path(out).suffix and not movie:
        raise InvalidArgumentError("a remote propagate writes a folder of PNGs or a .mov", path=out)
    target = _checked_output(out, [video, mask, *keys.values()], overwrite, folder=not movie)
    if not keys:
        raise InvalidArgumentError("no key frames given",
                                   hint="give --key FRAME=IMAGE or --keys DIR (a restyle output)")
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    spec = PropagateSpec(video=sent(video),
                         keys=[KeyInput(frame=f, image=sent(p)) for f, p in sorted(keys.items())],
                         masks=sent(mask) if mask is not None else None, start=start, end=end,
                         quality=quality, movie=movie)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths))


def track_remote(worker: RemoteWorker, video: str | os.PathLike[str],
                 prompts: Sequence[tuple[Any, str | os.PathLike[str] | None]],
                 out: str | os.PathLike[str], *, backend: str = "classic",
                 model: str | None = None, detector: str | None = None,
                 min_score: float = 0.35, max_objects: int = 1, start: int | None = None,
                 end: int | None = None, reverse: bool = False, cleanup: Any = None,
                 overwrite: bool = False) -> Steps[RemoteResult]:
    """``kinema track`` on ``worker``: the label maps (``.npz``) and their record at ``out``.
    ``prompts`` pairs each :class:`~kinema.vision.base.Prompt` with the mask picture it was
    read from (or ``None``), which is sent in its place."""
    if Path(out).suffix.lower() != ".npz":
        raise InvalidArgumentError("a remote track writes label maps (.npz)", path=out,
                                   hint="name the output masks.npz")
    target = _checked_output(out, [video], overwrite)
    names = (model_name(model, "--model"), model_name(detector, "--detector"))
    yield Progress(0, 1, "upload")
    sent = _Sent(worker)
    given = [PromptInput(frame=p.frame, object_id=p.object_id, points=list(p.points),
                         labels=list(p.labels), box=p.box, text=p.text,
                         mask=sent(picture) if picture is not None else None)
             for p, picture in prompts]
    spec = TrackSpec(video=sent(video), prompts=given, backend=backend, model=names[0],
                     detector=names[1], min_score=min_score, max_objects=max_objects,
                     start=start, end=end, reverse=reverse,
                     fill_holes=cleanup.fill_holes if cleanup else 0,
                     min_island=cleanup.min_island if cleanup else 0,
                     smooth=cleanup.smooth if cleanup else 0)
    return (yield from run_remote(worker, spec, target, overwrite=overwrite, sources=sent.paths))


# ---- remote results as the local use cases describe theirs --------------------------------------

def recipe_of(result: RemoteResult) -> Any:
    """The recipe in the record of a remote job's output (its one operation)."""
    from pydantic import TypeAdapter

    from kinema.document.model import Recipe

    if result.record is None:
        raise KinemaError(f"the worker sent {result.path.name} without its record",
                          path=result.path)
    data = json.loads(result.record.read_text())
    return TypeAdapter(Recipe).validate_python(data["operations"][0])


def asset_of(result: RemoteResult) -> tuple[Asset, np.ndarray]:
    """A remote asset as :func:`kinema.app.asset_jobs.make_asset` describes its own, with its
    straight RGBA picture: the recipe from its record, the object's centre from its matte."""
    from kinema.app.asset_jobs import Asset
    from kinema.media.image import read_image

    recipe = recipe_of(result)
    rgba = read_image(result.path)
    height, width = rgba.shape[:2]
    if recipe.uncut or rgba.shape[2] < 4:  # kept whole: no matte to centre on
        centre = (width / 2, height / 2)
    else:  # the middle of the matte's box, as the cut-out measured it
        ys, xs = np.nonzero(rgba[..., 3] > 127)
        centre = ((int(xs.min()) + int(xs.max()) + 1) / 2, (int(ys.min()) + int(ys.max()) + 1) / 2)
    return Asset(result.path, result.record, (width, height), centre, not recipe.uncut,
                 recipe), rgba


def label_map(masks: MaskSource, keys: Sequence[int], path: Path) -> Path:
    """The masks of the key frames as a label map up to the last key (empty between them: a
    restyle reads only its keys)."""
    from kinema.app.mask_outputs import NpzLabels

    width, height = masks.size
    frames = max(keys) + 1
    writer = NpzLabels(path, frames, masks.size, overwrite=False)
    empty, wanted = np.zeros((height, width), np.uint8), set(keys)
    try:
        for frame in range(frames):
            mask = masks.read(frame) if frame in wanted else None
            writer.write(empty if mask is None else mask.astype(np.uint8))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def restyle_masks_remote(worker: RemoteWorker, masks: MaskSource, footage: str | os.PathLike[str],
                         out: str | os.PathLike[str], *, track_id: str, frames: Sequence[int],
                         on_key: Callable[[int, np.ndarray], None] | None = None,
                         **options: Any) -> Steps[Styled]:
    """:func:`kinema.app.restyle_jobs.restyle_masks` on ``worker``: the open ``masks`` (a
    project's track ``track_id``) sent as a label map of the key ``frames``, the keys written
    to ``out``, returned as the local use case returns them (so :func:`style_edit` takes
    them). Each preview the worker sends goes to ``on_key``, then each key as written.
    ``options`` are :func:`restyle_remote`'s."""
    import tempfile

    from kinema.app.operation_records import Source
    from kinema.app.restyle_jobs import KEY_NAME, Styled
    from kinema.core.hashing import file_sha256
    from kinema.media.image import read_image

    keys = sorted(set(frames))
    if not keys:
        raise InvalidArgumentError("no key frames given", hint="give --frames, e.g. 0,24,47")
    show = on_key or (lambda frame, image: None)
    with tempfile.TemporaryDirectory(prefix="kinema-remote-") as temp:
        labels = label_map(masks, keys, Path(temp) / f"{track_id}.npz")
        result = yield from restyle_remote(
            worker, footage, out, mask=labels, frames=keys,
            on_preview=lambda image, frame: show(frame, image) if frame is not None else None,
            **options)
    written = {}
    for frame in keys:
        path = result.path / KEY_NAME.format(frame=frame)
        written[frame] = file_sha256(path)
        show(frame, read_image(path))
    recipe = recipe_of(result).model_copy(update={"track_id": track_id})
    return Styled(result.path, tuple(keys), (), result.record, recipe, written,
                  (Source.of(footage),), track_id)


def restyle_video_masks_remote(worker: RemoteWorker, masks: MaskSource,
                               footage: str | os.PathLike[str], out: str | os.PathLike[str], *,
                               track_id: str, frames: int, engine: str,
                               on_window: Callable[[int, list[np.ndarray]], None] | None = None,
                               **options: Any) -> Steps[VideoRestyled]:
    """:func:`kinema.app.video_restyle_jobs.restyle_video_masks` on ``worker``: the open
    ``masks`` (a project's track ``track_id``) on every one of the shot's ``frames`` sent as a
    label map, the movie (``out``, a ``.mov``) and its record written here, returned as the
    local use case returns them (so ``video_layer_edit`` takes them). ``on_window(frame,
    [image])`` sees each window's preview (its middle frame). ``options`` are
    :func:`restyle_remote`'s."""
    import tempfile

    from kinema.app.operation_records import Source
    from kinema.app.video_restyle_jobs import VideoRestyled
    from kinema.generate.video_windows import plan_windows

    def show(image: np.ndarray, frame: int | None) -> None:
        if on_window is not None and frame is not None:
            on_window(frame, [image])

    with tempfile.TemporaryDirectory(prefix="kinema-remote-") as temp:
        labels = label_map(masks, range(frames), Path(temp) / f"{track_id}.npz")
        result = yield from restyle_remote(worker, footage, out, mask=labels, engine=engine,
                                           on_preview=show, **options)
    recipe = recipe_of(result).model_copy(update={"track_id": track_id})
    reference = options.get("reference")
    sources = tuple(Source.of(path) for path in (footage, reference) if path is not None)
    windows = len(plan_windows(frames, recipe.window, recipe.overlap)) if recipe.window else 0
    return VideoRestyled(result.path, frames, windows, result.record, recipe, sources=sources)


def restyle_project_remote(worker: RemoteWorker, project: str | os.PathLike[str],
                           out: str | os.PathLike[str], *, track: str, frames: Sequence[int],
                           **options: Any) -> Steps[Any]:
    """``kinema restyle PROJECT --track OBJ --remote``: the keys made on ``worker`` from the
    track's masks and footage, written to ``out``, then a style layer of the project as a local
    run makes it; a :class:`~kinema.app.restyle_jobs.RestyleResult`."""
    from kinema.app.operation_records import check_project
    from kinema.app.restyle_jobs import RestyleResult, project_track, store_style

    check_project(project)
    _checked_output(out, [project], bool(options.get("overwrite")), folder=True)
    masks, footage, track_id = project_track(project, track)
    try:
        styled = yield from restyle_masks_remote(worker, masks, footage, out, track_id=track_id,
                                                 frames=frames, **options)
    finally:
        masks.close()
    recipe_id, layer_id = store_style(project, styled)
    return RestyleResult(styled.output, styled.frames, styled.posed, styled.record, recipe_id,
                         layer_id)
