"""A model already in memory, with where it came from: adapters given one share its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


class LoadedModel(NamedTuple):
    """A loaded model (e.g. a transformers ``PreTrainedModel``), the folder it was read from,
    and the device and dtype it is on."""

    model: Any
    folder: Path
    device: Any
    dtype: Any
