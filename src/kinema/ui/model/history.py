"""Undo and redo in the editor: the project's one history, document and mask edits alike."""

from __future__ import annotations

from kinema.document.edits import Change, Edit, History
from kinema.ui.model.session import Session, writes


class EditHistory:
    """The open project's :class:`~kinema.document.edits.History`: every edit the editor makes
    to the document (objects, layers) and to masks on disk (clicks, boxes, strokes) is one step
    of it, so undo and redo take them back in the order they were made. With nothing to undo or
    redo they do nothing."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def steps(self) -> History:
        """The history itself (a new one after :meth:`Session.recover`)."""
        return self.session.file.history

    @property
    def revision(self) -> int:
        """Goes up with every step, undo and redo: views redraw when it moves."""
        return self.steps.revision

    @property
    def undo_label(self) -> str | None:
        """What undo would take back (the Edit menu's ``Undo <label>``), if anything."""
        return self.steps.undo_label

    @property
    def redo_label(self) -> str | None:
        """What redo would make again, if anything."""
        return self.steps.redo_label

    @writes
    def do(self, step: Edit | Change) -> None:
        """Make ``step`` (a document edit, or a change outside the document) and record it."""
        self.steps.do(step)

    @writes
    def undo(self) -> str | None:
        """Take back the last step; returns its label (``None``: there was nothing to undo)."""
        return None if self.undo_label is None else self.steps.undo()

    @writes
    def redo(self) -> str | None:
        """Make the last undone step again; returns its label (``None``: nothing to redo)."""
        return None if self.redo_label is None else self.steps.redo()
