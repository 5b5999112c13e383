"""How a mask track was made, as the recipe stored with it: backend, model, prompts, settings."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from kinema.document.model import MediaRef
from kinema.document.recipes import InputRef, MaskDigest, ModelRef, PromptRecord, TrackRecipe
from kinema.models import backends
from kinema.models.registry import ModelIdentity, identity
from kinema.vision.base import Prompt


def track_models(backend: str, prompts: Sequence[Prompt], model: str | None,
                 detector: str | None) -> tuple[ModelIdentity | None, ModelIdentity | None]:
    """The identities of the tracking model (none for a backend that loads none, such as the
    classical one) and of the text detector (none without words in ``prompts``), each hashed
    once for all the objects."""
    model_task = backends.get("track", backend).model_task
    tracker = identity(model, task=model_task) if model_task is not None else None
    words = identity(detector, task="detect-text") if any(p.text for p in prompts) else None
    return tracker, words


def track_recipe(track_id: str, media: MediaRef, prompts: Sequence[Prompt], *, backend: str,
                 models: tuple[ModelIdentity | None, ModelIdentity | None] = (None, None),
                 settings: Mapping[str, Any]) -> TrackRecipe:
    """The recipe of mask track ``track_id``: tracked on ``media`` by ``backend`` (with the
    ``models`` of :func:`track_models`) from ``prompts``, the object's own, with ``settings``
    (the other fields of :class:`TrackRecipe`: range, direction, clean-ups, device, ...)."""
    tracker, words = models
    return TrackRecipe(id=f"track-{track_id}", backend=backend, model=_reference(tracker),
                       detector=_reference(words), prompts=[_prompt(p) for p in prompts],
                       inputs=[InputRef(id=media.id, sha256=media.sha256)], **settings)


def _reference(model: ModelIdentity | None) -> ModelRef | None:
    """How a recipe names the weights ``model`` identifies."""
    return ModelRef(**asdict(model)) if model is not None else None


def _prompt(prompt: Prompt) -> PromptRecord:
    """A prompt as recorded; a mask prompt by its size and the hash of its pixels."""
    mask = None
    if prompt.mask is not None:
        bits = np.packbits(np.asarray(prompt.mask, bool))
        mask = MaskDigest(size=(int(prompt.mask.shape[1]), int(prompt.mask.shape[0])),
                          sha256=hashlib.sha256(bits.tobytes()).hexdigest())
    return PromptRecord(frame=prompt.frame, object=prompt.object_id, points=list(prompt.points),
                        labels=list(prompt.labels), box=prompt.box, text=prompt.text, mask=mask)
