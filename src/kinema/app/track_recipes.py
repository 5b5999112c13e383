"""How a mask track was made, as the recipe stored with it: backend, model, prompts, settings."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from kinema.document.model import MediaRef, Recipe
from kinema.vision.base import Prompt


def track_recipe(track_id: str, media: MediaRef, prompts: Sequence[Prompt], *, backend: str,
                 model: str | None = None, detector: str | None = None,
                 settings: dict[str, Any] | None = None) -> Recipe:
    """The recipe of mask track ``track_id``: tracked on ``media`` by ``backend`` from
    ``prompts`` (the object's own), with ``settings`` (range, direction, clean-ups, ...).
    For a model backend, the weights are named by hub repository, revision and hash."""
    from kinema.models.registry import identity

    parameters: dict[str, Any] = {"backend": backend, "prompts": [_prompt(p) for p in prompts],
                                  **(settings or {})}
    model_id = revision = weights = None
    if backend != "classic":
        found = identity(model, task="segment-video")
        model_id, revision, weights = found.model_id, found.revision, found.weights_sha256
    if any(p.text for p in prompts):
        found = identity(detector, task="detect-text")
        parameters["detector"] = {"model_id": found.model_id, "revision": found.revision,
                                  "weights_sha256": found.weights_sha256}
    text = "; ".join(p.text for p in prompts if p.text) or None
    return Recipe(id=f"track-{track_id}", operation="track", model_id=model_id,
                  model_revision=revision, weights_sha256=weights, prompt=text,
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
