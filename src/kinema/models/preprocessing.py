"""Reading a Hugging Face model's ``preprocessor_config.json``: the fields every image model
shares (mean, std, rescaling); each adapter reads its own ``size`` from :attr:`raw`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinema.core.errors import ModelNotFoundError

Triple = tuple[float, float, float]
IMAGENET_MEAN: Triple = (0.485, 0.456, 0.406)
IMAGENET_STD: Triple = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessorConfig:
    """A model folder's ``preprocessor_config.json`` (``raw`` is empty when it has none)."""

    path: Path
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """Whether the folder has the file."""
        return self.path.is_file()

    def triple(self, key: str, default: Triple) -> Triple:
        """``image_mean``/``image_std``-like field ``key``: three floats (one number is repeated)."""
        value = self.raw.get(key, default)
        values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
        if len(values) != 3:
            raise ModelNotFoundError(f"image_mean/image_std need 3 values, got {len(values)}",
                                     path=self.path)
        return values[0], values[1], values[2]

    def normalisation(self, mean: Triple = IMAGENET_MEAN, std: Triple = IMAGENET_STD) -> Normalisation:
        """The mean, std and rescaling, with ``mean`` and ``std`` (and transformers' defaults
        for the rest) where the file leaves them out."""
        return Normalisation(mean=self.triple("image_mean", mean), std=self.triple("image_std", std),
                             rescale_factor=float(self.raw.get("rescale_factor", 1 / 255)),
                             do_rescale=bool(self.raw.get("do_rescale", True)),
                             do_normalize=bool(self.raw.get("do_normalize", True)))


@dataclass(frozen=True)
class Normalisation:
    """How pixels become model input values: ``(x * rescale_factor - mean) / std``, each step
    only if its ``do_`` flag is set."""

    mean: Triple = IMAGENET_MEAN
    std: Triple = IMAGENET_STD
    rescale_factor: float = 1 / 255
    do_rescale: bool = True
    do_normalize: bool = True


def read_preprocessor_config(model_dir: str | os.PathLike[str]) -> PreprocessorConfig:
    """``model_dir/preprocessor_config.json``; an empty one if there is none, one error naming
    the file if it cannot be read."""
    path = Path(model_dir) / "preprocessor_config.json"
    if not path.is_file():
        return PreprocessorConfig(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read the preprocessor config: {exc}", path=path) from exc
    return PreprocessorConfig(path, raw)
