"""Provenance: what went into a rendered file and how to make it again."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from kinema.app.evaluate import footage_frames, media_paths
from kinema.core.errors import MediaOpenError
from kinema.document.model import AdjustmentItem, AssetItem, ClipItem, Project, StyleItem
from kinema.document.recipes import InputRef, PropagateRecipe, Recipe


def used_recipes(project: Project) -> list[Recipe]:
    """The recipes behind what a render of ``project`` shows: those of the mask tracks that
    visible layers are matted by, of their adjustment and style items (what made a style's
    keys, and how they are carried: :func:`style_recipe`), and of the files kinema made
    (generated, interpolated, upscaled) that their clips and assets show."""
    ids: list[str | None] = []
    carried: list[Recipe] = []
    for layer in project.timeline.video_layers:
        if not layer.visible:
            continue
        track = project.mask_tracks.get(layer.mask.track_id) if layer.mask is not None else None
        if track is not None:
            ids.append(track.recipe_id)
        for item in layer.items:
            if isinstance(item, AdjustmentItem | StyleItem):
                ids.append(item.recipe_id)
            if isinstance(item, StyleItem) and item.track_id in project.mask_tracks:
                carried.append(style_recipe(project, item))
            elif isinstance(item, ClipItem | AssetItem) and item.media_id in project.media:
                ids.append(project.media[item.media_id].recipe_id)
    stored = [project.recipes[i] for i in dict.fromkeys(ids) if i is not None and i in project.recipes]
    return [*stored, *carried]


def style_recipe(project: Project, item: StyleItem) -> PropagateRecipe:
    """How style item ``item``'s frames are made: its keys carried through its footage frames
    inside its mask track, at its quality (a recipe the document implies rather than stores)."""
    from kinema.generate.propagate import QUALITIES

    footage = project.media[project.mask_tracks[item.track_id].media_id]
    frames = footage_frames(project, item)
    inputs = [InputRef(id=footage.id, sha256=footage.sha256),
              *(InputRef(id=f"key-{k.frame}", sha256=k.sha256) for k in item.keys)]
    return PropagateRecipe(id=f"propagate-{item.id}", inputs=inputs, keys=item.keys,
                           track_id=item.track_id, start=frames.start, end=frames.stop,
                           quality=item.quality,
                           guides=QUALITIES[item.quality].guides())


def summary(project: Project) -> str:
    ops = sorted({r.operation for r in used_recipes(project)}) or ["composite"]
    return f"kinema render of {project.name}: {', '.join(ops)}; see .provenance.json"


def provenance_path(output: Path) -> Path:
    return output.with_name(output.name + ".provenance.json")


def write_provenance(output: Path, project: Project, folder: Path, begin: int, end: int) -> Path:
    """``OUT.provenance.json``: what went into ``output`` and how to make it again."""
    from kinema import __version__
    from kinema.core.atomic import atomic_write_bytes

    paths, _ = media_paths(project, folder)
    recipes = used_recipes(project)
    record = {
        "kinema_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(),
        "output": str(output),
        "project": str(folder.resolve()),
        "frames": {"start": begin, "stop": end, "rate": str(project.timeline.rate)},
        "sources": [{"id": ref.id, "path": str(paths.get(ref.id, ref.path)), "sha256": ref.sha256,
                     "size_bytes": ref.size_bytes} for ref in project.media.values()],
        "operations": [json.loads(r.model_dump_json()) for r in recipes],
        "models": sorted({m.model_id for r in recipes for m in r.models()}),
    }
    target = provenance_path(output)
    atomic_write_bytes(target, (json.dumps(record, indent=2) + "\n").encode())
    return target


def read_provenance(path: str | os.PathLike[str]) -> dict[str, object]:
    """The provenance record of a rendered file."""
    p = Path(path)
    record = provenance_path(p) if not p.name.endswith(".provenance.json") else p
    if not record.is_file():
        raise MediaOpenError("has no provenance record", path=p,
                             hint=f"expected {record.name} beside it (kinema writes one per render)")
    return json.loads(record.read_text())
