"""The ``keys`` engine of ``kinema restyle --engine``: the object restyled on key frames with
SDXL (:func:`kinema.app.restyle_jobs.restyle`), then carried through the whole shot by
example-based propagation (:mod:`kinema.app.propagate_jobs`). Fast, and the keys stay editable.

From a video, the keys go into ``OUT.keys/`` beside the output (repaint one and run
``kinema propagate --keys OUT.keys/`` again) and the shot into ``OUT``. From a project, ``OUT``
is the keys folder: the keys become the object's style layer, which is then carried through
the shot into the project's cache as ``kinema stylize`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.core.jobs import Steps


@dataclass(frozen=True)
class KeysRestyled:
    """What :func:`restyle_through_keys` made: the keys (a restyle's result) and the shot (a
    folder or movie from a video; the style layer's frames from a project)."""

    keys: Any
    output: Path
    frames: int


def restyle_through_keys(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                         frames: Sequence[int], track: str | None = None,
                         mask: str | os.PathLike[str] | None = None, quality: str = "fast",
                         overwrite: bool = False, **options: Any) -> Steps[KeysRestyled]:
    """Restyle key ``frames`` of ``source`` (a video with ``mask``, a project with ``track``)
    and carry them through the shot; ``options`` are :func:`~kinema.app.restyle_jobs.restyle`'s.
    Each step reports its own progress in turn."""
    from kinema.app.key_jobs import keys_folder
    from kinema.app.propagate_jobs import propagate_video
    from kinema.app.restyle_jobs import is_project, restyle
    from kinema.app.style_keys import keys_in_folder
    from kinema.app.style_layer import stylize
    from kinema.core import atomic
    from kinema.core.errors import InvalidArgumentError
    from kinema.generate.propagate import QUALITIES

    if quality not in QUALITIES:
        raise InvalidArgumentError(f"unknown quality {quality!r}", hint="use fast or best")
    target = atomic.output_path(output)
    if is_project(source):
        made = yield from restyle(source, target, frames=frames, track=track, mask=mask,
                                  overwrite=overwrite, **options)
        stylized = yield from stylize(source, track=track, quality=quality)
        return KeysRestyled(made, target, sum(u.styled + u.kept for u in stylized.updates))
    atomic.check_not_input(target, [source, mask])
    atomic.check_can_write(target, overwrite, folder=target.suffix == "")
    keys = keys_folder(target)
    made = yield from restyle(source, keys, frames=frames, mask=mask, overwrite=overwrite, **options)
    carried = yield from propagate_video(source, target, keys=keys_in_folder(keys), mask=mask,
                                         quality=quality, overwrite=overwrite)
    return KeysRestyled(made, carried.output, carried.end - carried.start)
