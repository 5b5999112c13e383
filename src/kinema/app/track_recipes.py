"""How a mask track was made, as the recipe stored with it: backend, model, prompts, settings."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from kinema.document.model import MediaRef, Recipe
from kinema.models.registry import ModelIdentity, identity
from kinema.vision.base import Prompt


def track_models(backend: str, prompts: Sequence[Prompt], model: str | None,
                 detector: str | None) -> tuple[ModelIdentity | None, ModelIdentity | None]:
    """The identities of the tracking model (none for the classical backend) and of the text
    detector (none without words in ``prompts``), each hashed once for all the objects."""
    tracker = identity(model, task="segment-video") if backend != "classic" else None
    words = identity(detector, task="detect-text") if any(p.text for p in prompts) else None
    return tracker, words


def track_recipe(track_id: str, media: MediaRef, prompts: Sequence[Prompt], *, backend: str,
                 models: tuple[ModelIdentity | None, ModelIdentity | None] = (None, None),
                 settings: dict[str, Any] | None = None) -> Recipe:
    """The recipe of mask track ``track_id``: tracked on ``media`` by ``backend`` (with the
    ``models`` of :func:`track_models`) from ``prompts``, the object's own, with ``settings``
    (range, direction, clean-ups, ...)."""
    tracker, words = models
    parameters: dict[str, Any] = {"backend": backend, "prompts": [_prompt(p) for p in prompts],
                                  **(settings or {})}
    if words is not None:
        parameters["detector"] = {"model_id": words.model_id, "revision": words.revision,
                                  "weights_sha256": words.weights_sha256}
    text = "; ".join(p.text for p in prompts if p.text) or None
    return Recipe(id=f"track-{track_id}", operation="track",
                  model_id=tracker.model_id if tracker else None,
                  model_revision=tracker.revision if tracker else None,
                  weights_sha256=tracker.weights_sha256 if tracker else None, prompt=text,
                  parameters=parameters, inputs=[f"{media.id}:{media.sha256}"])


def _prompt(prompt: Prompt) -> dict[str, Any]:
    """A prompt as JSON; a mask prompt by its size and the hash of its pixels."""
    out: dict[str, Any] = {"frame": prompt.frame, "object": prompt.object_id}
    if prompt.points:
        out["points"] = [[float(x), float(y)] for x, y in prompt.points]
        out["labels"] = list(prompt.labels)
    if prompt.box is not None:
        out["box"] = [float(v) for v in prompt.box]
    if prompt.text:
        out["text"] = prompt.text
    if prompt.mask is not None:
        bits = np.packbits(np.asarray(prompt.mask, bool))
        out["mask"] = {"size": [int(prompt.mask.shape[1]), int(prompt.mask.shape[0])],
                       "sha256": hashlib.sha256(bits.tobytes()).hexdigest()}
    return out
