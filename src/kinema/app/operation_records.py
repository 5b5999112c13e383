"""What made a file: the recipe of an operation, beside its output and in a project.

``kinema interpolate``, ``upscale`` and ``pose`` make files from files. Each writes
``OUT.provenance.json`` beside its output (beside the folder for a folder of frames, so the
folder holds nothing but the frames): the record a render writes (see
:mod:`kinema.app.provenance`), so ``kinema provenance OUT`` reads either. It holds the sources
with their sha256 and size, the operation's typed recipe (``operations``: backend, model
identity, device, parameters, inputs with their sha256) and the models it ran. Running the
operation again with the recipe's parameters on the same sources makes the same output.

With ``--project P`` the recipe is also stored among the project's recipes, its inputs named
by their media ids where the project has the files, and a video output joins the media pool:
the recipe of media ``mK`` is ``OPERATION-mK`` (made again, it replaces its recipe). Other
recipes are ``OPERATION-1``, ``OPERATION-2``, ... in the order they were made.

A bundled model is named ``bundled:BUNDLE/FILE``, its revision the pinned package it comes
from and its hash the manifest's (checked against the file when it was loaded).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinema.document.recipes import InputRef, ModelRef, RecipeBase

if TYPE_CHECKING:
    from kinema.document.model import MediaRef, Project


@dataclass(frozen=True)
class Source:
    """A file an operation read: where, its sha256 and size."""

    path: Path
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Source:
        from kinema.core.hashing import file_sha256

        p = Path(os.path.abspath(path))
        return cls(p, file_sha256(p), p.stat().st_size)

    def as_input(self) -> InputRef:
        """The source as a recipe input named by its file name."""
        return InputRef(id=self.path.name, sha256=self.sha256)


def bundled_model(bundle: str, member: str) -> ModelRef:
    """The identity of bundled file ``member`` of ``bundle``: ``bundled:BUNDLE/FILE``, the
    pinned package as its revision, the manifest's sha256 (the file is checked against it)."""
    from kinema.models.bundled import bundle as entry
    from kinema.models.bundled import model_file

    model_file(bundle, member)  # a missing or damaged file is an error naming fetch-bundled
    info = entry(bundle)
    found = info.member(member)
    return ModelRef(model_id=f"bundled:{info.name}/{found.name}", revision=info.package,
                    weights_sha256=found.sha256)


def model_of(backend: Any) -> ModelRef | None:
    """The weights a backend object loaded, from its ``bundled`` (``(bundle, member)``) or its
    ``path`` (a weights file, hashed); ``None`` for one without weights."""
    from kinema.core.hashing import file_sha256

    bundled = getattr(backend, "bundled", None)
    if bundled is not None:
        return bundled_model(*bundled)
    path = getattr(backend, "path", None)
    if path is not None and Path(path).is_file():
        return ModelRef(model_id=str(Path(path).resolve()), weights_sha256=file_sha256(path))
    return None


def placement_of(backend: Any) -> dict[str, str | None]:
    """``device`` and ``dtype`` a backend object ran with (``None`` where it has none)."""
    device, dtype = getattr(backend, "device", None), getattr(backend, "dtype", None)
    return {"device": str(device) if device is not None else None,
            "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None}


def record_path(output: str | os.PathLike[str]) -> Path:
    """Where the record of ``output`` goes: ``OUT.provenance.json`` beside it."""
    from kinema.app.provenance import provenance_path
    from kinema.core.atomic import output_path

    return provenance_path(output_path(output))


def write_record(output: str | os.PathLike[str], recipe: RecipeBase,
                 sources: list[Source]) -> Path:
    """``OUT.provenance.json`` for ``output``, made by ``recipe`` from ``sources``."""
    from kinema import __version__
    from kinema.core.atomic import atomic_write_bytes, output_path

    record = {
        "kinema_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(),
        "output": str(output_path(output)),
        "sources": [{"id": s.path.name, "path": str(s.path), "sha256": s.sha256,
                     "size_bytes": s.size_bytes} for s in sources],
        "operations": [json.loads(recipe.model_dump_json())],
        "models": sorted({m.model_id for m in recipe.models()}),
    }
    target = record_path(output)
    atomic_write_bytes(target, (json.dumps(record, indent=2) + "\n").encode())
    return target


def check_project(project: str | os.PathLike[str] | None) -> None:
    """Fail now, before the work, when ``project`` cannot take the recipe afterwards."""
    if project is not None:
        from kinema.document.store import check_writable

        check_writable(project)


def pool_ref(project: Project, folder: Path, path: Path) -> MediaRef:
    """File ``path`` as an entry of ``project``'s media pool (the project in ``folder``): the
    id it has there already, else the first free ``mK``; its facts as they are now."""
    from kinema.app.project_jobs import media_facts
    from kinema.document.model import MediaRef

    path = Path(os.path.abspath(path))
    known = next((m.id for m in project.media.values() if Path(m.path).resolve() == path.resolve()), None)
    media_id = known or next(f"m{k}" for k in count(1) if f"m{k}" not in project.media)
    return MediaRef(id=media_id, path=str(path), relative_path=os.path.relpath(path, folder.resolve()),
                    **media_facts(path))  # type: ignore[arg-type]


def store_recipe(project: str | os.PathLike[str], recipe: RecipeBase, sources: list[Source], *,
                 media: str | os.PathLike[str] | None = None) -> str:
    """Store ``recipe`` among ``project``'s recipes, its inputs named by media id where the
    project has the file; ``media`` (a video output) joins the media pool, or has its facts
    renewed when the pool has it already. Returns the recipe's id."""
    from kinema.document import store
    from kinema.document.edits import add_recipe, record_media

    folder = store.project_path(project)
    with store.ProjectFile(folder) as pf:
        pool = {Path(m.path).resolve(): m for m in pf.project.media.values()}
        inputs = [InputRef(id=pool[s.path.resolve()].id, sha256=s.sha256)
                  if s.path.resolve() in pool else s.as_input() for s in sources]
        if media is not None:
            ref = pool_ref(pf.project, folder, Path(media))
            recipe_id = f"{recipe.operation}-{ref.id}"
            stored = recipe.model_copy(update={"id": recipe_id, "inputs": inputs})
            pf.history.do(record_media(ref, stored))  # type: ignore[arg-type]
            pf.save()
            return recipe_id
        recipe_id = next(f"{recipe.operation}-{k}" for k in count(1)
                         if f"{recipe.operation}-{k}" not in pf.project.recipes)
        pf.history.do(add_recipe(recipe.model_copy(update={"id": recipe_id, "inputs": inputs})))
        pf.save()
    return recipe_id
