"""Assets made into an open project's folder (the editor's Generate panel): a free name under
``assets/``, the asset made there (:func:`kinema.app.asset_jobs.make_asset`), and its picture
back for a preview. Placing it is :func:`kinema.app.asset_jobs.placement`, which the editor
applies through its history on the UI thread."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from itertools import chain, count
from pathlib import Path
from typing import Any

import numpy as np

from kinema.app.asset_jobs import Asset, make_asset
from kinema.core.jobs import Steps

ASSETS = "assets"
"""The folder in a project the editor's assets go to."""


def asset_path(folder: Path, prompt: str, seed: int) -> Path:
    """Where the asset of ``prompt`` goes in ``folder``: ``<subject>-<seed>.png``, or
    ``<subject>-<seed>-2.png``, ``-3``, ... when that is taken (an existing file is never
    overwritten)."""
    from kinema.vision.cutout import subject_of

    subject = re.sub(r"\W+", "-", subject_of(prompt).lower()).strip("-") or "asset"
    names = chain([f"{subject}-{seed}.png"], (f"{subject}-{seed}-{k}.png" for k in count(2)))
    return next(folder / name for name in names if not (folder / name).exists())


def make_project_asset(prompt: str, out: Path, *, negative: str = "", seed: int = 0,
                       size: tuple[int, int] | None = None, model: str | os.PathLike[str] | None = None,
                       loras: Sequence[tuple[Path, float]] = (),
                       device: Any = None) -> Steps[tuple[Asset, np.ndarray]]:
    """The transparent asset of ``prompt`` written to ``out`` with its recipe beside it (the
    model's card filling steps, guidance, scheduler and a size left unset), and its straight
    RGBA picture as written."""
    from kinema.generate.sdxl import Request
    from kinema.media.image import read_image

    out.parent.mkdir(parents=True, exist_ok=True)
    request = Request(prompt, negative=negative, seed=seed, size=size)
    asset = yield from make_asset(request, out, model=model, loras=loras, device=device)
    return asset, read_image(asset.output)
