"""kinema restyle with tiny models: one PNG per key, bit-identical to the decoded source outside
the grown and feathered matte and changed inside; same seed, same keys; grid mode; the pose
condition only where people are; keys in a project as a style layer; bad input as one line,
nothing partial left."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from conftest import tracked_project
from kinema.app.mask_outputs import NpzLabels
from kinema.app.restyle_jobs import restyle
from kinema.core.jobs import run
from kinema.generate.control import parse_controls
from kinema.generate.restyle import crop_box, matte_box, plan_window
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.render.mattes import matte_from_mask

W, H, N = 160, 120, 12
MARGIN, FEATHER = 6, 3.0
DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "davis-train" / "videos"


def blob(i: int, radius: int = 22) -> np.ndarray:
    """The object on frame ``i``: a disc moving right."""
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (50 + 4 * i)) ** 2 + (yy - 60) ** 2 < radius**2


def write_masks(path: Path, masks: list[np.ndarray]) -> Path:
    """A label map file as ``kinema track -o masks.npz`` writes it (object 1)."""
    writer = NpzLabels(path, len(masks), (masks[0].shape[1], masks[0].shape[0]), overwrite=False)
    for mask in masks:
        writer.write(mask.astype(np.uint8))
    return writer.close()


def matte(mask: np.ndarray) -> np.ndarray:
    """The matte a key is composited through: grown by the margin, then feathered."""
    return matte_from_mask(matte_from_mask(mask, grow=MARGIN) > 0.5, feather=FEATHER)


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from kinema.media.synth import write_clip

    folder = tmp_path_factory.mktemp("shot")
    video = write_clip(folder / "shot.mp4", n=N, size=(W, H), fps=24)
    return video, write_masks(folder / "masks.npz", [blob(i) for i in range(N)])


def options(tiny_sdxl: Path, tiny_controlnet: Path, **extra: object) -> dict:
    return {"prompt": "a red dog", "seed": 3, "strength": 0.9, "margin": MARGIN, "feather": FEATHER,
            "controls": parse_controls("canny=0.8"), "model": tiny_sdxl,
            "controlnets": {"canny": tiny_controlnet}, "device": "cpu", **extra}


@pytest.fixture(scope="module")
def cli_keys(shot, tiny_sdxl: Path, tiny_controlnet: Path, tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    video, masks = shot
    out = tmp_path_factory.mktemp("cli") / "keys"
    result = CliRunner().invoke(app, [
        "restyle", str(video), "--mask", str(masks), "--frames", "11,0,5", "--prompt", "a red dog",
        "--seed", "3", "--strength", "0.9", "--margin", str(MARGIN), "--feather", str(FEATHER),
        "--control", "canny=0.8", "--controlnet", f"canny={tiny_controlnet}", "--model", str(tiny_sdxl),
        "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 keys" in result.output
    return out


def test_one_png_per_key_source_outside_the_matte_changed_inside(shot, cli_keys: Path) -> None:
    from kinema.document.recipes import RestyleRecipe

    video, _masks = shot
    assert sorted(p.name for p in cli_keys.iterdir()) == ["00000.png", "00005.png", "00011.png"]
    with open_video(video, prefetch=False) as reader:
        for frame in (0, 5, 11):
            key, source, alpha = read_image(cli_keys / f"{frame:05d}.png"), reader[frame], matte(blob(frame))
            assert key.shape == source.shape
            assert np.array_equal(key[alpha == 0], source[alpha == 0])
            assert np.abs(key[alpha == 1].astype(int) - source[alpha == 1]).mean() > 5
    record = json.loads((cli_keys.parent / "keys.provenance.json").read_text())
    recipe = RestyleRecipe.model_validate(record["operations"][0])
    assert recipe.frames == [0, 5, 11] and recipe.seed == 3 and recipe.strength == 0.9
    assert (recipe.margin, recipe.feather, recipe.grid) == (MARGIN, FEATHER, 1)
    assert [(c.kind, c.weight, c.thresholds) for c in recipe.controls] == [("canny", 0.8, (100, 200))]
    assert recipe.model is not None and recipe.model.weights_sha256
    assert [i.id for i in recipe.inputs] == ["shot.mp4", "masks.npz"]
    assert (recipe.steps, recipe.scheduler) == (2, "euler")  # the tiny model's card


def test_same_seed_same_keys_another_seed_other_keys(shot, cli_keys: Path, tiny_sdxl: Path,
                                                    tiny_controlnet: Path, tmp_path: Path) -> None:
    video, masks = shot
    run(restyle(video, tmp_path / "again", frames=[0, 5, 11], mask=masks,
                **options(tiny_sdxl, tiny_controlnet)))
    run(restyle(video, tmp_path / "other", frames=[5], mask=masks,
                **options(tiny_sdxl, tiny_controlnet, seed=4)))
    for name in ("00000.png", "00005.png", "00011.png"):
        assert (tmp_path / "again" / name).read_bytes() == (cli_keys / name).read_bytes()
    other = read_image(tmp_path / "other" / "00005.png")
    assert not np.array_equal(other, read_image(cli_keys / "00005.png"))


def test_grid_mode_gives_every_key_and_progress_per_step(shot, tiny_sdxl: Path, tiny_controlnet: Path,
                                                         tmp_path: Path) -> None:
    video, masks = shot
    events, previews = [], []
    result = run(restyle(video, tmp_path / "grid", frames=[0, 2, 4, 6, 8], mask=masks, grid=True,
                         on_key=lambda f, image: previews.append(f),
                         **options(tiny_sdxl, tiny_controlnet)), on_progress=events.append)
    assert result.frames == (0, 2, 4, 6, 8) and previews == [0, 2, 4, 6, 8]
    assert len(list((tmp_path / "grid").iterdir())) == 5
    steps = [e for e in events if e.unit == "steps" and e.total]
    # two pictures of 2x2 keys, each one step (the card's 2 steps at strength 0.9), not five
    assert steps[-1].done == steps[-1].total == 2
    with open_video(video, prefetch=False) as reader:
        key, alpha = read_image(tmp_path / "grid" / "00008.png"), matte(blob(8))
        assert np.array_equal(key[alpha == 0], reader[8][alpha == 0])


def test_every_key_is_cut_and_worked_on_at_one_size() -> None:
    boxes = [(10, 20, 50, 70), (100, 5, 130, 40)]
    window = plan_window(boxes, (W, H), area=64 * 64)
    assert window.crop == (40 + 2 * 8, 50 + 2 * 8) and window.grid == 1
    assert all(side % 8 == 0 for side in window.size)
    assert abs(window.size[0] * window.size[1] - 64 * 64) < 64 * 64 * 0.25
    for box in boxes:
        x0, y0, x1, y1 = crop_box(box, window.crop, (W, H))
        assert (x1 - x0, y1 - y0) == window.crop and x0 >= 0 and y0 >= 0 and x1 <= W and y1 <= H
        assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    tiles = plan_window(boxes, (W, H), area=64 * 64, grid=2)
    assert tiles.cells == 4 and tiles.size[0] <= window.size[0] // 2 + 8
    assert matte_box(np.zeros((4, 4))) is None


def test_pose_condition_joins_only_on_frames_with_people(tiny_sdxl: Path, tiny_controlnet: Path,
                                                        tmp_path: Path) -> None:
    from kinema.core.errors import KinemaError
    from kinema.media.writer import VideoWriter

    try:
        from kinema.app.pose_jobs import check_pose_models

        check_pose_models()
    except KinemaError as exc:
        pytest.skip(f"the bundled mediapipe pose models are not usable here: {exc}")
    frames = []
    for clip in ("bear", "lucia"):
        if not (DAVIS / f"{clip}.mp4").is_file():
            pytest.skip(f"{DAVIS} is not present")
        with open_video(DAVIS / f"{clip}.mp4", prefetch=False) as reader:
            frames.append(reader[0])
    video = tmp_path / "people.mp4"
    with VideoWriter(video, 24, (854, 480)) as writer:
        for frame in frames:
            writer.write(frame)
    box = np.zeros((480, 854), bool)
    box[100:400, 300:600] = True
    masks = write_masks(tmp_path / "m.npz", [box, box])
    events = []
    result = run(restyle(video, tmp_path / "keys", frames=[0, 1], mask=masks,
                         **options(tiny_sdxl, tiny_controlnet, controls=parse_controls("pose=1.0"),
                                   controlnets={"pose": tiny_controlnet})), on_progress=events.append)
    assert result.posed == (1,)  # the bear has no pose condition, lucia has
    assert [e.message for e in events if e.message] == ["key 0: no people found, no pose condition"]
    recipe = json.loads(result.record.read_text())["operations"][0]
    assert [a["model_id"] for a in recipe["annotators"]] == [
        "bundled:mediapipe/pose_landmark_full.tflite", "bundled:mediapipe/pose_detection.tflite"]


def test_project_keys_become_a_style_layer(tiny_sdxl: Path, tiny_controlnet: Path,
                                                                tmp_path: Path) -> None:
    from kinema.app.evaluate import FrameEvaluator
    from kinema.app.style_layer import stylize
    from kinema.core.errors import InvalidArgumentError
    from kinema.document import store
    from kinema.document.model import StyleItem
    from kinema.media.synth import write_clip

    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder = tracked_project(tmp_path / "shot", video, [blob(i) for i in range(N)], "dog")
    before = FrameEvaluator(store.load(folder), folder).frame(3)
    keys = tmp_path / "keys"
    result = run(restyle(folder, keys, frames=[2, 7], track="dog", **options(tiny_sdxl, tiny_controlnet)))
    project = store.load(folder)
    assert result.recipe_id in project.recipes and project.recipes[result.recipe_id].track_id == "t1"
    layer = project.timeline.video_layers[-1]
    assert layer.id == result.layer_id and layer.name == "dog style"
    item = layer.items[0]
    assert isinstance(item, StyleItem) and item.track_id == "t1" and item.recipe_id == result.recipe_id
    assert (item.start, item.duration, Path(item.keys_path)) == (0, N, keys)
    assert [k.frame for k in item.keys] == [2, 7] and item.keys_relative_path == "../keys"
    # until propagated the layer shows nothing in the editor, and a render would propagate it
    assert np.array_equal(FrameEvaluator(project, folder, partial_styles=True).frame(3), before)
    with pytest.raises(InvalidArgumentError, match="not propagated at frame 3"):
        FrameEvaluator(project, folder).frame(3)
    run(stylize(folder))
    styled = FrameEvaluator(project, folder).frame(3)
    assert (styled[~blob(3, 26)] == before[~blob(3, 26)]).all() and (styled != before).any()
    if importlib.util.find_spec("opentimelineio") is not None:
        from kinema.document.interchange import from_otio, to_otio

        assert from_otio(to_otio(project)).timeline.video_layers[-1].items == [item]
    run(restyle(folder, keys, frames=[4], track="t1", overwrite=True, **options(tiny_sdxl, tiny_controlnet)))
    again = store.load(folder)
    assert len(again.timeline.video_layers) == len(project.timeline.video_layers)  # updated in place
    assert [k.frame for k in again.timeline.video_layers[-1].items[0].keys] == [4]
    assert sorted(p.name for p in keys.iterdir()) == ["00004.png"]


def cli_error(*args: str) -> str:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    result = CliRunner().invoke(app, ["restyle", *args, "--prompt", "lava"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_bad_input_is_one_line_and_leaves_nothing(shot, tiny_sdxl: Path, tmp_path: Path) -> None:
    video, masks = shot
    out = tmp_path / "keys"
    model = ["--model", str(tiny_sdxl), "--device", "cpu", "-o", str(out)]
    empty = write_masks(tmp_path / "empty.npz", [np.zeros((H, W), bool)] * N)
    assert "mask file not found" in cli_error(str(video), "--mask", str(tmp_path / "none.npz"),
                                              "--frames", "0", *model)
    assert "empty on every key frame" in cli_error(str(video), "--mask", str(empty), "--frames", "0,3",
                                                   *model)
    assert "0-11" in cli_error(str(video), "--mask", str(masks), "--frames", "0,12", *model)
    assert "--mask" in cli_error(str(video), "--frames", "0", *model)
    assert "unknown control" in cli_error(str(video), "--mask", str(masks), "--frames", "0",
                                          "--control", "edges=1", *model)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["empty.npz"]
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert "already exists" in cli_error(str(video), "--mask", str(masks), "--frames", "0", *model)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_missing_mask_track_and_empty_track_in_a_project(tmp_path: Path) -> None:
    from kinema.app.project_jobs import new_project
    from kinema.document import edits, store
    from kinema.document.masktrack import MaskTrackStore
    from kinema.document.model import MaskTrackRef
    from kinema.media.synth import write_clip

    folder = new_project(tmp_path / "p", write_clip(tmp_path / "v.mp4", n=4, size=(64, 48), fps=24))
    MaskTrackStore(folder / "masks" / "t1", 4, 64, 48, create=True)
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="t1", name="cat", media_id="m1",
                                                        frames=4, width=64, height=48)))
        pf.save()
    line = cli_error(str(folder), "--track", "dog", "--frames", "0", "-o", str(tmp_path / "k"))
    assert "no mask track 'dog'" in line and "t1 (cat)" in line
    assert "empty on every key frame" in cli_error(str(folder), "--track", "cat", "--frames", "0,1",
                                                   "-o", str(tmp_path / "k"))
    assert not (tmp_path / "k").exists()


def test_cancel_leaves_nothing(shot, tiny_sdxl: Path, tiny_controlnet: Path, tmp_path: Path) -> None:
    from kinema.core.errors import CancelledError
    from kinema.core.jobs import CancelToken

    video, masks = shot
    token = CancelToken()

    def cancel_at_first_step(event) -> None:
        if event.total:
            token.cancel()

    with pytest.raises(CancelledError):
        run(restyle(video, tmp_path / "keys", frames=[0, 5], mask=masks,
                    **options(tiny_sdxl, tiny_controlnet)), token, cancel_at_first_step)
    assert list(tmp_path.iterdir()) == []
