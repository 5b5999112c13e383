"""One history for document edits and changes outside the document (mask frames on disk)."""

from __future__ import annotations

import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.document import edits
from kinema.document.model import VideoLayer
from test_document import sample_project


class Box:
    """Something outside the document for changes to act on."""

    def __init__(self) -> None:
        self.value = 0

    def change(self, to: int) -> edits.Change:
        before = self.value

        def apply() -> None:
            self.value = to

        def revert() -> None:
            self.value = before

        return edits.Change(f"set {to}", apply, revert)


def test_changes_and_edits_take_turns_in_one_history():
    project, box = sample_project(), Box()
    saved: list[int] = []
    history = edits.History(project, on_change=lambda p: saved.append(len(p.timeline.video_layers)))
    history.do(box.change(1))
    history.do(edits.add_layer(VideoLayer(id="l2", name="fg")))
    history.do(box.change(2))
    assert (box.value, len(project.timeline.video_layers), history.revision) == (2, 2, 3)
    assert history.undo() == "set 2" and box.value == 1
    assert history.undo() == "Add layer fg" and len(project.timeline.video_layers) == 1
    assert history.undo() == "set 1" and box.value == 0
    assert history.undo_label is None and history.redo_label == "set 1"
    for _ in range(3):
        history.redo()
    assert (box.value, len(project.timeline.video_layers), history.revision) == (2, 2, 9)
    assert saved == [2, 1, 2]  # the autosave runs for document steps only
    history.undo()
    history.do(box.change(5))  # a new step: nothing to redo
    assert history.redo_label is None
    with pytest.raises(InvalidArgumentError, match="nothing to redo"):
        history.redo()


def test_a_failing_change_is_not_recorded_and_a_failing_revert_stays_undoable():
    history = edits.History(sample_project())

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        history.do(edits.Change("broken", fail, fail))
    assert history.undo_label is None and history.revision == 0
    history.do(edits.Change("stuck", lambda: None, fail))
    with pytest.raises(OSError):
        history.undo()
    assert history.undo_label == "stuck" and history.redo_label is None


def test_the_limit_counts_changes_and_edits_alike():
    project, box = sample_project(), Box()
    history = edits.History(project, limit=3)
    history.do(edits.add_layer(VideoLayer(id="l2", name="fg")))
    for k in range(1, 4):
        history.do(box.change(k))
    for _ in range(3):
        history.undo()
    assert box.value == 0 and history.undo_label is None  # the oldest step was forgotten
    assert len(project.timeline.video_layers) == 2
