"""Undo and redo restore the document exactly; a failing edit changes nothing."""

from __future__ import annotations

import pytest

from kinema.core.errors import InvalidArgumentError
from kinema.document import edits
from kinema.document.model import LayerMask, MaskTrackRef, VideoLayer
from test_document import sample_project


def test_undo_redo_restore_exactly():
    project = sample_project()
    original = project.model_dump()
    changes: list[str] = []
    history = edits.History(project, on_change=lambda p: changes.append(p.name))
    history.do(edits.add_layer(VideoLayer(id="l2", name="fg")))
    history.do(edits.set_layer("l2", blend_mode="screen", visible=False))
    history.do(edits.move_layer("l2", 0))
    assert [layer.id for layer in project.timeline.video_layers] == ["l2", "l1"]
    after = project.model_dump()
    assert history.undo_label == "Move layer"
    for _ in range(3):
        history.undo()
    assert project.model_dump() == original
    assert history.redo_label == "Add layer fg"
    for _ in range(3):
        history.redo()
    assert project.model_dump() == after
    assert len(changes) == 9
    with pytest.raises(InvalidArgumentError, match="nothing to redo"):
        history.redo()


def test_a_failing_or_invalid_edit_changes_nothing():
    project = sample_project()
    before = project.model_dump()
    history = edits.History(project)
    with pytest.raises(InvalidArgumentError, match="no layer"):
        history.do(edits.set_layer("nope", visible=False))
    with pytest.raises(InvalidArgumentError, match="no settable field"):
        history.do(edits.set_layer("l1", items=[]))
    with pytest.raises(InvalidArgumentError, match="blend_mode"):
        history.do(edits.set_layer("l1", blend_mode="glow"))
    assert project.model_dump() == before and history.undo_label is None


def test_a_new_edit_clears_redo_and_refs_are_checked():
    project = sample_project()
    history = edits.History(project)
    history.do(edits.add_layer(VideoLayer(id="l2", name="fg")))
    history.undo()
    history.do(edits.add_mask_track(MaskTrackRef(id="t1", name="dancer", media_id="m1",
                                                 frames=100, width=64, height=48)))
    assert history.redo_label is None
    history.do(edits.set_layer("l1", mask=LayerMask(track_id="t1", feather=4.0)))
    assert project.timeline.video_layers[0].mask.feather == 4.0
    with pytest.raises(InvalidArgumentError, match="unknown media"):
        history.do(edits.add_mask_track(MaskTrackRef(id="t2", name="x", media_id="zz",
                                                     frames=1, width=1, height=1)))
