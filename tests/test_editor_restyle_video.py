"""The Restyle panel's video engines with tiny models: AnimateDiff through the whole shot as a
job (step progress, each finished window handed to the UI thread as a preview the viewer shows
at the playhead), the movie in the project's media/ and on a new layer only once ``poll()``
runs, one undoable step; a cancelled job leaves no layer and no movie; a bad option is a note
before any job starts; wan-vace takes a reference picture."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from kinema.app.segment_jobs import ModelChoice
from kinema.core.errors import InvalidArgumentError
from kinema.document.masktrack import FrameState
from kinema.document.model import ClipItem
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from kinema.ui.window import run_command
from test_editor_window import display  # noqa: F401  (the Xvfb fixture)

W, H, N = 64, 48, 22


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (16 + i)) ** 2 + (yy - 24) ** 2 < 9**2


@pytest.fixture
def editor(tmp_path: Path, tiny_animatediff: Path):
    ed = Editor.open(write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24),
                     choice=ModelChoice(device="cpu"),
                     video_models={"animatediff": tiny_animatediff / "sd15-base",
                                   "motion": tiny_animatediff / "animatediff-v1-5-3",
                                   "canny": tiny_animatediff / "controlnet-canny-sd15"})
    ed.objects.add("ball")
    obj = ed.objects.get(ed.objects.active)
    obj.store.write_many(0, [disc(i) for i in range(N)], FrameState.PROPAGATED)
    obj.store.write(0, disc(0), FrameState.KEYFRAME)
    run_command(ed, "restyle engine animatediff")
    run_command(ed, "restyle window 8 3")
    run_command(ed, "restyle control canny 0.8")
    ed.restyle.strength, ed.restyle.seed = 0.8, 5
    yield ed
    ed.close()


def movies(ed: Editor) -> list[Path]:
    media = ed.folder / "media"
    return sorted(media.iterdir()) if media.exists() else []


def test_animatediff_restyles_the_shot_with_previews_and_one_undoable_layer(editor: Editor) -> None:
    ed, project = editor, editor.session.file.project
    layers, revision, pool = len(project.timeline.video_layers), ed.history.revision, dict(project.media)
    run_command(ed, "restyle run a red ball")
    job = ed.restyle.job
    assert job is not None and ed.busy()
    messages = set()
    while not job.finished:  # the step messages the progress bar shows
        if job.progress is not None and job.progress.message:
            messages.add(job.progress.message)
        time.sleep(0.002)
    assert job.error is None, job.error
    assert any(m.startswith("window ") and "step" in m for m in messages), messages
    # made on the worker: the movie is written, the document untouched until poll()
    (movie,) = [p for p in movies(ed) if p.suffix == ".mov"]
    assert movie.name.endswith("-animatediff-1.mov")
    assert (len(project.timeline.video_layers), ed.history.revision) == (layers, revision)
    latest = ed.restyle.video.receive()  # the finished windows reach the UI thread
    assert latest is not None and latest.first == 14 and len(latest.frames) == 8
    ed.transport.seek(16)
    shown = ed.restyle.video.preview(16)
    assert shown is not None and shown.shape == (H, W, 3)
    assert ed.restyle.video.preview(3) is None  # not in the latest window: the footage shows
    ed.transport.seek(0)
    assert ed.poll() == [] and not ed.busy()
    assert ed.restyle.video.preview(16) is None  # done: the layer shows instead
    assert ed.history.revision == revision + 1 and ed.history.undo_label == "Restyle ball (animatediff)"
    layer = project.timeline.video_layers[-1]
    (item,) = layer.items
    assert layer.name == "ball restyled" and isinstance(item, ClipItem)
    media = project.media[item.media_id]
    assert Path(media.path) == movie and media.frames == N and media.relative_path == f"media/{movie.name}"
    recipe = project.recipes[media.recipe_id]
    assert recipe.engine == "animatediff" and recipe.prompt == "a red ball" and recipe.seed == 5
    assert (recipe.window, recipe.overlap) == (8, 3) and recipe.track_id == ed.objects.active
    assert [(c.kind, c.weight) for c in recipe.controls] == [("canny", 0.8)]
    assert any("ball: 22 frames restyled in 4 windows" in n.text for n in ed.session.notes)
    # the viewer composites the new layer over the footage
    ed.transport.seek(10)
    assert not np.array_equal(ed.picture.shown(), ed.picture.frame())
    ed.history.undo()
    assert len(project.timeline.video_layers) == layers and project.media == pool
    assert media.recipe_id not in project.recipes
    ed.history.redo()
    assert project.timeline.video_layers[-1].items[0] == item
    # a second run writes a new movie: undo never points at frames made later
    ed.restyle.seed = 6
    ed.restyle.run()
    assert ed.restyle.job.wait(120)
    ed.poll()
    assert [p.name for p in movies(ed) if p.suffix == ".mov"][-1].endswith("-animatediff-2.mov")


def test_cancel_leaves_no_layer_and_no_movie(editor: Editor) -> None:
    ed, project = editor, editor.session.file.project
    video = ed.restyle.video
    layers, revision = len(project.timeline.video_layers), ed.history.revision
    seen = video._finished_window

    def first_window_then_cancel(first: int, frames: list[np.ndarray]) -> None:
        seen(first, frames)
        if video.job is not None:
            video.job.cancel()

    video._finished_window = first_window_then_cancel  # type: ignore[method-assign]
    run_command(ed, "restyle run a red ball")
    job = ed.restyle.job
    assert job is not None and job.wait(120)
    assert job.cancelled and job.error is None
    ed.poll()
    assert not ed.busy() and ed.restyle.job is None
    assert (len(project.timeline.video_layers), ed.history.revision) == (layers, revision)
    assert movies(ed) == [] and not (ed.folder / "media").exists()  # not even a partial file
    assert video.preview(0) is None and video.latest is None


def test_a_bad_option_is_a_note_before_any_job(editor: Editor, tmp_path: Path) -> None:
    ed = editor
    run_command(ed, "restyle window 40")
    ed.restyle.prompt = "a red ball"
    assert ed.session.guard(ed.restyle.run) is None
    assert "longer than the shot" in ed.session.notes[-1].text and ed.session.notes[-1].error
    assert ed.restyle.job is None and not ed.jobs.items and movies(ed) == []
    run_command(ed, "restyle window 8")
    run_command(ed, "restyle control depth 1")
    with pytest.raises(InvalidArgumentError, match="has no depth control"):
        ed.restyle.run()
    with pytest.raises(InvalidArgumentError, match="unknown restyle engine"):
        run_command(ed, "restyle engine sora")
    run_command(ed, "restyle control depth 0")
    ed.restyle.loras.append((tmp_path / "style.safetensors", 1.0))
    with pytest.raises(InvalidArgumentError, match="takes no LoRAs"):
        ed.restyle.run()
    assert ed.restyle.job is None and not ed.jobs.items


def test_wan_vace_takes_a_reference_picture(tmp_path: Path, tiny_wan_vace: Path) -> None:
    from kinema.media.image import write_image

    ed = Editor.open(write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24),
                     choice=ModelChoice(device="cpu"), video_models={"wan-vace": tiny_wan_vace})
    try:
        ed.objects.add("ball")
        obj = ed.objects.get(ed.objects.active)
        obj.store.write_many(0, [disc(i) for i in range(N)], FrameState.PROPAGATED)
        reference = tmp_path / "look.png"
        write_image(reference, np.full((32, 32, 3), (200, 40, 40), np.uint8))
        run_command(ed, "restyle engine wan-vace")
        run_command(ed, "restyle window 9 5")
        run_command(ed, f"restyle reference {reference}")
        run_command(ed, "restyle run a blue ball")
        assert ed.restyle.job.wait(180) and ed.restyle.job.error is None, ed.restyle.job.error
        assert ed.poll() == []
        project = ed.session.file.project
        layer = project.timeline.video_layers[-1]
        recipe = project.recipes[project.media[layer.items[0].media_id].recipe_id]
        assert recipe.engine == "wan-vace" and recipe.reference_sha256 is not None
    finally:
        ed.close()


WINDOW_RUN = """
import sys
from pathlib import Path
import numpy as np
from kinema.app.segment_jobs import ModelChoice
from kinema.document.masktrack import FrameState
from kinema.ui.editor import Editor
from kinema.ui.window import Window

clip, models, shot = (Path(a) for a in sys.argv[1:4])
ed = Editor.open(clip, choice=ModelChoice(device="cpu"),
                 video_models={"animatediff": models / "sd15-base",
                               "motion": models / "animatediff-v1-5-3"})
ed.objects.add("ball")
yy, xx = np.mgrid[0:48, 0:64]
ed.objects.get(ed.objects.active).store.write_many(
    0, [(xx - (16 + i)) ** 2 + (yy - 24) ** 2 < 81 for i in range(22)], FrameState.PROPAGATED)
script = ["restyle engine animatediff", "restyle window 8 3", "seek 18", "restyle run a red ball", "save"]
window = Window(ed, screenshot=shot, script=script, size=(1400, 900), proxy=False)
try:
    image = window.run()
finally:
    ed.close()
assert window.failure is None, window.failure
assert window.frames_drawn > 2 and image is not None and image.shape[:2] == (900, 1400)
"""


def test_the_window_shows_the_engine_and_runs_it(display: str, tmp_path: Path,  # noqa: F811
                                                 tiny_animatediff: Path) -> None:
    import os
    import subprocess
    import sys

    from kinema.document import store

    clip = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}
    run = subprocess.run([sys.executable, "-c", WINDOW_RUN, str(clip), str(tiny_animatediff),
                          str(tmp_path / "ui.png")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    project = store.load(tmp_path / "shot.kinema")
    layer = project.timeline.video_layers[-1]
    assert layer.name == "ball restyled"
    assert project.recipes[project.media[layer.items[0].media_id].recipe_id].engine == "animatediff"
