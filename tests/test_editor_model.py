"""The editor's view-model without a window: clicks, masks, propagation, undo, transport, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinema.core.jobs import Progress
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
    assert editor.session.frames == N and editor.session.fps == 24 and not editor.objects
    with pytest.raises(Exception, match="open in another kinema"):
        Editor.open(clip)  # the lock holds while the editor is open


def test_click_gives_a_mask_at_once_and_undo_takes_it_back(scene, editor: Editor):
    _, masks = scene
    mask = editor.tools.click(*centre(masks[0]))
    assert iou(mask, masks[0]) >= 0.9
    obj = editor.objects[0]
    assert obj.store.state(0) == FrameState.KEYFRAME and editor.objects.overlays(0)[0][1] == obj.colour
    ys, xs = np.nonzero(masks[0])
    editor.tools.click(float(xs.min() + 3), float(ys.mean()), positive=False)  # not this part
    assert obj.store.read(0).sum() < mask.sum()
    editor.history.undo()
    assert np.array_equal(obj.store.read(0), mask)
    editor.history.undo()
    assert obj.store.read(0) is None and obj.store.state(0) == FrameState.EMPTY
    editor.history.undo()  # the object itself
    assert not editor.objects and not store.load(editor.folder).mask_tracks
    editor.history.redo()
    editor.history.redo()
    assert np.array_equal(editor.objects[0].store.read(0), mask)


def test_propagate_fills_the_lane_and_a_later_click_corrects(scene, editor: Editor):
    _, masks = scene
    editor.tools.click(*centre(masks[0]))
    job = editor.propagation.propagate("forward", 10)
    assert job.wait(60) and job.error is None and job.progress == Progress(11, 11)
    lane = editor.objects.lane(editor.objects.active)
    assert lane[0] == FrameState.KEYFRAME and (lane[1:11] == FrameState.PROPAGATED).all()
    assert (lane[11:] == FrameState.EMPTY).all()
    assert np.mean([iou(editor.objects[0].store.read(i), masks[i]) for i in range(11)]) >= 0.9
    editor.transport.seek(20)
    editor.tools.box(*(float(v) for v in _bbox(masks[20])))
    back = editor.propagation.propagate("backward", 4).wait(60)
    assert back and (editor.objects.lane(editor.objects.active)[16:20] == FrameState.PROPAGATED).all()


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min() - 3, ys.min() - 3, xs.max() + 4, ys.max() + 4


def test_brush_adjust_and_objects(editor: Editor):
    first = editor.objects.add("ball")
    editor.tools.brush(100, 100, 10)
    obj = editor.objects[0]
    assert obj.store.read(0)[100, 100] and obj.store.read(0).sum() == pytest.approx(np.pi * 100, rel=0.1)
    grown = editor.tools.adjust(grow=3)
    assert grown.sum() > np.pi * 160
    editor.tools.brush(100, 100, 20, erase=True)
    assert not obj.store.read(0).any()
    second = editor.objects.add()
    assert second != first and editor.objects.active == second
    editor.objects.rename(first, "red ball")
    editor.objects.recolour(first, (1, 2, 3))
    project = editor.file.project
    assert project.mask_tracks[first].name == "red ball" and project.mask_tracks[first].color == (1, 2, 3)
    editor.objects.delete(second)
    assert [o.track_id for o in editor.objects] == [first]
    editor.history.undo()
    assert {o.track_id for o in editor.objects} == {first, second}


def test_playback_follows_the_clock_and_drops_frames(editor: Editor):
    play = editor.transport
    play.toggle_play()
    t0, _ = play._clock
    play.tick(t0 + 0.5)  # half a second at 24 fps, however few frames were drawn
    assert play.playhead == 12
    play.tick(t0 + 10)
    assert play.playhead == N - 1 and not play.playing  # stops at the out point
    play.seek(5)
    play.shuttle("l")
    play.shuttle("l")
    assert play.speed == 2
    play.shuttle("j")
    assert play.speed == -1
    play.shuttle("k")
    assert not play.playing
    play.step(1)
    play.set_in()
    play.step(3)
    play.set_out()
    play.home()
    assert play.playhead == 6
    play.end()
    assert play.playhead == 9


def test_exports_run_as_jobs(scene, editor: Editor, tmp_path: Path):
    _, masks = scene
    editor.tools.click(*centre(masks[0]))
    editor.propagation.propagate("forward").wait(60)
    matte = editor.exports.export("matte", tmp_path / "matte.mov")
    render = editor.exports.export("render", tmp_path / "r.mp4", stop=5)
    assert matte.wait(60) and render.wait(60) and not matte.error and not render.error
    with open_video(tmp_path / "matte.mov", alpha=True) as m:
        assert len(m) == N and iou(m[15][..., 3] > 127, masks[15]) >= 0.85
    bad = editor.exports.export("matte", tmp_path / "matte.mov")  # exists: an error, as a notification
    bad.wait(10)
    editor.jobs.poll()
    assert editor.session.notes[-1].error and "already exists" in editor.session.notes[-1].text


def test_undo_and_redo_with_nothing_to_do_are_no_ops(editor: Editor):
    editor.history.undo()
    editor.history.redo()
    editor.objects.add()
    editor.history.undo()
    editor.layers.show(editor.layers.items[0].id, False)
    editor.history.redo()  # the edit after the undo left nothing to redo
    assert not editor.objects and not editor.file.project.timeline.video_layers[0].visible


def test_a_new_object_never_shows_a_deleted_ones_masks(editor: Editor):
    first = editor.objects.add()
    editor.tools.brush(100, 100, 10)
    editor.objects.delete(first)
    second = editor.objects.add()
    assert second != first and editor.objects[-1].store.read(0) is None


def test_errors_become_notes(editor: Editor):
    editor.session.guard(lambda: editor.propagation.propagate("forward"))
    assert editor.session.notes[-1].error and "no object" in editor.session.notes[-1].text


def test_scrubbing_uses_the_proxy_once_built(tmp_path: Path):
    from kinema.media.synth import decode_index, write_clip

    clip = write_clip(tmp_path / "hd.mp4", n=12, size=(960, 720), fps=24)
    ed = Editor.open(clip)
    try:
        assert ed.picture._proxy is None
        job = ed.picture.use_proxy()
        assert job is not None and job.wait(60) and job.error is None and ed.picture._proxy is not None
        ed.transport.seek(7)
        fast, exact = ed.picture.frame(fast=True), ed.picture.frame()
        assert fast.shape == (540, 720, 3) and exact.shape == (720, 960, 3)  # the 540p proxy
        assert decode_index(fast) == decode_index(exact) == 7
    finally:
        ed.close()


def test_layers_are_composited_live(editor: Editor):
    from kinema.document import edits
    from kinema.document.model import SolidItem, VideoLayer

    plain = editor.picture.shown()
    assert np.array_equal(plain, editor.picture.frame())  # one plain layer: the footage itself
    editor.file.history.do(edits.add_layer(VideoLayer(
        id="tint", name="tint", items=[SolidItem(id="s", color=(0, 0, 255, 255), duration=N)])))
    editor.layers.set_blend("tint", "multiply")
    shown = editor.picture.shown()
    assert shown[..., :2].max() == 0 and np.abs(shown[..., 2].astype(int) - plain[..., 2]).max() <= 1
    editor.layers.show("tint", False)
    assert np.array_equal(editor.picture.shown(), plain)


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
        mask = ed.tools.click(100, 120)
        assert mask.shape == (240, 320) and mask.dtype == bool  # random weights: any mask will do
        job = ed.propagation.propagate("forward", 5)
        assert job.wait(120) and job.error is None
        assert list(ed.objects.lane(ed.objects.active)[:7]) == [1, 2, 2, 2, 2, 2, 0]
    finally:
        ed.close()


def test_rename_and_recolour_share_the_one_history(editor: Editor):
    """add, undo, add, rename, undo, recolour, redo: the last redo has nothing to do."""
    history, objects = editor.history, editor.objects
    first = objects.add("a")
    history.undo()
    second = objects.add("b")
    objects.rename(second, "renamed")
    assert history.undo() == "Change name" and objects.get(second).name == "b"
    objects.recolour(second, (9, 9, 9))
    assert history.redo() is None and history.redo_label is None  # a no-op, not an error
    assert [(o.track_id, o.name, o.colour) for o in objects] == [(second, "b", (9, 9, 9))]
    assert first != second and first not in editor.file.project.mask_tracks
    assert history.undo() == "Change color" and history.undo() == "Add mask b"
    assert not objects and history.undo() is None


def test_undoing_a_mask_edit_restores_the_frame_on_disk(editor: Editor):
    from kinema.document.masktrack import MaskTrackStore

    track = editor.objects.add()
    first = editor.tools.brush(50, 50, 10)
    editor.tools.brush(120, 80, 15)

    def on_disk() -> MaskTrackStore:
        return MaskTrackStore(editor.folder / "masks" / track, N, 320, 240)

    editor.history.undo()
    assert np.array_equal(on_disk().read(0), first) and on_disk().state(0) == FrameState.KEYFRAME
    editor.history.undo()
    assert on_disk().read(0) is None and on_disk().state(0) == FrameState.EMPTY
    assert editor.history.redo() == "Paint object 1 at frame 0"
    assert np.array_equal(on_disk().read(0), first)
    revision = editor.history.revision
    editor.history.redo()
    editor.history.redo()  # nothing left to redo: nothing happens
    assert editor.history.revision == revision + 1 and on_disk().read(0)[80, 120]


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_undo_and_redo_like_a_reference(scene, editor: Editor, seed: int):
    """Sequences of add, rename, recolour, brush, click, undo and redo (any order, with nothing
    to undo or redo at times) leave the document and the masks on disk as a reference history
    of whole states does."""
    import random

    from kinema.document.masktrack import MaskTrackStore

    _, masks = scene
    rng = random.Random(seed)
    State = tuple[dict[str, tuple[str, tuple[int, int, int]]], dict[tuple[str, int], bytes | None]]
    state: State = ({}, {})
    undo: list[State] = []
    redo: list[State] = []

    def record(change: State) -> None:
        nonlocal state
        undo.append(state)
        redo.clear()
        state = change

    def painted(track: str, mask: np.ndarray) -> State:
        return state[0], {**state[1], (track, editor.transport.playhead): np.packbits(mask).tobytes()}

    for _ in range(30):
        op = rng.choice(["add", "rename", "recolour", "brush", "erase", "click", "undo", "undo",
                         "redo", "redo", "seek"])
        active = editor.objects.active
        if op == "seek":
            editor.transport.seek(rng.choice([0, 4]))
        elif op == "undo":
            editor.history.undo()
            if undo:
                redo.append(state)
                state = undo.pop()
        elif op == "redo":
            editor.history.redo()
            if redo:
                undo.append(state)
                state = redo.pop()
        elif op == "add" or active is None:
            track = editor.objects.add()
            ref = editor.file.project.mask_tracks[track]
            record(({**state[0], track: (ref.name, tuple(ref.color))}, state[1]))
        elif op == "rename":
            editor.objects.rename(active, f"name {rng.randint(0, 99)}")
            record(({**state[0], active: (editor.objects.get(active).name, state[0][active][1])}, state[1]))
        elif op == "recolour":
            colour = (rng.randint(0, 255), 0, 0)
            editor.objects.recolour(active, colour)
            record(({**state[0], active: (state[0][active][0], colour)}, state[1]))
        elif op in ("brush", "erase"):
            mask = editor.tools.brush(rng.uniform(0, 320), rng.uniform(0, 240), rng.uniform(5, 40),
                                      erase=op == "erase")
            record(painted(active, mask))
        else:
            ys, xs = np.nonzero(masks[editor.transport.playhead])
            record(painted(active, editor.tools.click(float(xs.mean()), float(ys.mean()))))

        tracks = {t: (r.name, tuple(r.color)) for t, r in editor.file.project.mask_tracks.items()}
        assert tracks == state[0]
        assert [o.track_id for o in editor.objects] == list(state[0])
        for folder in (editor.folder / "masks").iterdir():
            on_disk = MaskTrackStore(folder, N, 320, 240)
            for frame in (0, 4):
                mask = on_disk.read(frame)
                expected = state[1].get((folder.name, frame))
                assert (None if mask is None else np.packbits(mask).tobytes()) == expected
    assert store.load(editor.folder, recover=True).mask_tracks == editor.file.project.mask_tracks
