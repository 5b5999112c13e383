"""Tiny models: the architecture of a registry model with a few small random-weight layers.

They load through the same ``--model DIR`` path as real weights, so every adapter runs end to
end offline: in CI, on machines without downloads, and in smoke tests. Their masks and boxes
mean nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from kinema.core.errors import InvalidArgumentError
from kinema.models.registry import spec

FAMILIES = {"sam2": "sam2-tiny", "grounding-dino": "grounding-dino-tiny", "clip": "clip-vit-b32",
            "sdxl": "sdxl-base", "controlnet": "controlnet-canny-sdxl",
            "depth": "depth-anything-v2-small", "sd15": "sd15-base",
            "controlnet-sd15": "controlnet-openpose-sd15", "wan": "wan2.1-t2v-1.3b",
            "wan-vace": "wan2.1-vace-1.3b", "llm": "qwen2.5-0.5b-instruct", "musicgen": "musicgen-small"}
# Each family's builder, ``module:function`` taking the new folder; imported when it is used.
BUILDERS = {"sam2": "kinema.models.tiny_sam2:build_tiny_sam2",
            "grounding-dino": "kinema.models.tiny_grounding_dino:build_tiny_grounding_dino",
            "clip": "kinema.models.tiny_clip:build_tiny_clip",
            "sdxl": "kinema.models.tiny_sdxl:build_tiny_sdxl",
            "controlnet-sdxl": "kinema.models.tiny_sdxl:build_tiny_controlnet",
            "depth": "kinema.models.tiny_depth:build_tiny_depth",
            "sd15": "kinema.models.tiny_video:build_tiny_sd15",
            "motion-adapter": "kinema.models.tiny_video:build_tiny_motion_adapter",
            "controlnet-sd15": "kinema.models.tiny_video:build_tiny_controlnet_sd15",
            "wan": "kinema.models.tiny_video:build_tiny_wan",
            "wan-vace": "kinema.models.tiny_video:build_tiny_wan_vace",
            "qwen2": "kinema.models.tiny_llm:build_tiny_llm",
            "musicgen": "kinema.models.tiny_music:build_tiny_musicgen"}
# Not a registry model but a file: a LoRA for the tiny SDXL.
LORA = "lora"
# Not one model but a set of folders, each named after its registry model: AnimateDiff's
# SD1.5 base, motion adapter and SD1.5 ControlNets.
SETS = {"animatediff": "kinema.models.tiny_video:build_tiny_animatediff"}


def model_named(name: str) -> str:
    """The registry model for ``name``: itself, or the default model of a family name."""
    return FAMILIES.get(name, name)


def builder(family: str) -> Callable[[Path], Path]:
    """The tiny-model builder of ``family`` (or of a set in :data:`SETS`)."""
    found = BUILDERS.get(family) or SETS.get(family)
    if found is None:
        raise InvalidArgumentError(f"no tiny builder for {family} models yet")
    module, _, function = found.partition(":")
    return getattr(importlib.import_module(module), function)


def build_tiny(name: str, out: str | os.PathLike[str]) -> Path:
    """Write a tiny random-weight model of registry model ``name``'s family (or of the family
    ``name`` itself: ``sam2``, ``grounding-dino``, ``clip``, ``sdxl``, ``controlnet``,
    ``depth``, ``sd15``, ``controlnet-sd15``, ``wan``, ``wan-vace``, ``llm``, ``musicgen``) into
    the new folder ``out``; ``lora`` writes a LoRA file for the tiny SDXL (``out`` a new
    ``.safetensors`` file or folder), ``animatediff`` the set of folders AnimateDiff loads (``sd15-base/``,
    ``animatediff-v1-5-3/``, ``controlnet-openpose-sd15/``, ``controlnet-canny-sd15/``)."""
    target = Path(out)
    if name == LORA:
        from kinema.models.tiny_sdxl import build_tiny_lora

        if target.exists() and (target.is_file() or any(target.iterdir())):
            raise InvalidArgumentError("already exists", path=target, hint="give a new file or folder")
        return build_tiny_lora(target)
    build = builder(name if name in SETS else spec(model_named(name)).family)
    if target.exists() and any(target.iterdir()):
        raise InvalidArgumentError("folder is not empty", path=target, hint="give a new folder")
    target.mkdir(parents=True, exist_ok=True)
    return build(target)
