"""The editor's Generate and Restyle panels with tiny models: an asset placed where clicked is
one undoable step (layer, media and recipe), made on a worker but put in the document only by
``poll()`` on the UI thread; the active object restyled on its key frames writes one PNG per
key (the source outside the matte), previews each key, and becomes a style layer through the
history; a scripted window run under Xvfb places an asset and shows the panel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from kinema.app.segment_jobs import ModelChoice
from kinema.core.errors import InvalidArgumentError
from kinema.document.model import AssetItem, StyleItem
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from kinema.ui.window import run_command
from test_asset import disc_generator  # noqa: F401  (the disc picture instead of noise)
from test_editor_window import display  # noqa: F401  (the Xvfb fixture)

W, H, N = 160, 120, 12


@pytest.fixture
def editor(tmp_path: Path, tiny_sdxl: Path, tiny_controlnet: Path):
    ed = Editor.open(write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24),
                     choice=ModelChoice(device="cpu"), sdxl=tiny_sdxl,
                     controlnets={"canny": tiny_controlnet})
    yield ed
    ed.close()


def finish(ed: Editor, timeout: float = 120) -> None:
    """Wait for the editor's jobs as the window does, without bringing their results in."""
    for job in ed.jobs.items:
        assert job.wait(timeout) and job.error is None, job.error


def test_placing_an_asset_is_one_undoable_step_made_on_the_ui_thread(editor: Editor, salient_model,
                                                                     disc_generator):  # noqa: F811
    from kinema.app.evaluate import FrameEvaluator

    ed, project = editor, editor.session.file.project
    with pytest.raises(InvalidArgumentError, match="prompt is empty"):
        ed.generate.place(80, 60)
    run_command(ed, "generate a blue disc, flat")
    ed.generate.size = (128, 128)  # the disc picture's size (the tiny card's is 64x64)
    ed.transport.seek(4)
    ed.generate.place(80, 60, 0.5)
    with pytest.raises(InvalidArgumentError, match="being made"):
        ed.generate.place(10, 10)
    revision, layers = ed.history.revision, len(project.timeline.video_layers)
    media, recipes = dict(project.media), dict(project.recipes)
    finish(ed)
    # made on the worker: the PNG is written, the document untouched until poll()
    png = ed.folder / "assets" / "blue-disc-0.png"
    assert png.is_file() and ed.busy()
    assert (ed.history.revision, len(project.timeline.video_layers)) == (revision, layers)
    assert project.media == media and project.recipes == recipes
    assert ed.poll() == [] and not ed.busy()
    assert ed.history.revision == revision + 1 and ed.history.undo_label == "Place asset blue disc"
    item = project.timeline.video_layers[-1].items[0]
    assert isinstance(item, AssetItem) and (item.start, item.duration) == (4, N - 4)
    assert project.media[item.media_id].path == str(png.resolve())
    assert f"asset-{item.media_id}" in project.recipes
    preview = ed.generate.preview
    assert preview is not None and preview.shape[2] == 4 and (preview[..., 3] == 0).any()
    # the disc (radius 30, scaled to 15) centred where clicked, from the playhead's frame on
    frames = FrameEvaluator(project, ed.folder)
    assert frames.frame(3)[60, 80, 2] < 150 and frames.frame(4)[60, 80, 2] > 200
    assert frames.frame(4)[60, 92, 2] > 200 and frames.frame(4)[60, 100, 2] < 150
    # undo takes layer, media and recipe away together; redo brings them back
    ed.history.undo()
    assert len(project.timeline.video_layers) == layers and project.media == media
    assert project.recipes == recipes
    ed.history.redo()
    assert project.timeline.video_layers[-1].items[0] == item
    # the same prompt and seed again: a free name, the first asset kept
    first = png.read_bytes()
    ed.generate.place(20, 20)
    finish(ed)
    ed.poll()
    assert (ed.folder / "assets" / "blue-disc-0-2.png").is_file() and png.read_bytes() == first


def test_restyle_the_active_object_on_its_keys(editor: Editor):
    from kinema.document.masktrack import FrameState
    from kinema.media import open_video
    from kinema.media.image import read_image
    from kinema.render.mattes import matte_from_mask

    ed, project = editor, editor.session.file.project
    yy, xx = np.mgrid[0:H, 0:W]
    discs = [(xx - (50 + 4 * i)) ** 2 + (yy - 60) ** 2 < 22**2 for i in range(N)]
    ed.objects.add("dog")
    obj = ed.objects.get(ed.objects.active)
    obj.store.write_many(0, discs, FrameState.PROPAGATED)
    for frame in (2, 7):
        obj.store.write(frame, discs[frame], FrameState.KEYFRAME)
    assert ed.restyle.key_frames() == [2, 7]  # the track's keyframes by default
    run_command(ed, "seek 4")
    run_command(ed, "restyle key")
    run_command(ed, "restyle control canny 0.8")
    assert ed.restyle.key_frames() == [2, 4, 7] and ed.restyle.controls == {"canny": 0.8}
    ed.restyle.strength, ed.restyle.seed = 0.9, 3
    layers, revision = len(project.timeline.video_layers), ed.history.revision
    run_command(ed, "restyle run a red dog")
    finish(ed)
    assert sorted(ed.restyle.previews) == [2, 4, 7]  # one preview per key, as it was made
    keys = ed.folder / "styles" / f"{obj.track_id}-1"
    assert sorted(p.name for p in keys.iterdir()) == ["00002.png", "00004.png", "00007.png"]
    assert len(project.timeline.video_layers) == layers and ed.history.revision == revision
    ed.poll()
    layer = project.timeline.video_layers[-1]
    item = layer.items[0]
    assert layer.name == "dog style" and isinstance(item, StyleItem)
    assert [k.frame for k in item.keys] == [2, 4, 7] and item.keys_relative_path == f"styles/{keys.name}"
    recipe = project.recipes[item.recipe_id]
    assert recipe.track_id == obj.track_id and recipe.prompt == "a red dog"
    assert [(c.kind, c.weight) for c in recipe.controls] == [("canny", 0.8)]
    with open_video(ed.session.video_path, prefetch=False) as reader:
        for frame in (2, 4, 7):
            key, source = read_image(keys / f"{frame:05d}.png"), reader[frame]
            alpha = matte_from_mask(matte_from_mask(discs[frame], grow=8) > 0.5, feather=4.0)
            assert np.array_equal(key[alpha == 0], source[alpha == 0])
            assert np.array_equal(ed.restyle.previews[frame], key)
    ed.history.undo()
    assert len(project.timeline.video_layers) == layers and item.recipe_id not in project.recipes
    ed.history.redo()
    assert project.timeline.video_layers[-1].items[0] == item


def test_restyle_needs_an_object_with_keys(editor: Editor):
    with pytest.raises(InvalidArgumentError, match="no object"):
        run_command(editor, "restyle run lava")
    editor.objects.add("empty")
    with pytest.raises(InvalidArgumentError, match="no key frames"):
        run_command(editor, "restyle run lava")
    with pytest.raises(InvalidArgumentError, match="unknown control"):
        run_command(editor, "restyle control edges 1")


def test_a_scripted_window_places_an_asset_and_shows_the_panel(display: str, tmp_path: Path,  # noqa: F811
                                                               tiny_sdxl: Path, salient_model):
    from kinema.document import store
    from kinema.media.image import read_image

    clip = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    shot = tmp_path / "ui.png"
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}
    run = subprocess.run([sys.executable, "-m", "kinema", "edit", str(clip), "--screenshot", str(shot),
                          "--sdxl", str(tiny_sdxl), "--device", "cpu", "--size", "1400x900",
                          "--do", "generate a ufo, brushed metal; seek 3; place 80 60; save"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    project = store.load(tmp_path / "shot.kinema")
    item = project.timeline.video_layers[-1].items[0]
    assert isinstance(item, AssetItem) and item.start == 3
    assert Path(project.media[item.media_id].path).name == "ufo-0.png"
    image = read_image(shot)
    assert image.shape[:2] == (900, 1400)
    # the side panel shows the Generate tab: the asset's preview (noise from the tiny model,
    # kept whole) is drawn there, so the panel is far from flat
    side = image[40:600, 1110:1390, :3].astype(int)
    assert side.std() > 20
