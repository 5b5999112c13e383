"""Style layers in the editor, without a window: a painted PNG dropped at the playhead becomes a
key of the selected object's style layer as one undoable step (autosaved), bad drops are one
note and change nothing, and propagating runs as a job whose frames the viewer then shows,
changed only inside the object; the window routes a drop to the playhead and draws the keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.evaluate import FRAME_NAME, cache_folder
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import Progress
from kinema.document import store
from kinema.document.model import StyleItem
from kinema.media.image import encode_png
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from test_editor_window import display  # noqa: F401  (the Xvfb fixture)

W, H, N = 96, 64, 12


def disc(i: int, radius: int = 14) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (25 + 3 * i)) ** 2 + (yy - 30) ** 2 < radius**2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder = tracked_project(tmp_path / "shot", video, [disc(i) for i in range(N)], "ball")
    return folder


@pytest.fixture
def editor(project: Path):
    ed = Editor(project)
    yield ed
    ed.close()


def paint(path: Path, seed: int, size: tuple[int, int] = (W, H)) -> Path:
    rng = np.random.default_rng(seed)
    path.write_bytes(encode_png(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)))
    return path


def style_layers(ed: Editor) -> list[tuple[str, StyleItem]]:
    return [(layer.id, item) for layer in ed.session.file.project.timeline.video_layers
            for item in layer.items if isinstance(item, StyleItem)]


def finish(ed: Editor, timeout: float = 120) -> None:
    for job in ed.jobs.items:
        assert job.wait(timeout) and job.error is None, job.error


def test_a_dropped_png_is_a_key_at_the_playhead_undone_and_redone(editor: Editor, project: Path,
                                                                  tmp_path: Path):
    ed = editor
    key = paint(tmp_path / "three.png", 1)
    ed.transport.seek(3)
    revision = ed.history.revision
    assert ed.styles.drop([key]) == "s1"
    assert ed.history.revision == revision + 1 and ed.history.undo_label == "Paint keys of ball"
    ((layer_id, item),) = style_layers(ed)
    assert item.track_id == "t1" and [(k.frame, k.path) for k in item.keys] == [(3, str(key.resolve()))]
    assert ed.styles.key_frames(layer_id) == [3] and ed.styles.layer_of("t1") == layer_id
    assert ed.styles.key_frames("l1") == []  # the footage's layer has no keys
    # autosaved as every edit is: the saved project has it only once saved
    def saved(recover: bool) -> list[StyleItem]:
        return [i for lay in store.load(project, recover=recover).timeline.video_layers
                for i in lay.items if isinstance(i, StyleItem)]

    assert [k.frame for k in saved(True)[0].keys] == [3] and saved(False) == []
    # a second key on the same layer, another frame
    ed.transport.seek(8)
    assert ed.styles.drop([paint(tmp_path / "eight.png", 2)]) == "s1"
    assert ed.styles.key_frames(layer_id) == [3, 8]
    assert ed.history.undo() == "Paint keys of ball"
    assert ed.styles.key_frames(layer_id) == [3]
    assert ed.history.undo() == "Paint keys of ball"
    assert style_layers(ed) == [] and ed.styles.layer_of("t1") is None
    assert ed.history.redo() == "Paint keys of ball"
    ((again, item),) = style_layers(ed)
    assert again == layer_id and [k.frame for k in item.keys] == [3]


def test_bad_drops_are_one_note_and_change_nothing(editor: Editor, tmp_path: Path):
    ed = editor
    ed.transport.seek(3)
    small = paint(tmp_path / "small.png", 1, size=(W // 2, H // 2))
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    revision, layers = ed.history.revision, len(ed.layers.items)
    cases = [([small], f"is {W // 2}x{H // 2} but shot.mp4 is {W}x{H}"),
             ([text], "cannot be read as an image"),
             ([tmp_path / "gone.png"], "key image not found"),
             ([small, text], "2 files were dropped")]
    for paths, message in cases:
        assert ed.session.guard(lambda paths=paths: ed.styles.drop(paths)) is None
        note = ed.session.notes[-1]
        assert note.error and message in note.text, note.text
    assert (ed.history.revision, len(ed.layers.items)) == (revision, layers)
    ed.objects.delete("t1")
    assert ed.objects.active is None
    ed.session.guard(lambda: ed.styles.drop([paint(tmp_path / "fine.png", 3)]))
    assert ed.session.notes[-1].error and "no object is selected" in ed.session.notes[-1].text
    assert style_layers(ed) == []
    with pytest.raises(InvalidArgumentError, match="no style layer"):
        ed.styles.propagate()


def test_propagating_is_a_job_and_the_viewer_then_shows_the_style_inside_the_object(
        editor: Editor, project: Path, tmp_path: Path):
    ed = editor
    ed.transport.seek(3)
    key = paint(tmp_path / "three.png", 1)
    ed.styles.drop([key])
    ed.transport.seek(6)
    footage = ed.picture.frame().astype(int)
    assert (ed.picture.shown().astype(int) == footage).all()  # not propagated: nothing shows
    job = ed.styles.propagate()
    with pytest.raises(InvalidArgumentError, match="propagation is running"):
        ed.styles.propagate()
    finish(ed)
    assert job.progress == Progress(N, N, "frames", "style s1")  # one event per frame
    assert ed.busy()  # until poll() notes the end
    ed.poll()
    assert not ed.busy() and ed.styles.job is None
    assert ed.session.notes[-1].text == f"style propagated: {N} frames styled, 0 kept"
    cache = cache_folder(project, "s1")
    assert sorted(p.name for p in cache.glob("*.png")) == [FRAME_NAME.format(i) for i in range(N)]
    # frame 6 is no key: the viewer shows the propagated style inside the ball and the footage
    # everywhere else (the feathered edge may reach a few pixels past the mask)
    shown = ed.picture.shown().astype(int)
    changed = np.abs(shown - footage).max(axis=2) > 2
    grown = disc(6, 18)
    assert not (changed & ~grown).any()
    assert changed[disc(6, 10)].mean() > 0.5
    # nothing changed: a second run styles nothing; a key repainted on disk is taken in first
    finish(ed)
    paint(key, 5)
    revision = ed.history.revision
    ed.styles.propagate()
    assert ed.history.revision == revision + 1 and ed.history.undo_label == "Take in changed keys"
    assert "s1: key 3 changed" in [n.text for n in ed.session.notes]
    finish(ed)
    ed.poll()
    assert ed.session.notes[-1].text == f"style propagated: {N} frames styled, 0 kept"
    ed.styles.propagate()
    finish(ed)
    ed.poll()
    assert ed.session.notes[-1].text == f"style propagated: 0 frames styled, {N} kept"


def test_the_job_works_on_a_copy_of_the_document(editor: Editor, tmp_path: Path):
    ed = editor
    ed.transport.seek(3)
    ed.styles.drop([paint(tmp_path / "three.png", 1)])
    job = ed.styles.propagate()
    ed.history.undo()  # the layer goes while the job runs: the job still has it
    finish(ed)
    ed.poll()
    assert job.error is None and [u.item_id for u in job.result] == ["s1"]
    assert style_layers(ed) == []


def test_a_cancelled_propagation_is_dropped_quietly(editor: Editor, tmp_path: Path, monkeypatch):
    import threading

    import kinema.ui.model.style_keys as style_keys

    release = threading.Event()

    def slow(project, folder, **_):  # one frame, then waits to be cancelled
        yield Progress(1, N, "frames", "style s1")
        release.wait(30)
        yield Progress(2, N, "frames", "style s1")
        return []

    monkeypatch.setattr(style_keys, "update_styles", slow)
    ed = editor
    ed.transport.seek(3)
    ed.styles.drop([paint(tmp_path / "three.png", 1)])
    job = ed.styles.propagate()
    while job.progress is None:
        job.wait(0.01)
    job.cancel()
    release.set()
    assert job.wait(30) and job.state == "cancelled"
    notes = len(ed.session.notes)
    assert ed.poll() == [] and ed.styles.job is None and not ed.busy()
    assert len(ed.session.notes) == notes  # nothing to say: the user cancelled it
    ed.styles.propagate()  # and it can run again


def test_a_drop_on_the_window_goes_to_the_playhead(editor: Editor, tmp_path: Path):
    from kinema.ui.window import Window, run_command

    ed = editor
    window = Window(ed)
    ed.transport.seek(5)
    window.dropped([str(paint(tmp_path / "five.png", 1))])
    assert style_layers(ed) == []  # taken in on the next UI frame, not in the callback
    window.take_drops()
    ((layer_id, _item),) = style_layers(ed)
    assert ed.styles.key_frames(layer_id) == [5]
    window.dropped([str(tmp_path / "gone.png")])
    window.take_drops()
    assert ed.session.notes[-1].error and "key image not found" in ed.session.notes[-1].text
    run_command(ed, f"style drop {paint(tmp_path / 'nine.png', 2)} 9")
    assert ed.styles.key_frames(layer_id) == [5, 9]
    with pytest.raises(InvalidArgumentError, match="style what"):
        run_command(ed, "style wobble")


def test_the_window_draws_key_markers_and_propagates(display: str, project: Path, tmp_path: Path):  # noqa: F811
    from kinema.media.image import read_image

    key, shot = paint(tmp_path / "nine.png", 1), tmp_path / "shot.png"
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}
    run = subprocess.run([sys.executable, "-m", "kinema", "edit", str(project), "--screenshot", str(shot),
                          "--size", "1000x700", "--do", f"seek 9; style drop {key}; style propagate; save"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    (item,) = [i for lay in store.load(project).timeline.video_layers for i in lay.items
               if isinstance(i, StyleItem)]
    assert [k.frame for k in item.keys] == [9]
    assert len(list(cache_folder(project, item.id).glob("*.png"))) == N
    image = read_image(shot)[..., :3].astype(int)
    timeline = image[700 - 230:]
    from kinema.ui.window import STYLE_KEY_COLOUR

    marker = np.all(np.abs(timeline - np.array(STYLE_KEY_COLOUR)) <= 8, axis=2)
    _ys, xs = np.nonzero(marker)
    # a diamond on the style layer's row at frame 9 of 12 (right of the notes, bottom left)
    assert len(xs) >= 12 and xs.max() - xs.min() <= 12
    assert 600 < xs.mean() < 900
