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

FAMILIES = {"sam2": "sam2-tiny", "grounding-dino": "grounding-dino-tiny", "clip": "clip-vit-b32"}
# Each family's builder, ``module:function`` taking the new folder; imported when it is used.
BUILDERS = {"sam2": "kinema.models.tiny_sam2:build_tiny_sam2",
            "grounding-dino": "kinema.models.tiny_grounding_dino:build_tiny_grounding_dino",
            "clip": "kinema.models.tiny_clip:build_tiny_clip"}


def model_named(name: str) -> str:
    """The registry model for ``name``: itself, or the default model of a family name."""
    return FAMILIES.get(name, name)


def builder(family: str) -> Callable[[Path], Path]:
    """The tiny-model builder of ``family``."""
    found = BUILDERS.get(family)
    if found is None:
        raise InvalidArgumentError(f"no tiny builder for {family} models yet")
    module, _, function = found.partition(":")
    return getattr(importlib.import_module(module), function)


def build_tiny(name: str, out: str | os.PathLike[str]) -> Path:
    """Write a tiny random-weight model of registry model ``name``'s family (or of the family
    ``name`` itself: ``sam2``, ``grounding-dino``, ``clip``) into ``out``."""
    build = builder(spec(model_named(name)).family)
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise InvalidArgumentError("folder is not empty", path=target, hint="give a new folder")
    target.mkdir(parents=True, exist_ok=True)
    return build(target)
