"""The operations a ``kinema serve`` worker runs, shared by the server and its client.

Each operation is a pydantic spec (unknown fields refused; numbers, fixed names, model names
and input files named by sha256 and a plain file name: no field can name a path) and a
``run(spec, context)`` that calls the same use case as the local command, writing its outputs
(and their ``.provenance.json`` records) into ``context.out``. The server sends that folder
back as one tar (:func:`pack`); the client unpacks it (:func:`unpack`) and puts the files where
the user asked. Runs that can be resumed keep their finished parts in ``context.checkpoint``,
which outlives a killed server.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import Steps

SHA256 = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, Field(pattern=SHA256)]
#: a file's own name: no separator, no leading dot (so neither ``..`` nor a hidden file)
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._ ()+-]{0,119}$")]
MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
#: a model the server knows by name (its registry, or ``kinema serve --model NAME=DIR``)
ModelName = Annotated[str, Field(pattern=f"^{MODEL_NAME}$")]
Prompt = Annotated[str, Field(min_length=1, max_length=4000)]


class InputFile(BaseModel):
    """A file the job reads: its content's sha256 (uploaded first) and the name it had."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: Sha256
    name: FileName


class Spec(BaseModel):
    """A job spec; subclasses add ``operation`` and their parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def files(self) -> list[InputFile]:
        """Every input file the spec names (each must be on the server before it is queued)."""
        found: list[InputFile] = []

        def walk(value: Any) -> None:
            if isinstance(value, InputFile):
                found.append(value)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self)
        return found

    def model_names(self) -> list[str]:
        """The model names the spec asks for (each must be known to the server)."""
        return []

    def output(self) -> str:
        """The name of what the job makes in ``Context.out`` (the client renames it; it is
        not in the spec, so equal work under other names is one cached result)."""
        raise NotImplementedError

    def recipe_hash(self) -> str:
        """The sha256 of the spec's canonical JSON: equal specs on equal inputs, equal results."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Context:
    """Where a job runs: ``inputs(file)`` is the local path of an input (under its own name),
    ``model(name)`` a model argument for the use case, ``out`` the folder sent back,
    ``checkpoint`` a folder kept until the job succeeds, ``preview(image, frame)`` shows
    progress (``frame``: the source frame it shows, where it shows one)."""

    inputs: Callable[[InputFile], Path]
    model: Callable[[str | None], str | Path | None]
    out: Path
    checkpoint: Path
    preview: Callable[[np.ndarray, int | None], None] = field(default=lambda image, frame: None)


@dataclass(frozen=True)
class Operation:
    """An allowed operation: its spec model and its run."""

    spec: type[Spec]
    run: Callable[[Any, Context], Steps[None]]


# ---- interpolate --------------------------------------------------------------------------------

class InterpolateSpec(Spec):
    """``kinema interpolate --factor``: ``restore_jobs.interpolate_video`` to ``OUT.mp4``."""

    operation: Literal["interpolate"] = "interpolate"
    video: InputFile
    factor: int = Field(2, ge=2, le=16)
    backend: Literal["flow", "rife", "blend"] = "flow"
    cut_guard: bool = True

    def output(self) -> str:
        return "interpolated.mp4"


def _interpolate(spec: InterpolateSpec, ctx: Context) -> Steps[None]:
    from kinema.app.restore_jobs import interpolate_video

    yield from interpolate_video(ctx.inputs(spec.video), ctx.out / spec.output(), factor=spec.factor,
                                 backend=spec.backend, cut_guard=spec.cut_guard)


# ---- asset --------------------------------------------------------------------------------------

class LoraInput(BaseModel):
    """A LoRA file and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: InputFile
    weight: float = Field(1.0, ge=-4, le=4)


class AssetSpec(Spec):
    """``kinema asset``: an SDXL picture with its object cut out, to ``OUT.png``."""

    operation: Literal["asset"] = "asset"
    prompt: Prompt
    subject: str | None = Field(None, max_length=400)
    negative: str = Field("", max_length=4000)
    seed: int = Field(0, ge=0, lt=2**63)
    size: tuple[Annotated[int, Field(ge=8, le=4096)], Annotated[int, Field(ge=8, le=4096)]] | None = None
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=50)
    scheduler: Literal["euler", "euler_a", "dpm++", "dpm++_karras", "ddim", "lcm"] | None = None
    model: ModelName | None = None
    loras: list[LoraInput] = Field(default_factory=list, max_length=8)
    cutout: Literal["auto", "detector", "salient"] = "auto"
    detector: ModelName | None = None
    segmenter: ModelName | None = None
    min_score: float = Field(0.3, ge=0, le=1)

    def model_names(self) -> list[str]:
        return [m for m in (self.model, self.detector, self.segmenter) if m]

    def output(self) -> str:
        return "asset.png"


def _asset(spec: AssetSpec, ctx: Context) -> Steps[None]:
    from kinema.app.asset_jobs import make_asset
    from kinema.generate.sdxl import Request
    from kinema.vision.cutout import Settings

    request = Request(spec.prompt, negative=spec.negative, seed=spec.seed, steps=spec.steps,
                      guidance=spec.guidance, scheduler=spec.scheduler, size=spec.size)
    yield from make_asset(request, ctx.out / spec.output(), subject=spec.subject,
                          model=ctx.model(spec.model),
                          loras=[(ctx.inputs(lora.file), lora.weight) for lora in spec.loras],
                          cutout=spec.cutout, detector=ctx.model(spec.detector),
                          segmenter=ctx.model(spec.segmenter),
                          settings=Settings(box_threshold=spec.min_score))


# ---- restyle ------------------------------------------------------------------------------------

class ControlInput(BaseModel):
    """One condition: its kind, weight and the part of the sampling it acts in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["canny", "pose", "depth"]
    weight: float = Field(1.0, ge=0, le=4)
    start: float = Field(0.0, ge=0, le=1)
    end: float = Field(1.0, ge=0, le=1)


class RestyleSpec(Spec):
    """``kinema restyle VIDEO --mask M``: key frames (no ``engine``; a folder of PNGs) or the
    whole shot with ``animatediff`` / ``wan-vace`` (a folder of PNGs, or with ``movie`` a
    ``.mov``)."""

    operation: Literal["restyle"] = "restyle"
    video: InputFile
    masks: InputFile
    movie: bool = False
    prompt: Prompt
    engine: Literal["animatediff", "wan-vace"] | None = None
    frames: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list, max_length=10000)
    negative: str = Field("", max_length=4000)
    controls: list[ControlInput] = Field(default_factory=list, max_length=3)
    loras: list[LoraInput] = Field(default_factory=list, max_length=8)
    seed: int = Field(0, ge=0, lt=2**63)
    strength: float = Field(0.7, gt=0, le=1)
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=50)
    margin: int = Field(8, ge=0, le=512)
    feather: float = Field(4.0, ge=0, le=256)
    grid: bool = False
    model: ModelName | None = None
    controlnets: dict[Literal["canny", "pose", "depth"], ModelName] = Field(default_factory=dict)
    depth_model: ModelName | None = None
    canny: tuple[Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)]] = (100, 200)
    window: int | None = Field(None, ge=2, le=1024)
    overlap: int | None = Field(None, ge=0, le=1024)
    motion_model: ModelName | None = None
    reference: InputFile | None = None

    def model_names(self) -> list[str]:
        names = [self.model, self.depth_model, self.motion_model, *self.controlnets.values()]
        return [m for m in names if m]

    def output(self) -> str:
        return "restyled.mov" if self.movie else "restyled"


def _restyle(spec: RestyleSpec, ctx: Context) -> Steps[None]:
    from kinema.generate.control import ControlSpec

    options: dict[str, Any] = {
        "prompt": spec.prompt, "mask": ctx.inputs(spec.masks), "negative": spec.negative,
        "controls": [ControlSpec(c.kind, c.weight, c.start, c.end) for c in spec.controls],
        "seed": spec.seed, "strength": spec.strength, "steps": spec.steps,
        "guidance": spec.guidance, "margin": spec.margin, "feather": spec.feather,
        "model": ctx.model(spec.model), "depth_model": ctx.model(spec.depth_model),
        "controlnets": {kind: ctx.model(name) for kind, name in spec.controlnets.items()},
        "canny": spec.canny}
    target = ctx.out / spec.output()
    if spec.engine is not None:
        from kinema.app.video_restyle_jobs import restyle_video

        if spec.frames or spec.loras or spec.grid:
            raise InvalidArgumentError(f"frames, LoRAs and grid are for key frames, not the "
                                       f"{spec.engine} engine")
        yield from restyle_video(ctx.inputs(spec.video), target, engine=spec.engine,
                                 window=spec.window, overlap=spec.overlap,
                                 motion_model=ctx.model(spec.motion_model),
                                 reference=ctx.inputs(spec.reference) if spec.reference else None,
                                 on_window=_window_preview(ctx), **options)
        return
    from kinema.app.restyle_jobs import restyle

    if not spec.frames:
        raise InvalidArgumentError("a remote restyle names its key frames",
                                   hint="give --frames 0,24,47")
    yield from restyle(ctx.inputs(spec.video), target, frames=spec.frames,
                       loras=[(ctx.inputs(lora.file), lora.weight) for lora in spec.loras],
                       grid=spec.grid, checkpoint=ctx.checkpoint, on_key=_key_preview(ctx),
                       **options)


def _key_preview(ctx: Context) -> Callable[[int, np.ndarray], None]:
    return lambda frame, image: ctx.preview(image, frame)


def _window_preview(ctx: Context) -> Callable[[int, list[np.ndarray]], None]:
    """Each finished window previewed by its middle frame."""
    def show(first: int, frames: list[np.ndarray]) -> None:
        middle = len(frames) // 2
        ctx.preview(frames[middle], first + middle)
    return show


# ---- text to video -------------------------------------------------------------------------------

Size = tuple[Annotated[int, Field(ge=8, le=4096)], Annotated[int, Field(ge=8, le=4096)]]
MOVIES = (".mp4", ".mov")


class T2VSpec(Spec):
    """``kinema t2v``: a clip from words, to an ``.mp4`` or ``.mov``."""

    operation: Literal["t2v"] = "t2v"
    prompt: Prompt
    negative: str = Field("", max_length=4000)
    frames: int | None = Field(None, ge=1, le=1024)
    size: Size | None = None
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=50)
    seed: int = Field(0, ge=0, lt=2**63)
    model: ModelName | None = None
    suffix: Literal[".mp4", ".mov"] = ".mp4"

    def model_names(self) -> list[str]:
        return [self.model] if self.model else []

    def output(self) -> str:
        return f"clip{self.suffix}"


def _t2v(spec: T2VSpec, ctx: Context) -> Steps[None]:
    from kinema.app.t2v_jobs import ClipSettings, make_clip

    settings = ClipSettings(spec.prompt, spec.negative, spec.frames, spec.size, spec.steps,
                            spec.guidance, spec.seed)
    yield from make_clip(settings, ctx.out / spec.output(), model=ctx.model(spec.model))


# ---- upscale ------------------------------------------------------------------------------------

class UpscaleSpec(Spec):
    """``kinema upscale``: an image or a video ``scale`` times larger."""

    operation: Literal["upscale"] = "upscale"
    source: InputFile
    scale: int = Field(4, ge=2, le=4)
    model: Literal["x4plus", "animevideov3", "lanczos"] = "x4plus"
    suffix: Literal[".png", ".exr", ".mp4", ".mov", ".mkv"] = ".mp4"

    def output(self) -> str:
        return f"upscaled{self.suffix}"


def _upscale(spec: UpscaleSpec, ctx: Context) -> Steps[tuple[int, int]]:
    from kinema.app.restore_jobs import upscale_media

    return (yield from upscale_media(ctx.inputs(spec.source), ctx.out / spec.output(),
                                     scale=spec.scale, model=spec.model))


# ---- propagate ----------------------------------------------------------------------------------

class KeyInput(BaseModel):
    """A painted or restyled key: its frame and image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int = Field(ge=0)
    image: InputFile


class PropagateSpec(Spec):
    """``kinema propagate``: the keys' style carried through frames ``[start, end)`` (inside
    the object of ``masks`` when given), to a folder of PNGs or a ``.mov``."""

    operation: Literal["propagate"] = "propagate"
    video: InputFile
    keys: list[KeyInput] = Field(min_length=1, max_length=10000)
    masks: InputFile | None = None
    start: int = Field(0, ge=0)
    end: int | None = Field(None, ge=1)
    quality: Literal["fast", "best"] = "fast"
    movie: bool = False

    def output(self) -> str:
        return "propagated.mov" if self.movie else "propagated"


def _propagate(spec: PropagateSpec, ctx: Context) -> Steps[None]:
    from kinema.app.propagate_jobs import propagate_video

    yield from propagate_video(ctx.inputs(spec.video), ctx.out / spec.output(),
                               keys={k.frame: ctx.inputs(k.image) for k in spec.keys},
                               mask=ctx.inputs(spec.masks) if spec.masks else None,
                               start=spec.start, end=spec.end, quality=spec.quality)


# ---- track --------------------------------------------------------------------------------------

Coordinate = Annotated[float, Field(ge=-1e6, le=1e6)]


class PromptInput(BaseModel):
    """One object's prompt on one frame: clicks, a box, words or a mask picture."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int = Field(ge=0)
    object_id: int = Field(1, ge=1, le=255)
    points: list[tuple[Coordinate, Coordinate]] = Field(default_factory=list, max_length=256)
    labels: list[Literal[0, 1]] = Field(default_factory=list, max_length=256)
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None
    text: str | None = Field(None, max_length=400)
    mask: InputFile | None = None


class TrackSpec(Spec):
    """``kinema track``: the prompted objects through the video, to an ``.npz`` label map."""

    operation: Literal["track"] = "track"
    video: InputFile
    prompts: list[PromptInput] = Field(min_length=1, max_length=1000)
    backend: Annotated[str, Field(pattern=f"^{MODEL_NAME}$")] = "classic"
    model: ModelName | None = None
    detector: ModelName | None = None
    min_score: float = Field(0.35, ge=0, le=1)
    max_objects: int = Field(1, ge=1, le=255)
    start: int | None = Field(None, ge=0)
    end: int | None = Field(None, ge=0)
    reverse: bool = False
    fill_holes: int = Field(0, ge=0)
    min_island: int = Field(0, ge=0)
    smooth: int = Field(0, ge=0, le=64)

    def model_names(self) -> list[str]:
        return [m for m in (self.model, self.detector) if m]

    def output(self) -> str:
        return "masks.npz"


def _track(spec: TrackSpec, ctx: Context) -> Steps[None]:
    from kinema.app.segment_jobs import Cleanup, ModelChoice, track_to
    from kinema.media.image import read_labels
    from kinema.models import backends
    from kinema.vision.base import Prompt as TrackPrompt

    backends.get("track", spec.backend)  # an unknown backend: one error naming the known ones
    prompts = [TrackPrompt(p.frame, p.object_id, tuple(p.points), tuple(p.labels), p.box,
                           read_labels(ctx.inputs(p.mask)) > 0 if p.mask else None, p.text)
               for p in spec.prompts]
    choice = ModelChoice(ctx.model(spec.model), ctx.model(spec.detector), None, None,
                         spec.min_score, spec.max_objects)
    yield from track_to(ctx.inputs(spec.video), prompts, ctx.out / spec.output(),
                        backend=spec.backend, start=spec.start, end=spec.end,
                        reverse=spec.reverse, choice=choice,
                        cleanup=Cleanup(spec.fill_holes, spec.min_island, spec.smooth))


# ---- the allow-list -----------------------------------------------------------------------------

OPERATIONS: dict[str, Operation] = {
    "interpolate": Operation(InterpolateSpec, _interpolate),
    "asset": Operation(AssetSpec, _asset),
    "restyle": Operation(RestyleSpec, _restyle),
    "t2v": Operation(T2VSpec, _t2v),
    "upscale": Operation(UpscaleSpec, _upscale),
    "propagate": Operation(PropagateSpec, _propagate),
    "track": Operation(TrackSpec, _track),
}


# ---- results travel as one tar ------------------------------------------------------------------

def pack(folder: Path, target: Path) -> None:
    """``folder``'s files as an uncompressed tar at ``target``, names sorted and times,
    owners and modes fixed, so equal outputs give equal bytes (and equal hashes)."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = path.stat().st_size, 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)


def unpack(archive: Path, folder: Path) -> list[Path]:
    """The files of a :func:`pack` tar into ``folder`` (plain files and folders only, every
    name inside ``folder``); the top-level entries."""
    inside = folder.resolve()
    with tarfile.open(archive, "r:") as tar:
        members = tar.getmembers()
        for member in members:
            if not (member.isfile() or member.isdir()) or \
                    not (inside / member.name).resolve().is_relative_to(inside):
                raise KinemaError(f"the result holds {member.name!r}, not a plain file in it",
                                  path=archive)
        # Python's own guard too, where it has one (3.10.12+, 3.11.4+)
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return sorted({folder / Path(m.name).parts[0] for m in members})


def read_preview(data: bytes) -> np.ndarray:
    """A preview PNG as an RGB array."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise KinemaError("the server sent a preview that is not a PNG")
    return np.ascontiguousarray(image[..., ::-1])


def encode_preview(image: np.ndarray, side: int = 512) -> bytes:
    """``image`` as a PNG no larger than ``side`` pixels, for the job's events."""
    import cv2

    from kinema.media.image import encode_png

    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return encode_png(np.ascontiguousarray(image))


def name_of(path: str | os.PathLike[str]) -> str:
    """A file's name as an :data:`FileName` (characters it cannot hold become ``_``)."""
    import re

    name = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", Path(path).name)[:120] or "input"
    return "_" + name[1:] if not (name[0].isalnum() or name[0] == "_") else name
