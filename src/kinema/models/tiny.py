"""Tiny models: the architecture of a registry model with a few small random-weight layers.

They load through the same ``--model DIR`` path as real weights, so every adapter runs end to
end offline: in CI, on machines without downloads, and in smoke tests. Their masks and boxes
mean nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from kinema.core.errors import InvalidArgumentError
from kinema.models.registry import spec

FAMILIES = {"sam2": "sam2-tiny", "grounding-dino": "grounding-dino-tiny", "clip": "clip-vit-b32"}


def model_named(name: str) -> str:
    """The registry model for ``name``: itself, or the default model of a family name."""
    return FAMILIES.get(name, name)


def build_tiny(name: str, out: str | os.PathLike[str]) -> Path:
    """Write a tiny random-weight model of registry model ``name``'s family (or of the family
    ``name`` itself: ``sam2``, ``grounding-dino``, ``clip``) into ``out``."""
    family = spec(model_named(name)).family
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise InvalidArgumentError("folder is not empty", path=target, hint="give a new folder")
    target.mkdir(parents=True, exist_ok=True)
    if family == "sam2":
        from kinema.models.tiny_sam2 import build_tiny_sam2

        return build_tiny_sam2(target)
    if family == "grounding-dino":
        from kinema.models.tiny_grounding_dino import build_tiny_grounding_dino

        return build_tiny_grounding_dino(target)
    if family == "clip":
        from kinema.models.tiny_clip import build_tiny_clip

        return build_tiny_clip(target)
    raise InvalidArgumentError(f"no tiny builder for {family} models yet")
