"""The editor's view-model without a window: clicks, masks, propagation, undo, transport, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.document import store
from kinema.document.masktrack import FrameState
from kinema.media import open_video
from kinema.media.writer import VideoWriter
from kinema.ui.editor import Editor
from kinema.vision.maskops import iou
from kinema.vision.synthetic import moving_object

N = 30


@pytest.fixture
def scene(tmp_path: Path):
    s = moving_object(n=N, size=(320, 240), seed=1)
    clip = tmp_path / "scene.mkv"
    with VideoWriter(clip, 24, (320, 240), codec="h264", options={"qp": "0", "crf": "0"}) as w:
        for f in s.frames:
            w.write(f)
    return clip, s.masks


@pytest.fixture
def editor(scene):
    ed = Editor.open(scene[0])
    yield ed
    ed.close()


def centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_opening_a_video_makes_a_project_beside_it(scene, editor: Editor):
    clip, _ = scene
    assert editor.folder == clip.with_suffix(".kinema") and (editor.folder / "project.json").is_file()
    assert editor.frames == N and editor.fps == 24 and editor.objects == []
    with pytest.raises(Exception, match="open in another kinema"):
        Editor.open(clip)  # the lock holds while the editor is open


def test_click_gives_a_mask_at_once_and_undo_takes_it_back(scene, editor: Editor):
    _, masks = scene
    mask = editor.click(*centre(masks[0]))
    assert iou(mask, masks[0]) >= 0.9
    obj = editor.objects[0]
    assert obj.store.state(0) == FrameState.KEYFRAME and editor.overlays()[0][1] == obj.colour
    ys, xs = np.nonzero(masks[0])
    editor.click(float(xs.min() + 3), float(ys.mean()), positive=False)  # not this part
    assert obj.store.read(0).sum() < mask.sum()
    editor.undo()
    assert np.array_equal(obj.store.read(0), mask)
    editor.undo()
    assert obj.store.read(0) is None and obj.store.state(0) == FrameState.EMPTY
    editor.undo()  # the object itself
    assert editor.objects == [] and not store.load(editor.folder).mask_tracks
    editor.redo()
    editor.redo()
    assert np.array_equal(editor.objects[0].store.read(0), mask)


def test_propagate_fills_the_lane_and_a_later_click_corrects(scene, editor: Editor):
    _, masks = scene
    editor.click(*centre(masks[0]))
    job = editor.propagate("forward", 10)
    assert job.wait(60) and job.error is None and (job.done, job.total) == (11, 11)
    lane = editor.lane(editor.active)
    assert lane[0] == FrameState.KEYFRAME and (lane[1:11] == FrameState.PROPAGATED).all()
    assert (lane[11:] == FrameState.EMPTY).all()
    assert np.mean([iou(editor.objects[0].store.read(i), masks[i]) for i in range(11)]) >= 0.9
    editor.seek(20)
    editor.box(*(float(v) for v in _bbox(masks[20])))
    back = editor.propagate("backward", 4).wait(60)
    assert back and (editor.lane(editor.active)[16:20] == FrameState.PROPAGATED).all()


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4


def test_brush_adjust_and_objects(editor: Editor):
    first = editor.add_object("ball")
    editor.brush(100, 100, 10)
    obj = editor.objects[0]
    assert obj.store.read(0)[100, 100] and obj.store.read(0).sum() == pytest.approx(np.pi * 100, rel=0.1)
    grown = editor.adjust(grow=3)
    assert grown.sum() > np.pi * 160
    editor.brush(100, 100, 20, erase=True)
    assert not obj.store.read(0).any()
    second = editor.add_object()
    assert second != first and editor.active == second
    editor.rename(first, "red ball")
    editor.recolour(first, (1, 2, 3))
    project = editor.file.project
    assert project.mask_tracks[first].name == "red ball" and project.mask_tracks[first].color == (1, 2, 3)
    editor.delete_object(second)
    assert [o.track_id for o in editor.objects] == [first]
    editor.undo()
    assert {o.track_id for o in editor.objects} == {first, second}


def test_playback_follows_the_clock_and_drops_frames(editor: Editor):
    editor.toggle_play()
    t0, _ = editor._clock
    editor.tick(t0 + 0.5)  # half a second at 24 fps, however few frames were drawn
    assert editor.playhead == 12
    editor.tick(t0 + 10)
    assert editor.playhead == N - 1 and not editor.playing  # stops at the out point
    editor.seek(5)
    editor.shuttle("l")
    editor.shuttle("l")
    assert editor.speed == 2
    editor.shuttle("j")
    assert editor.speed == -1
    editor.shuttle("k")
    assert not editor.playing
    editor.step(1)
    editor.set_in()
    editor.step(3)
    editor.set_out()
    editor.home()
    assert editor.playhead == 6
    editor.end()
    assert editor.playhead == 9


def test_exports_run_as_jobs(scene, editor: Editor, tmp_path: Path):
    _, masks = scene
    editor.click(*centre(masks[0]))
    editor.propagate("forward").wait(60)
    matte = editor.export("matte", tmp_path / "matte.mov")
    render = editor.export("render", tmp_path / "r.mp4", stop=5)
    assert matte.wait(60) and render.wait(60) and not matte.error and not render.error
    with open_video(tmp_path / "matte.mov", alpha=True) as m:
        assert len(m) == N and iou(m[15][..., 3] > 127, masks[15]) >= 0.85
    bad = editor.export("matte", tmp_path / "matte.mov")  # exists: an error, as a notification
    bad.wait(10)
    editor.poll_jobs()
    assert editor.notes[-1].error and "already exists" in editor.notes[-1].text


def test_undo_and_redo_with_nothing_to_do_are_no_ops(editor: Editor):
    editor.undo()
    editor.redo()
    editor.add_object()
    editor.undo()
    editor.set_layer(editor.file.project.timeline.video_layers[0].id, visible=False)
    editor.redo()  # the edit after the undo left nothing to redo
    assert editor.objects == [] and not editor.file.project.timeline.video_layers[0].visible


def test_a_new_object_never_shows_a_deleted_ones_masks(editor: Editor):
    first = editor.add_object()
    editor.brush(100, 100, 10)
    editor.delete_object(first)
    second = editor.add_object()
    assert second != first and editor.objects[-1].store.read(0) is None


def test_errors_become_notes(editor: Editor):
    editor.guard(lambda: editor.propagate("forward"))
    assert editor.notes[-1].error and "no object" in editor.notes[-1].text


def test_scrubbing_uses_the_proxy_once_built(tmp_path: Path):
    from kinema.media.synth import decode_index, write_clip

    clip = write_clip(tmp_path / "hd.mp4", n=12, size=(960, 720), fps=24)
    ed = Editor.open(clip)
    try:
        assert ed._proxy is None
        job = ed.use_proxy()
        assert job is not None and job.wait(60) and job.error is None and ed._proxy is not None
        ed.seek(7)
        fast, exact = ed.frame(fast=True), ed.frame()
        assert fast.shape == (540, 720, 3) and exact.shape == (720, 960, 3)  # the 540p proxy
        assert decode_index(fast) == decode_index(exact) == 7
    finally:
        ed.close()


def test_layers_are_composited_live(editor: Editor):
    from kinema.document import edits
    from kinema.document.model import SolidItem, VideoLayer

    plain = editor.picture()
    assert np.array_equal(plain, editor.frame())  # one plain layer: the footage itself
    editor.file.history.do(edits.add_layer(VideoLayer(
        id="tint", name="tint", items=[SolidItem(id="s", color=(0, 0, 255, 255), duration=N)])))
    editor.set_layer("tint", blend_mode="multiply")
    shown = editor.picture()
    assert shown[..., :2].max() == 0 and np.abs(shown[..., 2].astype(int) - plain[..., 2]).max() <= 1
    editor.set_layer("tint", visible=False)
    assert np.array_equal(editor.picture(), plain)


def test_a_read_only_folder_gets_its_project_elsewhere(scene, tmp_path: Path, monkeypatch):
    import os

    from kinema.ui import editor as editor_module

    clip, _ = scene
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = editor_module.project_for(clip)
    assert folder.parent == tmp_path / "data" / "kinema" / "projects" and folder.suffix == ".kinema"


def test_the_editor_runs_sam2_when_a_model_is_there(scene, tmp_path: Path):
    from kinema.app.segment_jobs import ModelChoice
    from kinema.models.tiny import build_tiny

    model = build_tiny("sam2", tmp_path / "sam2")
    ed = Editor.open(scene[0], backend="sam2", choice=ModelChoice(model=str(model)))
    try:
        mask = ed.click(100, 120)
        assert mask.shape == (240, 320) and mask.dtype == bool  # random weights: any mask will do
        job = ed.propagate("forward", 5)
        assert job.wait(120) and job.error is None
        assert list(ed.lane(ed.active)[:7]) == [1, 2, 2, 2, 2, 2, 0]
    finally:
        ed.close()
