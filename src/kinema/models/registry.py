"""Named models, resolved to local folders; nothing downloads unless ``pull`` is asked.

A model resolves, in order, from a folder given directly (``--model DIR``: any folder with a
``config.json`` or a diffusers ``model_index.json``, e.g. one ``kinema models tiny`` wrote),
``$KINEMA_MODELS/<name>``, or the Hugging Face cache (offline lookup). A missing model is one
error naming the pull command.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require

_DIFFUSERS_FP16 = ("model_index.json", "*/*.json", "*/*.txt", "*/*.fp16.safetensors")
_CONTROLNET_FP16 = ("config.json", "diffusion_pytorch_model.fp16.safetensors")
_ADAPTER_FP16 = _CONTROLNET_FP16  # a motion adapter is the same two files
# SD1.5 without its safety checker (608 MB that kinema never runs): the folders the AnimateDiff
# pipelines load, fp16 weights only.
_SD15_FP16 = ("model_index.json", "feature_extractor/*.json", "scheduler/*.json",
              "tokenizer/*.json", "tokenizer/*.txt",
              *(f"{part}/{pattern}" for part in ("unet", "vae", "text_encoder")
                for pattern in ("config.json", "*.fp16.safetensors")))
# A Wan 2.1 diffusers repository: its pipeline folders whole (the weights come in one dtype).
_WAN = ("model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "transformer/*", "vae/*")
# A transformers causal LM: configs, tokenizer, safetensors weights.
_LLM = ("*.json", "merges.txt", "vocab.json", "*.safetensors")
# MusicGen in transformers' layout (not audiocraft's state_dict.bin, nor pytorch_model.bin).
_MUSICGEN = ("*.json", "spiece.model", "model.safetensors")


def _card(steps: int, guidance: float, scheduler: str, side: int) -> dict:
    return {"steps": steps, "guidance": guidance, "scheduler": scheduler, "size": [side, side]}


def _video_card(steps: int, guidance: float, scheduler: str, size: tuple[int, int], *, fps: int,
                frames: int, **scheduler_options: object) -> dict:
    """A video model's card: a still model's (``size`` is width, height) with the frame rate and
    frame count it was trained for, and its scheduler's settings (``flow_shift``,
    ``beta_schedule``)."""
    return {"steps": steps, "guidance": guidance, "scheduler": scheduler, "size": list(size), "fps": fps,
            "frames": frames, **scheduler_options}


@dataclass(frozen=True)
class ModelSpec:
    """A model kinema knows: its hub repository (pinned revision), family and job."""

    name: str
    repo: str
    family: str
    task: str
    description: str
    revision: str = "main"
    size_mb: int = 0
    licence: str = ""
    # Only these files are pulled (``None``: the whole repository); ``variant`` names the
    # weight files diffusers loads from them (``fp16``: ``*.fp16.safetensors``).
    files: tuple[str, ...] | None = None
    variant: str | None = None
    # The model card's sampling defaults for image models: steps, guidance, scheduler, size;
    # video models add fps and frames (and scheduler settings such as ``flow_shift``).
    card: dict | None = None
    # What it needs to run, in words: GPU memory, time, the dtype and offloading that fit it.
    vram: str = ""


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("sam2-tiny", "facebook/sam2.1-hiera-tiny", "sam2", "segment-video",
                  "SAM 2.1 Hiera tiny: clicks, boxes, masks; tracks through video", size_mb=156,
                  licence="Apache-2.0"),
        ModelSpec("sam2-small", "facebook/sam2.1-hiera-small", "sam2", "segment-video",
                  "SAM 2.1 Hiera small", size_mb=184, licence="Apache-2.0"),
        ModelSpec("sam2-base-plus", "facebook/sam2.1-hiera-base-plus", "sam2", "segment-video",
                  "SAM 2.1 Hiera base+", size_mb=324, licence="Apache-2.0"),
        ModelSpec("sam2-large", "facebook/sam2.1-hiera-large", "sam2", "segment-video",
                  "SAM 2.1 Hiera large: best masks, slowest", size_mb=898, licence="Apache-2.0"),
        ModelSpec("clip-vit-b32", "openai/clip-vit-base-patch32", "clip", "embed",
                  "CLIP ViT-B/32: images and words in one space, for search and labels", size_mb=605,
                  licence="MIT"),
        ModelSpec("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", "grounding-dino",
                  "detect-text", "Grounding DINO tiny: boxes for words (\"person\", \"the red car\")",
                  size_mb=690, licence="Apache-2.0"),
        ModelSpec("sdxl-base", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "text-to-image",
                  "SDXL 1.0 base: text-to-image, image-to-image, inpainting at 1024x1024",
                  size_mb=6940, licence="CreativeML Open RAIL++-M", files=_DIFFUSERS_FP16,
                  variant="fp16", card=_card(30, 5.0, "euler", 1024),
                  revision="462165984030d82259a11f4367a4eed129e94a7b"),
        ModelSpec("sdxl-turbo", "stabilityai/sdxl-turbo", "sdxl", "text-to-image",
                  "SDXL-Turbo: 1-4 steps without guidance at 512x512, for previews",
                  size_mb=6940, licence="Stability AI Community License (non-commercial)",
                  files=_DIFFUSERS_FP16, variant="fp16", card=_card(4, 0.0, "euler_a", 512)),
        ModelSpec("sdxl-inpaint", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", "sdxl",
                  "text-to-image", "SDXL 1.0 inpainting: fills masked regions (restyles)",
                  size_mb=6940, licence="CreativeML Open RAIL++-M", files=_DIFFUSERS_FP16,
                  variant="fp16", card=_card(30, 8.0, "euler", 1024)),
        ModelSpec("controlnet-canny-sdxl", "diffusers/controlnet-canny-sdxl-1.0", "controlnet-sdxl",
                  "control-canny", "SDXL ControlNet on Canny edges", size_mb=2500,
                  licence="CreativeML Open RAIL++-M", files=_CONTROLNET_FP16, variant="fp16",
                  revision="eb115a19a10d14909256db740ed109532ab1483c"),
        ModelSpec("controlnet-openpose-sdxl", "xinsir/controlnet-openpose-sdxl-1.0", "controlnet-sdxl",
                  "control-pose", "SDXL ControlNet on OpenPose body skeletons", size_mb=2500,
                  licence="Apache-2.0", files=("config.json", "diffusion_pytorch_model.safetensors")),
        ModelSpec("controlnet-depth-sdxl", "diffusers/controlnet-depth-sdxl-1.0", "controlnet-sdxl",
                  "control-depth", "SDXL ControlNet on depth maps", size_mb=2500,
                  licence="CreativeML Open RAIL++-M", files=_CONTROLNET_FP16, variant="fp16"),
        ModelSpec("depth-anything-v2-small", "depth-anything/Depth-Anything-V2-Small-hf", "depth",
                  "depth", "Depth Anything V2 small: relative depth, for depth ControlNets",
                  size_mb=99, licence="Apache-2.0", revision="5426e4f0f36572d16453bbda7a8389317b1bef99"),
        # Video diffusion: AnimateDiff (SD1.5 + motion adapter + SD1.5 ControlNets) and Wan 2.1.
        ModelSpec("sd15-base", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15", "text-to-image-sd15",
                  "Stable Diffusion 1.5 (512x512): the base AnimateDiff's motion adapter animates",
                  size_mb=2140, licence="CreativeML OpenRAIL-M", files=_SD15_FP16, variant="fp16",
                  card=_card(50, 7.5, "pndm", 512),
                  revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
                  vram="about 2 GB of fp16 weights; with AnimateDiff see animatediff-v1-5-3"),
        ModelSpec("animatediff-v1-5-3", "guoyww/animatediff-motion-adapter-v1-5-3", "motion-adapter",
                  "motion-adapter", "AnimateDiff v3 motion adapter for SD1.5: restyles and animates "
                  "16-frame windows (FreeNoise and kinema's windows for longer clips)",
                  size_mb=840, licence="Apache-2.0 (AnimateDiff's code; the hub repository names none)",
                  files=_ADAPTER_FP16, variant="fp16",
                  card=_video_card(25, 7.5, "ddim", (512, 512), fps=8, frames=16, beta_schedule="linear"),
                  revision="449d8993ead63a068e1030eb26925132814db1c8",
                  vram="with sd15-base and a ControlNet in fp16 about 3.6 GB of weights; activations "
                       "grow with frames x pixels, so long clips run in windows (no card figures; "
                       "not measured here)"),
        ModelSpec("controlnet-openpose-sd15", "lllyasviel/control_v11p_sd15_openpose", "controlnet-sd15",
                  "control-pose-sd15", "SD1.5 ControlNet 1.1 on OpenPose skeletons (AnimateDiff restyles)",
                  size_mb=723, licence="CreativeML OpenRAIL-M", files=_CONTROLNET_FP16, variant="fp16",
                  revision="9ae9f970358db89e211b87c915f9535c6686d5ba",
                  vram="0.7 GB more in fp16; runs on every frame of a window"),
        ModelSpec("controlnet-canny-sd15", "lllyasviel/control_v11p_sd15_canny", "controlnet-sd15",
                  "control-canny-sd15", "SD1.5 ControlNet 1.1 on Canny edges (AnimateDiff restyles)",
                  size_mb=723, licence="CreativeML OpenRAIL-M", files=_CONTROLNET_FP16, variant="fp16",
                  revision="115a470d547982438f70198e353a921996e2e819",
                  vram="0.7 GB more in fp16; runs on every frame of a window"),
        ModelSpec("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "wan", "text-to-video",
                  "Wan 2.1 text-to-video 1.3B: 5 s of 832x480 at 16 fps (81 frames) from words",
                  size_mb=28930, licence="Apache-2.0", files=_WAN,
                  card=_video_card(50, 5.0, "unipc", (832, 480), fps=16, frames=81, flow_shift=3.0),
                  revision="0fad780a534b6463e45facd96134c9f345acfa5b",
                  vram="8.19 GB by its card (5 s of 480p in about 4 min on an RTX 4090); the UMT5 text "
                       "encoder is 22.7 GB in fp32: load in bf16 (VAE fp32) with model offload, or "
                       "encode the prompt and free it"),
        ModelSpec("wan2.1-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", "wan-vace", "video-edit",
                  "Wan 2.1 VACE 1.3B: video from control frames (pose, depth, edges), masks, "
                  "reference pictures and kept frames; 480p, restyles and continuations",
                  size_mb=19000, licence="Apache-2.0", files=_WAN,
                  card=_video_card(50, 5.0, "unipc", (832, 480), fps=16, frames=81, flow_shift=3.0),
                  revision="ec4d2cb062b548996b179d493fdd05340de702a1",
                  vram="as wan2.1-t2v-1.3b (8.19 GB at 480p by the Wan cards); in bf16 about 15 GB "
                       "of weights, 11.4 GB of them the text encoder: model offload on smaller GPUs"),
        # kinema tv: writing (shot lists) and scoring (music).
        ModelSpec("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "qwen2", "write",
                  "Qwen2.5 0.5B Instruct: writes kinema tv's shot lists (JSON) from a theme",
                  size_mb=988, licence="Apache-2.0", files=_LLM,
                  revision="7ae557604adf67be50417f59c2c2f167def9a775",
                  vram="about 1 GB in bf16 (0.5B parameters); runs on a CPU in seconds per list"),
        ModelSpec("musicgen-small", "facebook/musicgen-small", "musicgen", "music",
                  "MusicGen small (300M): mono music at 32 kHz from words, up to 30 s a piece",
                  size_mb=2364, licence="CC-BY-NC-4.0 (weights: non-commercial use only; the "
                  "transformers code is Apache-2.0)", files=_MUSICGEN,
                  card={"sample_rate": 32000, "frame_rate": 50, "guidance": 3.0, "max_seconds": 30},
                  revision="4c8334b02c6ec4e8664a91979669a501ec497792",
                  vram="about 2.4 GB of fp32 weights (1.2 GB in fp16); a 10 s piece is 500 decoder "
                       "steps"),
    ]
}
DEFAULTS = {"segment-video": "sam2-tiny", "detect-text": "grounding-dino-tiny", "embed": "clip-vit-b32",
            "text-to-image": "sdxl-base", "control-canny": "controlnet-canny-sdxl",
            "control-pose": "controlnet-openpose-sdxl", "control-depth": "controlnet-depth-sdxl",
            "depth": "depth-anything-v2-small", "text-to-image-sd15": "sd15-base",
            "motion-adapter": "animatediff-v1-5-3", "control-pose-sd15": "controlnet-openpose-sd15",
            "control-canny-sd15": "controlnet-canny-sd15", "text-to-video": "wan2.1-t2v-1.3b",
            "video-edit": "wan2.1-vace-1.3b", "write": "qwen2.5-0.5b-instruct",
            "music": "musicgen-small"}
# What marks a folder as a model: transformers and diffusers models have a ``config.json``,
# diffusers pipelines a ``model_index.json``.
MARKERS = ("config.json", "model_index.json")


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a model (see :data:`MARKERS`)."""
    return any((Path(path) / marker).is_file() for marker in MARKERS)


def check_pipeline(folder: str | os.PathLike[str], classes: tuple[str, ...], what: str) -> Path:
    """``folder``, a diffusers pipeline folder of one of ``classes`` (its ``model_index.json``
    says which); one error naming what it is and ``what`` was needed otherwise."""
    path = Path(folder)
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelNotFoundError("is not a diffusers pipeline folder (no model_index.json)",
                                 path=path, hint="give a folder from kinema models pull/tiny")
    try:
        found = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except ValueError as exc:
        raise ModelNotFoundError(f"model_index.json is not JSON: {exc}", path=path) from exc
    if found not in classes:
        raise InvalidArgumentError(f"is a {found} folder; this needs {what}", path=path,
                                   hint="give the model the engine runs (kinema models list)")
    return path


def spec(name: str) -> ModelSpec:
    """The registry entry called ``name``."""
    found = MODELS.get(name)
    if found is None:
        raise InvalidArgumentError(f"no model called {name!r}",
                                   hint=f"known models: {', '.join(MODELS)} (kinema models list)")
    return found


def models_root() -> Path | None:
    """``$KINEMA_MODELS``, where pulled models go when it is set."""
    root = os.environ.get("KINEMA_MODELS")
    return Path(root) if root else None


def local_path(name: str) -> Path | None:
    """Where model ``name`` is on this machine, or ``None``; never downloads."""
    entry = spec(name)
    root = models_root()
    if root is not None and is_model_folder(root / name):
        return root / name
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        path = Path(snapshot_download(entry.repo, revision=entry.revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if is_model_folder(path) else None


def resolve(model: str | os.PathLike[str] | None, *, task: str) -> Path:
    """A folder holding the model to use for ``task``: ``model`` as a folder, as a registry
    name, or (``None``) the task's default model."""
    if model is not None and is_model_folder(model):
        return Path(model)
    name = str(model) if model is not None else DEFAULTS[task]
    if name not in MODELS and (os.sep in name or Path(name).exists()):
        raise ModelNotFoundError("is not a model folder (no config.json or model_index.json)", path=name,
                                 hint="give a folder from kinema models pull/tiny, or a model name")
    entry = spec(name)
    if entry.task != task:
        raise InvalidArgumentError(f"{name} is a {entry.task} model, this needs {task}",
                                   hint=f"use {DEFAULTS[task]}")
    path = local_path(name)
    if path is None:
        raise ModelNotFoundError(f"model {name} is not on this machine",
                                 hint=f"run: kinema models pull {name} ({entry.size_mb} MB)")
    return path


@dataclass(frozen=True)
class ModelIdentity:
    """What names the exact weights a job used: for its recipe and the provenance record."""

    model_id: str
    revision: str | None
    weights_sha256: str


def identity(model: str | os.PathLike[str] | None, *, task: str) -> ModelIdentity:
    """The identity of the model :func:`resolve` picks: a registry model by its hub repository
    and pinned revision, a folder by its path; either way the hash of its weight files."""
    folder = resolve(model, task=task)
    name = str(model) if model is not None else DEFAULTS[task]
    entry = MODELS.get(name)
    weights = sorted(p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin"))
    return ModelIdentity(entry.repo if entry else str(folder.resolve()),
                         entry.revision if entry else None, weights_sha256(weights))


def weights_sha256(files: list[Path]) -> str:
    """One sha256 over ``files`` (a model's weight shards), remembered in the user cache by
    their paths, sizes and modification times: tens of gigabytes are read once, not on every
    run (a file rewritten in place gets a new time and is read again)."""
    from kinema.core.atomic import atomic_write_bytes
    from kinema.core.hashing import files_sha256

    stamp = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()
    cache = _hash_cache()
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    digest = files_sha256(files)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, json.dumps({**(known if isinstance(known, dict) else {}),
                                              key: digest}).encode())
    except OSError:
        pass  # an unwritable cache only costs the next run the same reading
    return digest


def _hash_cache() -> Path:
    """Where weight hashes are remembered: ``$KINEMA_CACHE_DIR`` or the user cache folder."""
    root = os.environ.get("KINEMA_CACHE_DIR")
    if root:
        return Path(root) / "model-hashes.json"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kinema")) / "model-hashes.json"


def pull(name: str) -> Path:
    """Download model ``name`` (into ``$KINEMA_MODELS/<name>`` if set, else the HF cache)."""
    entry = spec(name)
    snapshot_download = require("huggingface_hub", "ml", feature="pulling models").snapshot_download
    root = models_root()
    target = root / name if root is not None else None
    try:
        path = snapshot_download(entry.repo, revision=entry.revision, local_dir=target,
                                 allow_patterns=list(entry.files) if entry.files else None)
    except Exception as exc:  # network, auth, disk: one line for the user either way
        raise ModelNotFoundError(f"could not download {entry.repo}: {exc}",
                                 hint="check the network connection and free disk space") from exc
    return Path(path)
