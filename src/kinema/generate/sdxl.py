"""SDXL image generation on diffusers: text-to-image, image-to-image and inpainting, with
ControlNets and LoRAs, from one set of loaded weights.

:class:`ImageGenerator` loads a pipeline folder once (the UNet, VAE, both text encoders) and the
ControlNets and LoRAs it is given, and serves every kind of call from those components: the
diffusers pipeline for a call is made with ``from_pipe``, which shares the modules instead of
loading them again. A :class:`Request` says what to make; what it leaves unset comes from the
model's :class:`Card` (the sampling settings its authors publish: a ``kinema.json`` in the
folder, or the registry's copy of the model card). The same request on the same device gives
the same pixels: noise comes from a ``torch.Generator`` seeded with the request's seed on that
device, and nothing else draws from it.

Arrays in, arrays out: images are ``uint8 (H, W, 3)`` RGB, masks ``bool`` or ``float (H, W)``
with 1 where the picture is repainted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kinema.core.errors import InvalidArgumentError, ModelNotFoundError
from kinema.core.extras import require
from kinema.models.device import placement, quiet_diffusers

# The schedulers a card or a user may name, by diffusers class; ``timestep_spacing`` as the
# models that use them were trained and distilled (Turbo and Lightning sample "trailing").
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
TILE_ABOVE = 1024 * 1024
# SDXL in half precision needs about 10 GiB with its ControlNets; below this much VRAM the
# modules wait in CPU memory and visit the GPU in turn (diffusers' model CPU offload).
OFFLOAD_BELOW = 12 * 2**30


def small_gpu(device: Any) -> bool:
    """Whether CUDA ``device`` has too little memory to hold SDXL whole (see OFFLOAD_BELOW)."""
    import torch

    return torch.cuda.get_device_properties(device).total_memory < OFFLOAD_BELOW


@dataclass(frozen=True)
class Card:
    """A model's sampling defaults: steps, classifier-free guidance, scheduler, size (W, H)."""

    steps: int = 30
    guidance: float = 5.0
    scheduler: str = "euler"
    size: tuple[int, int] = (1024, 1024)

    @classmethod
    def read(cls, folder: Path, fallback: Mapping[str, Any] | None = None) -> Card:
        """The card in ``folder/kinema.json``, else ``fallback`` (the registry's), else SDXL's."""
        path = folder / "kinema.json"
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else dict(fallback or {})
        if "size" in data:
            data["size"] = tuple(data["size"])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Control:
    """One ControlNet condition: which loaded ControlNet (``net``), its control image (the
    output's size), its weight, and the part of the sampling it acts in (0 to 1)."""

    net: str
    image: np.ndarray
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0


@dataclass(frozen=True)
class Request:
    """What to make. ``image`` alone is image-to-image, with ``mask`` inpainting; ``strength``
    is how far from the image the result may go (1: ignore it). Unset settings (``None``) come
    from the model's card."""

    prompt: str
    negative: str = ""
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    size: tuple[int, int] | None = None
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    strength: float = 1.0
    controls: Sequence[Control] = field(default_factory=tuple)

    def settled(self, card: Card) -> Request:
        """This request with every unset setting taken from ``card`` (the size from the image
        when there is one)."""
        size = self.size
        if size is None and self.image is not None:
            size = (self.image.shape[1], self.image.shape[0])
        return replace(self, steps=self.steps or card.steps,
                       guidance=card.guidance if self.guidance is None else self.guidance,
                       scheduler=self.scheduler or card.scheduler, size=size or card.size)


StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (step, steps); raising stops the generation."""


def weights_variant(folder: Path, sub: str) -> str | None:
    """``"fp16"`` where ``folder/sub`` holds half-precision weight files (a hub model pulled
    with only those, see the registry), else ``None`` (the plain files)."""
    return "fp16" if any((folder / sub).glob("*.fp16.safetensors")) else None


class ImageGenerator:
    """SDXL weights loaded once on one device, serving text-to-image, image-to-image and
    inpainting calls, each with any of its ControlNets and with its LoRAs mixed at their
    weights. ``offload`` keeps modules in CPU memory between uses on CUDA (``None``: when the
    GPU has under 12 GiB)."""

    def __init__(self, folder: str | Path, *, controlnets: Mapping[str, str | Path] | None = None,
                 loras: Sequence[tuple[str | Path, float]] = (), card: Mapping[str, Any] | None = None,
                 device: Any = None, dtype: Any = None, offload: bool | None = None) -> None:
        torch, diffusers = quiet_diffusers("image generation")
        self.folder = Path(folder)
        if not (self.folder / "model_index.json").is_file():
            raise ModelNotFoundError("is not a diffusers pipeline folder (no model_index.json)",
                                     path=self.folder, hint="give a folder from kinema models pull/tiny")
        self.device, self.dtype = placement(device, dtype)
        self.card = Card.read(self.folder, card)
        self._torch = torch
        self._diffusers = diffusers
        self._base = diffusers.AutoPipelineForText2Image.from_pretrained(
            self.folder, dtype=self.dtype, variant=weights_variant(self.folder, "unet"))
        self._base.set_progress_bar_config(disable=True)
        self.controlnets = {
            name: diffusers.ControlNetModel.from_pretrained(Path(path), dtype=self.dtype,
                                                            variant=weights_variant(Path(path), ""))
            for name, path in (controlnets or {}).items()}
        self.offload = self.device.type == "cuda" and (small_gpu(self.device) if offload is None else offload)
        if self.offload:
            self._base.enable_model_cpu_offload(device=self.device)
        else:
            self._base.to(self.device)
            for net in self.controlnets.values():
                net.to(self.device)
        self._load_loras(loras)
        self._pipes: dict[tuple, Any] = {}

    @property
    def inpaint_unet(self) -> bool:
        """Whether the UNet is an inpainting one (9 input channels: latents, mask, masked image)."""
        return self._base.unet.config.in_channels == 9

    def _load_loras(self, loras: Sequence[tuple[str | Path, float]]) -> None:
        if not loras:
            return
        require("peft", "ml", feature="LoRAs")
        names = []
        for i, (path, _weight) in enumerate(loras):
            path = Path(path)
            if not path.is_file():
                raise ModelNotFoundError("LoRA file not found", path=path,
                                         hint="give a .safetensors file (kinema lora train writes one)")
            name = f"lora{i}"
            self._base.load_lora_weights(str(path), adapter_name=name)
            names.append(name)
        self._base.set_adapters(names, [float(w) for _p, w in loras])

    def _pipe(self, kind: str, nets: tuple[str, ...]) -> Any:
        key = (kind, nets)
        if key not in self._pipes:
            d = self._diffusers
            classes = {("t2i", False): d.StableDiffusionXLPipeline,
                       ("i2i", False): d.StableDiffusionXLImg2ImgPipeline,
                       ("inpaint", False): d.StableDiffusionXLInpaintPipeline,
                       ("t2i", True): d.StableDiffusionXLControlNetPipeline,
                       ("i2i", True): d.StableDiffusionXLControlNetImg2ImgPipeline,
                       ("inpaint", True): d.StableDiffusionXLControlNetInpaintPipeline}
            extra = {}
            if nets:
                models = [self.controlnets[n] for n in nets]
                extra["controlnet"] = models[0] if len(models) == 1 else models
            pipe = classes[kind, bool(nets)].from_pipe(self._base, **extra)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def _scheduler(self, pipe: Any, name: str) -> None:
        if name not in SCHEDULERS:
            raise InvalidArgumentError(f"unknown scheduler {name!r}",
                                       hint=f"use one of {', '.join(SCHEDULERS)}")
        cls_name, options = SCHEDULERS[name]
        cls = getattr(self._diffusers, cls_name)
        current = pipe.scheduler
        if type(current) is not cls or any(current.config.get(k) != v for k, v in options.items()):
            pipe.scheduler = cls.from_config(self._base.scheduler.config, **options)

    def generator(self, seed: int) -> Any:
        """The seeded noise source of a call: on the device the model runs on (on the CPU when
        the model is offloaded, as diffusers draws there)."""
        where = "cpu" if self.offload else self.device
        return self._torch.Generator(device=where).manual_seed(int(seed))

    def generate(self, request: Request, on_step: StepCallback | None = None) -> np.ndarray:
        """The picture ``request`` asks for, ``uint8 (H, W, 3)``."""
        from PIL import Image

        r = request.settled(self.card)
        width, height = r.size
        if width % 8 or height % 8:
            raise InvalidArgumentError(f"size {width}x{height} is not a multiple of 8",
                                       hint="SDXL works on 8-pixel latents: round the size")
        unknown = [c.net for c in r.controls if c.net not in self.controlnets]
        if unknown:
            raise InvalidArgumentError(f"no ControlNet loaded for {', '.join(unknown)}",
                                       hint=f"loaded: {', '.join(self.controlnets) or 'none'}")
        kind = "t2i" if r.image is None else ("i2i" if r.mask is None else "inpaint")
        if kind == "t2i" and self.inpaint_unet:
            raise InvalidArgumentError("an inpainting model cannot generate from words alone",
                                       hint="use a text-to-image model (sdxl-base) for this")
        pipe = self._pipe(kind, tuple(c.net for c in r.controls))
        # Above SDXL's native area the VAE works in tiles, so memory stays bounded at any size.
        if width * height > TILE_ABOVE:
            self._base.vae.enable_tiling()
        else:
            self._base.vae.disable_tiling()
        self._scheduler(pipe, r.scheduler)
        args: dict[str, Any] = {
            "prompt": r.prompt, "negative_prompt": r.negative or None, "num_inference_steps": r.steps,
            "guidance_scale": r.guidance, "width": width, "height": height,
            "generator": self.generator(r.seed), "output_type": "np"}
        if kind != "t2i":
            args["image"] = Image.fromarray(sized(r.image, (width, height)))
            args["strength"] = r.strength
        if kind == "inpaint":
            mask = np.asarray(r.mask, dtype=np.float32)
            args["mask_image"] = Image.fromarray(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8))
            if width != mask.shape[1] or height != mask.shape[0]:
                args["mask_image"] = args["mask_image"].resize((width, height), Image.BILINEAR)
        if r.controls:
            images = [Image.fromarray(sized(c.image, (width, height))) for c in r.controls]
            args["image" if kind == "t2i" else "control_image"] = images[0] if len(images) == 1 else images

            def one_or_list(values: list[float]) -> float | list[float]:
                return values[0] if len(values) == 1 else values

            args["controlnet_conditioning_scale"] = one_or_list([c.weight for c in r.controls])
            args["control_guidance_start"] = one_or_list([c.start for c in r.controls])
            args["control_guidance_end"] = one_or_list([c.end for c in r.controls])
        if on_step is not None:
            total = int(r.steps * (r.strength if kind != "t2i" else 1.0)) or 1

            def step_end(_pipe: Any, step: int, _timestep: Any, kwargs: dict) -> dict:
                on_step(step + 1, total)
                return kwargs

            args["callback_on_step_end"] = step_end
        with self._torch.inference_mode():
            images = pipe(**args).images
        return np.round(np.clip(images[0], 0, 1) * 255).astype(np.uint8)


def sized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as RGB ``uint8`` at ``size`` (W, H), resized with area/cubic filtering."""
    import cv2

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    if (image.shape[1], image.shape[0]) != size:
        shrink = size[0] < image.shape[1]
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.ascontiguousarray(image, dtype=np.uint8)
