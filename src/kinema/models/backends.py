"""Backends by task: what can segment, track, detect, embed (and, later, generate ...).

A backend declares its task, its name, the optional extra it needs, the registry task of the
models it loads (``None`` for a backend without weights), a one-line description and a
factory. ``app``, the CLI and the editor find backends here, never by ``if name == ...``.

Lookups need no heavy import: the built-in backends are declared in small modules that import
their implementations only inside their factories (:data:`BUILTIN`), and other packages add
theirs through the ``kinema.backends`` entry-point group (a module that calls :func:`register`
when imported). Factories take the task's arguments and the options ``model`` (a folder, a
registry name, an already-loaded model or ``None`` for the default), ``device`` and ``dtype``:

- ``segment``: ``factory(**options) -> ImageSegmenter``
- ``track``: ``factory(frames, **options) -> VideoTracker``
- ``detect``: ``factory(**options) -> TextDetector``
- ``embed``: ``factory(**options) -> Embedder``
- ``interpolate``: ``factory(**options)``, ``.interpolate(a, b, t)`` the frame at ``t`` in [0, 1]
- ``upscale``: ``factory(scale, **options)``, ``.upscale(frame)``
- ``t2v``: ``factory(**options)``, ``.generate(ClipRequest, on_step)`` a clip's frames
- ``speech``: ``factory(**options) -> SileroVad`` (``search.speech.find_speech`` runs it)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from kinema.core.errors import InvalidArgumentError

TASKS = ("segment", "track", "detect", "embed", "pose", "cutout", "generate", "restyle",
         "propagate", "interpolate", "upscale", "t2v", "music", "llm", "speech")
# Where the built-in backends are declared; imported on the first lookup.
BUILTIN = ("kinema.vision.backends", "kinema.search.backends", "kinema.generate.backends")
ENTRY_POINT_GROUP = "kinema.backends"


@dataclass(frozen=True)
class Backend:
    """One way of doing a task: ``factory(*args, **options)`` makes it."""

    task: str
    name: str
    description: str
    factory: Callable[..., Any]
    extra: str | None = None
    model_task: str | None = None  # the registry task of the models it loads (kinema models list)

    def create(self, *args: Any, **options: Any) -> Any:
        """The backend, made by its factory."""
        return self.factory(*args, **options)


_REGISTRY: dict[str, dict[str, Backend]] = {task: {} for task in TASKS}
_discovered = False


def register(backend: Backend) -> Backend:
    """Add ``backend`` to its task (replacing one of the same name); returns it."""
    if backend.task not in TASKS:
        raise InvalidArgumentError(f"unknown task {backend.task!r}", hint=f"use one of {', '.join(TASKS)}")
    _REGISTRY[backend.task][backend.name] = backend
    return backend


def unregister(task: str, name: str) -> None:
    """Remove backend ``name`` of ``task`` (nothing if there is none)."""
    _REGISTRY.get(task, {}).pop(name, None)


def _discover() -> None:
    """Import the built-in declarations and the ``kinema.backends`` entry points, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in BUILTIN:
        importlib.import_module(module)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()


def backends(task: str) -> list[Backend]:
    """The backends of ``task``, built-in ones first, in the order they were registered."""
    if task not in TASKS:
        raise InvalidArgumentError(f"unknown task {task!r}", hint=f"use one of {', '.join(TASKS)}")
    _discover()
    return list(_REGISTRY[task].values())


def names(task: str) -> list[str]:
    """The names of ``task``'s backends."""
    return [b.name for b in backends(task)]


def get(task: str, name: str) -> Backend:
    """Backend ``name`` of ``task``; an unknown name is one error listing the known ones."""
    found = next((b for b in backends(task) if b.name == name), None)
    if found is None:
        raise InvalidArgumentError(f"unknown backend {name!r} for {task}",
                                   hint=f"use one of {', '.join(names(task)) or 'none yet'}")
    return found


def create(task: str, name: str, *args: Any, **options: Any) -> Any:
    """Backend ``name`` of ``task`` made with ``args`` and ``options`` (see the module doc)."""
    return get(task, name).create(*args, **options)


def describe(task: str) -> str:
    """``name (description), ...`` for ``task``'s backends: for help texts."""
    return ", ".join(f"{b.name} ({b.description})" for b in backends(task))
