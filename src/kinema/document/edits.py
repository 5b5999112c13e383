"""Editing with undo and redo, the one way the editor and the CLI change a project.

An :class:`Edit` is a named change to a :class:`Project`. :class:`History` applies edits and
keeps the document as it was before each one, so undo restores it exactly whatever the edit
did (documents are small: kilobytes, while pixels live in files the document only names).
A :class:`Change` is a step outside the document (a frame of a mask written to disk) with its
own apply and revert; it takes its turn in the same history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kinema.core.errors import InvalidArgumentError
from kinema.document.model import MaskTrackRef, MediaRef, Project, Recipe, VideoLayer


@dataclass(frozen=True)
class Edit:
    """A change to a project, with the label the Edit menu shows (``Undo <label>``)."""

    label: str
    apply: Callable[[Project], None]


@dataclass(frozen=True)
class Change:
    """A change outside the document (such as one frame of a mask track on disk) that
    :class:`History` undoes and redoes in turn with edits: ``apply`` makes it, ``revert``
    takes it back; each leaves things exactly as the other found them."""

    label: str
    apply: Callable[[], None]
    revert: Callable[[], None]


_Step = tuple[str, Project | Change]
"""A history entry: its label, and the document on the other side of it or the change."""


class History:
    """One undo/redo history of a project's edits and of changes outside its document, in the
    order they were made. It keeps the last ``limit`` steps (older ones are forgotten);
    ``revision`` goes up with every step, and ``on_change`` runs after every step that changed
    the document (autosave)."""

    def __init__(self, project: Project, *, limit: int = 500,
                 on_change: Callable[[Project], None] | None = None) -> None:
        self.project = project
        self.limit = limit
        self.on_change = on_change
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self.revision = 0  # goes up with every step: views redraw when it moves

    def do(self, step: Edit | Change) -> None:
        """Apply ``step``; if it raises, nothing is recorded (and an edit leaves the project as
        it was)."""
        if isinstance(step, Change):
            step.apply()
            self._record(step.label, step, document=False)
            return
        before = self.project.model_copy(deep=True)
        try:
            step.apply(self.project)
            Project.model_validate(self.project.model_dump())
        except ValidationError as exc:
            self._restore(before)
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise InvalidArgumentError(f"{step.label}: {where}: {first['msg']}") from None
        except Exception:
            self._restore(before)
            raise
        self._record(step.label, before, document=True)

    def undo(self) -> str:
        """Revert the last step; returns its label."""
        return self._move(self._undo, self._redo, "undo", forward=False)

    def redo(self) -> str:
        """Re-apply the last undone step; returns its label."""
        return self._move(self._redo, self._undo, "redo", forward=True)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1][0] if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1][0] if self._redo else None

    def _record(self, label: str, step: Project | Change, *, document: bool) -> None:
        self._undo.append((label, step))
        del self._undo[: -self.limit]
        self._redo.clear()
        self._changed(document=document)

    def _move(self, source: list[_Step], target: list[_Step], what: str, *, forward: bool) -> str:
        """Take the last step of ``source`` and record on ``target`` what takes it back."""
        if not source:
            raise InvalidArgumentError(f"nothing to {what}")
        label, step = source[-1]
        if isinstance(step, Change):
            (step.apply if forward else step.revert)()
            back: Project | Change = step
        else:
            back = self.project.model_copy(deep=True)
            self._restore(step)
        source.pop()
        target.append((label, back))
        self._changed(document=not isinstance(step, Change))
        return label

    def _restore(self, state: Project) -> None:
        # Keep the same object: views and jobs hold a reference to it.
        for name in Project.model_fields:
            object.__setattr__(self.project, name, getattr(state, name))

    def _changed(self, *, document: bool) -> None:
        self.revision += 1
        if document and self.on_change is not None:
            self.on_change(self.project)


# -- the edits --------------------------------------------------------------------------


def _layer(project: Project, layer_id: str) -> VideoLayer:
    for layer in project.timeline.video_layers:
        if layer.id == layer_id:
            return layer
    raise InvalidArgumentError(f"no layer {layer_id!r} in the project")


def add_media(ref: MediaRef) -> Edit:
    def apply(p: Project) -> None:
        if ref.id in p.media:
            raise InvalidArgumentError(f"media id {ref.id!r} is taken")
        p.media[ref.id] = ref

    return Edit(f"Import {ref.path}", apply)


def add_layer(layer: VideoLayer, index: int | None = None) -> Edit:
    """Insert ``layer`` at ``index`` (bottom is 0; default: on top)."""
    def apply(p: Project) -> None:
        if any(existing.id == layer.id for existing in p.timeline.video_layers):
            raise InvalidArgumentError(f"layer id {layer.id!r} is taken")
        layers = p.timeline.video_layers
        layers.insert(len(layers) if index is None else index, layer)

    return Edit(f"Add layer {layer.name}", apply)


def move_layer(layer_id: str, index: int) -> Edit:
    """Move a layer to position ``index`` in the stack (0 is the bottom)."""
    def apply(p: Project) -> None:
        layers = p.timeline.video_layers
        layer = _layer(p, layer_id)
        layers.remove(layer)
        layers.insert(max(0, min(index, len(layers))), layer)

    return Edit("Move layer", apply)


def set_layer(layer_id: str, **changes: Any) -> Edit:
    """Set fields of a layer (``visible``, ``blend_mode``, ``name``, ``mask`` ...), validated."""
    def apply(p: Project) -> None:
        layer = _layer(p, layer_id)
        for name, value in changes.items():
            if name not in VideoLayer.model_fields or name in ("id", "items"):
                raise InvalidArgumentError(f"a layer has no settable field {name!r}")
            setattr(layer, name, value)

    return Edit(f"Change {', '.join(changes)}", apply)


def add_mask_track(ref: MaskTrackRef) -> Edit:
    def apply(p: Project) -> None:
        if ref.id in p.mask_tracks:
            raise InvalidArgumentError(f"mask track id {ref.id!r} is taken")
        if ref.media_id not in p.media:
            raise InvalidArgumentError(f"mask track refers to unknown media {ref.media_id!r}")
        p.mask_tracks[ref.id] = ref

    return Edit(f"Add mask {ref.name}", apply)


def add_recipe(recipe: Recipe) -> Edit:
    def apply(p: Project) -> None:
        if recipe.id in p.recipes:
            raise InvalidArgumentError(f"recipe id {recipe.id!r} is taken")
        p.recipes[recipe.id] = recipe

    return Edit(f"Add {recipe.operation}", apply)


def record_mask_track(ref: MaskTrackRef, recipe: Recipe) -> Edit:
    """Add mask track ``ref`` with the ``recipe`` that made its masks; a track that exists
    (tracked again) keeps its name and colour and gets the new recipe in place of its old one."""
    def apply(p: Project) -> None:
        if ref.media_id not in p.media:
            raise InvalidArgumentError(f"mask track refers to unknown media {ref.media_id!r}")
        track = p.mask_tracks.get(ref.id, ref)
        if track.recipe_id is not None and track.recipe_id != recipe.id:
            p.recipes.pop(track.recipe_id, None)
        p.recipes[recipe.id] = recipe
        p.mask_tracks[ref.id] = track.model_copy(update={"recipe_id": recipe.id})

    return Edit(f"Track {ref.name}", apply)


def record_media(ref: MediaRef, recipe: Recipe) -> Edit:
    """Put file ``ref``, which kinema made, in the media pool with the ``recipe`` that made it:
    the entry with its id (the file made before) is replaced, and so is that entry's recipe."""
    def apply(p: Project) -> None:
        old = p.media.get(ref.id)
        if old is not None and old.recipe_id not in (None, recipe.id):
            p.recipes.pop(old.recipe_id, None)
        p.media[ref.id] = ref.model_copy(update={"recipe_id": recipe.id})
        p.recipes[recipe.id] = recipe

    return Edit(f"Record {recipe.operation}", apply)


def relink_media(media_id: str, path: str, relative_path: str | None,
                 **facts: Any) -> Edit:
    """Point media ``media_id`` at another file (``facts``: its hash, size, ... when they changed)."""
    def apply(p: Project) -> None:
        ref = p.media.get(media_id)
        if ref is None:
            raise InvalidArgumentError(f"no media {media_id!r} in the project")
        p.media[media_id] = MediaRef.model_validate(
            {**ref.model_dump(), **facts, "path": path, "relative_path": relative_path})

    return Edit(f"Relink {Path(path).name}", apply)


def set_mask_track(track_id: str, **changes: Any) -> Edit:
    """Rename or recolour a mask track (``name``, ``color``)."""
    def apply(p: Project) -> None:
        ref = p.mask_tracks.get(track_id)
        if ref is None:
            raise InvalidArgumentError(f"no mask track {track_id!r}")
        unknown = set(changes) - {"name", "color"}
        if unknown:
            raise InvalidArgumentError(f"a mask track has no settable field {sorted(unknown)[0]!r}")
        p.mask_tracks[track_id] = MaskTrackRef.model_validate({**ref.model_dump(), **changes})

    return Edit(f"Change {', '.join(changes)}", apply)


def remove_mask_track(track_id: str) -> Edit:
    """Delete a mask track from the document (its files stay until the project is cleaned)."""
    def apply(p: Project) -> None:
        if track_id not in p.mask_tracks:
            raise InvalidArgumentError(f"no mask track {track_id!r}")
        for layer in p.timeline.video_layers:
            if layer.mask is not None and layer.mask.track_id == track_id:
                layer.mask = None
        del p.mask_tracks[track_id]

    return Edit("Delete mask", apply)
