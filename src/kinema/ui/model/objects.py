"""Objects: the footage's mask tracks as the editor shows them, added, renamed, recoloured,
deleted, shown or hidden, and the active one that tools and propagation work on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.core.frames import Mask
from kinema.document import edits
from kinema.document.edits import History
from kinema.document.masktrack import MaskTrackStore
from kinema.document.model import MaskTrackRef, object_colour
from kinema.ui.model.history import EditHistory
from kinema.ui.model.session import Session, writes


@dataclass
class ObjectView:
    """A mask track as the editor shows it: the document's entry, its masks, and whether the
    viewer shows them."""

    ref: MaskTrackRef
    store: MaskTrackStore
    visible: bool = True

    @property
    def track_id(self) -> str:
        return self.ref.id

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def colour(self) -> tuple[int, int, int]:
        return tuple(self.ref.color)  # type: ignore[return-value]


class Objects(Sequence[ObjectView]):
    """The mask tracks of the footage, in the document's order; always what the document says
    (after an undo, a redo, a recovery), each track's masks opened once."""

    def __init__(self, session: Session, history: EditHistory) -> None:
        self.session, self.history = session, history
        self._views: dict[str, ObjectView] = {}
        self._seen: tuple[History, int] | None = None
        items = self._current()
        self._active: str | None = items[0].track_id if items else None

    # -- reading ------------------------------------------------------------------------------

    def _current(self) -> list[ObjectView]:
        """The views, brought up to date with the document when it has changed."""
        steps = self.history.steps
        if self._seen != (steps, steps.revision):
            media_id = self.session.media.id
            refs = [r for r in self.session.file.project.mask_tracks.values() if r.media_id == media_id]
            views = {}
            for ref in refs:
                view = self._views.get(ref.id) or ObjectView(ref, self._open(ref))
                view.ref = ref
                views[ref.id] = view
            self._views, self._seen = views, (steps, steps.revision)
        return list(self._views.values())

    @overload
    def __getitem__(self, index: int) -> ObjectView: ...
    @overload
    def __getitem__(self, index: slice) -> list[ObjectView]: ...

    def __getitem__(self, index: int | slice) -> ObjectView | list[ObjectView]:
        return self._current()[index]

    def __len__(self) -> int:
        return len(self._current())

    def get(self, track_id: str | None) -> ObjectView:
        """The object of ``track_id`` (the active one's id may be ``None``: none is)."""
        for obj in self._current():
            if obj.track_id == track_id:
                return obj
        raise InvalidArgumentError("no object is selected" if track_id is None
                                   else f"no object {track_id!r}", hint="add an object first")

    @property
    def active(self) -> str | None:
        """The object tools and propagation work on (after a deletion: the last one left)."""
        ids = [obj.track_id for obj in self._current()]
        if self._active not in ids:
            self._active = ids[-1] if ids else None
        return self._active

    def select(self, track_id: str) -> None:
        """Make ``track_id`` the active object."""
        self._active = self.get(track_id).track_id

    def set_visible(self, track_id: str, visible: bool) -> None:
        """Show or hide an object's masks in the viewer."""
        self.get(track_id).visible = visible

    def overlays(self, index: int) -> list[tuple[Mask, tuple[int, int, int]]]:
        """Masks of the visible objects at frame ``index``, with their colours."""
        out = []
        for obj in self._current():
            if obj.visible:
                mask = obj.store.read(index)
                if mask is not None and mask.any():
                    out.append((mask, obj.colour))
        return out

    def lane(self, track_id: str) -> np.ndarray:
        """Per-frame states of an object's masks (empty, keyframe, propagated) for its lane."""
        return self.get(track_id).store.states()

    # -- editing ------------------------------------------------------------------------------

    @writes
    def add(self, name: str | None = None) -> str:
        """A new, empty mask track on the footage; it becomes the active object."""
        session = self.session
        taken = set(session.file.project.mask_tracks)
        k = 1
        while f"obj{k}" in taken or (session.folder / "masks" / f"obj{k}").exists():
            k += 1  # a deleted object's masks stay on disk (for undo): never reuse its id
        width, height = session.size
        ref = MaskTrackRef(id=f"obj{k}", name=name or f"object {k}", color=object_colour(k),
                           media_id=session.media.id, frames=session.frames, width=width, height=height)
        masks = self._open(ref, create=True)
        self.history.do(edits.add_mask_track(ref))
        self._views[ref.id] = ObjectView(ref, masks)
        self._active = ref.id
        return ref.id

    def active_or_new(self) -> ObjectView:
        """The active object, or a new one when there is none."""
        return self.get(self.active if self.active is not None else self.add())

    @writes
    def rename(self, track_id: str, name: str) -> None:
        """Rename an object (in the project)."""
        self.history.do(edits.set_mask_track(track_id, name=name))

    @writes
    def recolour(self, track_id: str, colour: tuple[int, int, int]) -> None:
        """Give an object another colour (in the project)."""
        self.history.do(edits.set_mask_track(track_id, color=colour))

    @writes
    def delete(self, track_id: str) -> None:
        """Take an object out of the project (its masks stay on disk, for undo)."""
        self.history.do(edits.remove_mask_track(track_id))

    def _open(self, ref: MaskTrackRef, *, create: bool = False) -> MaskTrackStore:
        return MaskTrackStore(self.session.folder / "masks" / ref.id, ref.frames, ref.width,
                              ref.height, create=create)
