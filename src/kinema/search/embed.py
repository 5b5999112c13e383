"""CLIP embeddings: pictures and words as unit vectors in one space, so a cosine is a match.

Preprocessing is kinema's own (the CLIP image processor's fast path needs torchvision) and follows
``CLIPImageProcessor``: the short side is resized to ``size`` with antialiased bicubic (torch's
port of PIL's filter, which the reference uses), the centre ``crop_size`` is cut out, then the
pixels are rescaled and normalised with the checkpoint's mean and std. torch and transformers are
imported when an embedder is made, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require
from kinema.models.device import import_torch, placement
from kinema.models.preprocessing import Normalisation, Triple, read_preprocessor_config
from kinema.models.registry import resolve

if TYPE_CHECKING:
    import torch

# What transformers' CLIPImageProcessor uses when the config leaves a field out.
DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)
DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_SIZE = 224
IMAGE_BATCH = 32
TEXT_BATCH = 256


@runtime_checkable
class Embedder(Protocol):
    """What the index jobs need from an embedding model (``ClipEmbedder`` is one; tests use fakes)."""

    dim: int
    model_id: str

    def images(self, frames: Sequence[np.ndarray]) -> np.ndarray: ...

    def texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, kw_only=True)
class ClipPreprocessing(Normalisation):
    """How a frame becomes ``pixel_values``: the fields of ``preprocessor_config.json`` we use.

    ``shortest_edge`` resizes keeping the aspect; ``resize`` ``(height, width)`` resizes to exactly
    that instead (configs that give ``size`` as height and width); ``crop`` is ``(height, width)``.
    """

    shortest_edge: int | None = DEFAULT_SIZE
    resize: tuple[int, int] | None = None
    crop: tuple[int, int] | None = (DEFAULT_SIZE, DEFAULT_SIZE)
    mean: Triple = DEFAULT_MEAN
    std: Triple = DEFAULT_STD

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike[str]) -> ClipPreprocessing:
        """Read ``model_dir/preprocessor_config.json``; transformers' defaults where it is absent."""
        config = read_preprocessor_config(model_dir)
        if not config.exists:
            return cls()
        raw, path = config.raw, config.path
        size = raw.get("size", DEFAULT_SIZE)
        shortest, resize = None, None
        if isinstance(size, int):  # old configs: "size": 224 is the shortest edge
            shortest = size
        elif isinstance(size, dict) and size.get("shortest_edge"):
            shortest = int(size["shortest_edge"])
        elif isinstance(size, dict) and size.get("height") and size.get("width"):
            resize = (int(size["height"]), int(size["width"]))
        else:
            raise ModelNotFoundError(f"unsupported image size {size!r}", path=path,
                                     hint="use shortest_edge, or height and width")
        crop = raw.get("crop_size", DEFAULT_SIZE)
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        do_crop = bool(raw.get("do_center_crop", True)) and crop is not None
        return cls(
            shortest_edge=shortest if raw.get("do_resize", True) else None,
            resize=resize if raw.get("do_resize", True) else None,
            crop=(int(crop["height"]), int(crop["width"])) if do_crop else None,
            **asdict(config.normalisation(DEFAULT_MEAN, DEFAULT_STD)),
        )

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` a frame is resized to, as ``CLIPImageProcessor`` computes it."""
        if self.resize is not None:
            return self.resize
        if self.shortest_edge is None:
            return height, width
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)


def as_rgb(frame: object) -> np.ndarray:
    """``frame`` as ``(H, W, 3)`` uint8 RGB: gray is repeated, alpha dropped; else a one-line error."""
    if not isinstance(frame, np.ndarray):
        raise InvalidArgumentError(f"a frame is a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidArgumentError(f"a frame is uint8, got {frame.dtype}")
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InvalidArgumentError(f"a frame is an (H, W, 3) RGB array, got shape {frame.shape}")
    return frame[..., :3]


def preprocess(frames: Sequence[np.ndarray], prep: ClipPreprocessing, *,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """``pixel_values`` ``(n, 3, h, w)`` float32 on ``device`` for RGB frames of any sizes."""
    torch = import_torch()
    device = torch.device(device)
    # MPS has no antialiased resize: resize there on the CPU.
    work = device if device.type == "cuda" else torch.device("cpu")
    rgb = [as_rgb(f) for f in frames]
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, frame in enumerate(rgb):
        by_shape.setdefault(frame.shape[:2], []).append(i)
    parts: list[tuple[list[int], torch.Tensor]] = []
    for (height, width), members in by_shape.items():  # frames of one size go as one batch
        out_h, out_w = prep.resized_shape(height, width)
        crop = prep.crop or (out_h, out_w)
        if (out_h, out_w) == (height, width) and out_h >= crop[0] and out_w >= crop[1]:
            # Nothing to resample: crop the uint8 pictures before anything is converted.
            top, left = (out_h - crop[0]) // 2, (out_w - crop[1]) // 2
            batch = np.stack([rgb[i][top:top + crop[0], left:left + crop[1]] for i in members])
            pixels = torch.from_numpy(batch).to(work).permute(0, 3, 1, 2)
        else:
            batch = torch.from_numpy(np.stack([rgb[i] for i in members])).to(work)
            pixels = torch.nn.functional.interpolate(
                batch.permute(0, 3, 1, 2).float(), size=(out_h, out_w), mode="bicubic",
                align_corners=False, antialias=True)
            pixels = _center_crop(pixels.clamp_(0, 255), crop)  # PIL resizes uint8: values stay in range
        parts.append((members, pixels))
    h, w = prep.crop or (parts[0][1].shape[-2:] if parts else (DEFAULT_SIZE, DEFAULT_SIZE))
    out = torch.empty((len(rgb), 3, h, w), dtype=torch.float32, device=work)
    for members, pixels in parts:
        if len(parts) == 1:
            out.copy_(pixels)
        else:
            out[torch.tensor(members, device=work)] = pixels.float()
    # (x * rescale - mean) / std as one multiply-add per channel.
    scale = torch.full((3,), prep.rescale_factor if prep.do_rescale else 1.0, dtype=torch.float64)
    shift = torch.zeros(3, dtype=torch.float64)
    if prep.do_normalize:
        std = torch.tensor(prep.std, dtype=torch.float64)
        shift = -torch.tensor(prep.mean, dtype=torch.float64) / std
        scale = scale / std
    out.mul_(scale.float().to(work).view(1, 3, 1, 1)).add_(shift.float().to(work).view(1, 3, 1, 1))
    return out.to(device)


def _center_crop(pixels: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """The centre ``crop`` of ``(n, 3, h, w)``, zero-padded where the picture is smaller (as
    transformers' ``center_crop``)."""
    ch, cw = crop
    h, w = pixels.shape[-2:]
    if h < ch or w < cw:
        torch = import_torch()
        ph, pw = max(0, ch - h), max(0, cw - w)
        pixels = torch.nn.functional.pad(pixels, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = pixels.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels[..., top:top + ch, left:left + cw]


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` ``(n, d)`` scaled to unit length (all-zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def model_fingerprint(model_dir: Path) -> str:
    """A provenance id for the weights in ``model_dir``: a readable name and a hash of its configs
    and weight files' names and sizes (cheap; different checkpoints differ)."""
    name = model_dir.name
    if model_dir.parent.name == "snapshots":  # the Hugging Face cache: name the repository
        name = model_dir.parent.parent.name.removeprefix("models--").replace("--", "/")
    h = hashlib.sha256()
    for file in ("config.json", "preprocessor_config.json"):
        if (model_dir / file).is_file():
            h.update((model_dir / file).read_bytes())
    for weights in sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{name}@{h.hexdigest()[:12]}"


class ClipEmbedder:
    """CLIP image and text embeddings, L2-normalised float32: ``images(frames)``, ``texts(words)``.

    ``model_dir`` is a model folder or registry name (default: the ``embed`` default);
    ``device`` and ``dtype`` as :func:`kinema.models.device.choose_device` / ``choose_dtype``.
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, device: str | None = None,
                 dtype: str | None = None, *, batch_size: int = IMAGE_BATCH) -> None:
        torch = import_torch()
        require("transformers", "ml", feature="CLIP")
        from transformers import AutoTokenizer, CLIPModel
        if batch_size < 1:
            raise InvalidArgumentError(f"batch size must be >= 1, got {batch_size}")
        self.model_dir = resolve(model_dir, task="embed")
        self.device, self.dtype = placement(device, dtype)
        self.batch_size = batch_size
        self.preprocessing = ClipPreprocessing.from_model_dir(self.model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            model = CLIPModel.from_pretrained(self.model_dir, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"cannot load CLIP: {first}", path=self.model_dir,
                                     hint="pull it again: kinema models pull clip-vit-b32") from exc
        self.model = model.to(self.device).eval()
        self.dim: int = int(self.model.config.projection_dim)
        self.model_id: str = model_fingerprint(self.model_dir)
        self.logit_scale: float = float(self.model.logit_scale.detach().float().exp().cpu())
        text_len = int(self.model.config.text_config.max_position_embeddings)
        self.max_text_len = min(text_len, int(getattr(self.tokenizer, "model_max_length", text_len)))
        self._torch = torch

    def images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, dim)`` unit vectors for RGB ``uint8`` frames (any sizes), ``batch_size`` at a time."""
        torch = self._torch
        out = np.empty((len(frames), self.dim), np.float32)
        for lo in range(0, len(frames), self.batch_size):
            batch = frames[lo:lo + self.batch_size]
            pixels = preprocess(batch, self.preprocessing, device=self.device).to(self.dtype)
            with torch.inference_mode():
                pooled = self.model.vision_model(pixel_values=pixels).pooler_output
                features = self.model.visual_projection(pooled)
            out[lo:lo + len(batch)] = features.float().cpu().numpy()
        return normalize_rows(out)

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` unit vectors for ``texts`` (each cut to the model's context length)."""
        if isinstance(texts, str):
            raise InvalidArgumentError("texts is a list of strings, got one string", hint="wrap it: [text]")
        torch = self._torch
        out = np.empty((len(texts), self.dim), np.float32)
        for lo in range(0, len(texts), TEXT_BATCH):
            batch = list(texts[lo:lo + TEXT_BATCH])
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_text_len,
                                 return_tensors="pt")
            with torch.inference_mode():
                pooled = self.model.text_model(input_ids=enc["input_ids"].to(self.device),
                                               attention_mask=enc["attention_mask"].to(self.device)).pooler_output
                features = self.model.text_projection(pooled)
            out[lo:lo + len(batch)] = features.float().cpu().numpy()
        return normalize_rows(out)

    def __repr__(self) -> str:
        return f"ClipEmbedder({self.model_id!r}, dim={self.dim}, {self.device}, {self.dtype})"
