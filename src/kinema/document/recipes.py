"""Recipes: how to make again what an operation made, one typed model per operation.

Every recipe has the fields of :class:`RecipeBase` (id, the model that ran, where it ran, the
seed, the inputs with their hashes, when) and the parameters of its operation; ``operation``
tells the types apart. As in OpenTimelineIO, each type has a ``version`` of its own, and
:data:`UPGRADES` bring an older recipe forward wherever one is read (a project, an OTIO
file's metadata). Version 0 is the untyped recipe of project schema 3 and before: an
``operation`` string with a ``parameters`` dict.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from kinema.document.base import DocumentModel
from kinema.document.timing import Rational, TimeRange

Data = dict[str, Any]


class ModelRef(DocumentModel):
    """Exact weights: a hub repository (or a folder), its pinned revision, the sha256 of its
    weight files."""

    model_id: str
    revision: str | None = None
    weights_sha256: str | None = None


class LoraRef(ModelRef):
    """A LoRA file and the weight it was applied with."""

    weight: float = 1.0


class ControlRef(ModelRef):
    """A ControlNet and how it conditioned: on what (``kind``), how strongly, over which part
    of the denoising (``start`` and ``end`` as fractions of the steps); canny's thresholds."""

    kind: Literal["canny", "pose", "depth"]
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    thresholds: tuple[int, int] | None = None


class InputRef(DocumentModel):
    """A file an operation read: a media id or a file name, and the sha256 of its content."""

    id: str
    sha256: str | None = None


class MaskDigest(DocumentModel):
    """A mask by its size (width, height) and the sha256 of its bit-packed pixels."""

    size: tuple[int, int]
    sha256: str


class PromptRecord(DocumentModel):
    """A segmentation prompt (see :class:`kinema.vision.base.Prompt`) as recorded: object
    ``object`` on ``frame``, clicks with their labels, a box, words, a mask by its digest."""

    frame: int
    object: int = 1
    points: list[tuple[float, float]] = Field(default_factory=list)
    labels: list[int] = Field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    text: str | None = None
    mask: MaskDigest | None = None


class StyleKey(DocumentModel):
    """A styled key: the source frame it styles and the sha256 of its image; ``path`` (and
    ``relative_path``, to a project folder) where the image is a file of its own, such as an
    artist's painting, rather than ``FRAME.png`` in a keys folder."""

    frame: int
    sha256: str
    path: str | None = None
    relative_path: str | None = None


class RecipeBase(DocumentModel):
    """What every recipe records: the model that ran (none for classical operations), the
    device and precision it ran with, the seed, and the inputs with their hashes."""

    id: str
    version: Literal[1] = 1
    model: ModelRef | None = None
    device: str | None = None
    dtype: str | None = None
    seed: int | None = None
    inputs: list[InputRef] = Field(default_factory=list)
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def models(self) -> list[ModelRef]:
        """Every model the operation ran: its own, and any detector, ControlNet, LoRA or
        cut-out model among its parameters."""
        found: list[ModelRef] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            found += [v for v in (value if isinstance(value, list) else [value])
                      if isinstance(v, ModelRef)]
        return found


class _Prompted(RecipeBase):
    """Masks from prompts: the backend, the prompts, and the text detector where words were
    given (with its score threshold and how many matches per text become objects)."""

    backend: str
    prompts: list[PromptRecord]
    detector: ModelRef | None = None
    min_score: float | None = None
    max_objects: int | None = None


class SegmentRecipe(_Prompted):
    """Masks of one frame."""

    operation: Literal["segment"] = "segment"


class TrackRecipe(_Prompted):
    """Masks through frames ``[start, end)`` (tracked from the end down with ``reverse``),
    with their clean-ups: holes filled, islands dropped, a majority over ``smooth`` frames."""

    operation: Literal["track"] = "track"
    start: int
    end: int
    reverse: bool
    fill_holes: int
    min_island: int
    smooth: int


class _Diffusion(RecipeBase):
    """A diffusion model's sampling: prompts, steps, guidance, scheduler, LoRAs."""

    prompt: str
    negative: str = ""
    steps: int
    guidance: float
    scheduler: str
    loras: list[LoraRef] = Field(default_factory=list)


class AssetRecipe(_Diffusion):
    """A generated image of ``size`` cut out around ``subject`` (the words looked for: the
    prompt's subject when none were given): ``detector`` (Grounding DINO) boxed it and the
    ``cutout`` model made its matte (SAM 2 in that box, or a salient-object model alone), with
    ``cutout_settings`` (thresholds, edge radius, margin). ``uncut``: the cut-out found nothing
    and the whole image was kept, opaque; no ``cutout`` model: none ran."""

    operation: Literal["asset"] = "asset"
    size: tuple[int, int]
    subject: str | None = None
    cutout: ModelRef | None = None
    detector: ModelRef | None = None
    cutout_settings: dict[str, float] = Field(default_factory=dict)
    uncut: bool = False


class RestyleRecipe(_Diffusion):
    """An object restyled inside mask track ``track_id`` (or a mask file among the inputs),
    grown by ``margin`` pixels and feathered: key ``frames`` (the ``keys`` engine; ``grid`` x
    ``grid`` keys per picture) or every frame in windows of ``window`` with ``overlap`` (the
    video engines). ``annotators`` made the control images (pose, depth)."""

    operation: Literal["restyle"] = "restyle"
    engine: Literal["keys", "animatediff", "wan-vace"] = "keys"
    track_id: str | None = None
    frames: list[int] = Field(default_factory=list)
    strength: float
    margin: int = 0
    feather: float = 0.0
    controls: list[ControlRef] = Field(default_factory=list)
    annotators: list[ModelRef] = Field(default_factory=list)
    grid: int = 1
    window: int | None = None
    overlap: int | None = None
    motion_model: ModelRef | None = None
    """The AnimateDiff motion adapter (the ``animatediff`` engine)."""
    size: tuple[int, int] | None = None
    """The video engines' working size (W, H) of each window's crop around the object."""
    reference_sha256: str | None = None
    """The reference picture a ``wan-vace`` restyle held the look to, by hash."""


class PropagateRecipe(RecipeBase):
    """Styled ``keys`` carried through frames ``[start, end)``, inside mask track ``track_id``
    when given, with the weights of the guides (colour, edges, position, temporal)."""

    operation: Literal["propagate"] = "propagate"
    keys: list[StyleKey]
    track_id: str | None = None
    start: int
    end: int
    quality: Literal["fast", "best"] = "fast"
    guides: dict[str, float] = Field(default_factory=dict)


class KeysRecipe(RecipeBase):
    """Key frames picked from frames ``[start, end)``: ``count`` of them where the footage
    changes most (``measure``), the source frames as they are or in a classical ``look``
    (inside mask track ``track_id``, or a mask file among the inputs, when given)."""

    operation: Literal["keys"] = "keys"
    frames: list[int]
    count: int
    start: int
    end: int
    measure: str = "grey-mad"
    look: str | None = None
    track_id: str | None = None


class InterpolateRecipe(RecipeBase):
    """New frames between frames by ``backend`` (flow or rife): ``factor`` times as many, or
    as many as ``rate`` frames a second needs."""

    operation: Literal["interpolate"] = "interpolate"
    backend: str
    factor: int | None = None
    rate: Rational | None = None
    cut_guard: bool = False
    """Whether in-betweens across a hard cut repeated a source frame instead (kinema writes it
    always; recipes from before the guard had none, hence the default)."""
    source_range: TimeRange | None = None
    """The part of the source that was read (a retimed clip's), when not the whole file."""
    played_at: Rational | None = None
    """The rate the frames were written at, when it is not the source's times ``factor``."""


class UpscaleRecipe(RecipeBase):
    """Frames made ``scale`` times larger by ``backend`` (a model, or lanczos)."""

    operation: Literal["upscale"] = "upscale"
    backend: str
    scale: int


class PoseRecipe(RecipeBase):
    """Body keypoints of every person through frames ``[start, end)`` by ``backend``: ``model``
    the landmark model, ``detector`` the person detector, a detection every ``detect_every``
    frames, landmarks smoothed (One Euro) with ``smooth``."""

    operation: Literal["pose"] = "pose"
    backend: str
    detector: ModelRef | None = None
    start: int
    end: int
    detect_every: int
    smooth: bool


class LoraTrainRecipe(RecipeBase):
    """A LoRA trained on the pictures among the inputs: the token and prompts, prior
    preservation (class prompt, pictures, loss weight), and the optimisation settings."""

    operation: Literal["lora-train"] = "lora-train"
    token: str
    prompt: str
    class_prompt: str | None = None
    class_images: int | None = None
    prior_weight: float | None = None
    steps: int
    rank: int
    lr: float
    batch: int
    resolution: int


class T2VRecipe(_Diffusion):
    """A clip of ``frames`` frames of ``size`` at ``rate`` generated from words."""

    operation: Literal["t2v"] = "t2v"
    size: tuple[int, int]
    frames: int
    rate: Rational


class MusicRecipe(RecipeBase):
    """Music of ``duration`` seconds from words (a melody among the inputs when given),
    normalised to ``loudness`` LUFS."""

    operation: Literal["music"] = "music"
    prompt: str
    duration: Rational
    loudness: float | None = None


class ForeignRecipe(RecipeBase):
    """An untyped recipe of an operation kinema never recorded (one made through the Python
    API before recipes were typed), kept as it was."""

    operation: Literal["foreign"] = "foreign"
    original_operation: str
    prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


def _common(data: Data) -> Data:
    """The fields of :class:`RecipeBase` from an untyped (version 0) recipe."""
    out: Data = {"id": data.get("id"), "version": 1, "seed": data.get("seed"),
                 "inputs": [_input(text) for text in data.get("inputs", [])]}
    if data.get("model_id") is not None:
        out["model"] = {"model_id": data["model_id"], "revision": data.get("model_revision"),
                        "weights_sha256": data.get("weights_sha256")}
    if "created" in data:
        out["created"] = data["created"]
    return out


def _input(text: str) -> Data:
    """An untyped input, ``"m1:<sha256>"``, as an :class:`InputRef`."""
    name, colon, sha256 = text.rpartition(":")
    return {"id": name, "sha256": sha256} if colon else {"id": text}


def _track_v1(data: Data) -> Data:
    """An untyped track recipe typed: its parameters (device and dtype among them) become
    fields; its ``prompt`` (the prompts' words joined) goes, the prompts keep the words."""
    return {**_common(data), "operation": "track", **data.get("parameters", {})}


def _foreign(data: Data) -> Data:
    """An untyped recipe of any other operation as a :class:`ForeignRecipe`."""
    return {**_common(data), "operation": "foreign", "original_operation": data["operation"],
            "prompt": data.get("prompt"), "parameters": data.get("parameters", {})}


UPGRADES: dict[tuple[str, int], Callable[[Data], Data]] = {("track", 0): _track_v1}
"""``UPGRADES[(operation, n)]`` turns a version-``n`` recipe of ``operation`` into version
``n + 1``; a type whose layout changes raises its ``version`` and adds its step here."""


def upgrade(data: object) -> object:
    """A recipe read as JSON brought to its type's current version (a recipe model as it
    is); an untyped one of an operation without upgrades becomes a :class:`ForeignRecipe`."""
    if not isinstance(data, dict) or "operation" not in data:
        return data
    if data.get("version", 0) == 0 and (data["operation"], 0) not in UPGRADES:
        data = _foreign(data)
    while (key := (data["operation"], data.get("version", 0))) in UPGRADES:
        data = UPGRADES[key](data)
    return data


Recipe = Annotated[
    TrackRecipe | SegmentRecipe | AssetRecipe | RestyleRecipe | PropagateRecipe | KeysRecipe
    | InterpolateRecipe | UpscaleRecipe | PoseRecipe | LoraTrainRecipe | T2VRecipe | MusicRecipe
    | ForeignRecipe,
    Field(discriminator="operation"), BeforeValidator(upgrade)]
"""Any recipe, told apart by ``operation``; older ones are upgraded as they are read."""
