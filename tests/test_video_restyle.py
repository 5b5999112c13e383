"""kinema restyle --engine animatediff|wan-vace with tiny models: every frame written, pixels
outside the matte exactly the source, window seams blended, the same seed the same shot, the
recipe beside the output, a project's layer; bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.mask_outputs import NpzLabels
from kinema.app.video_restyle_jobs import restyle_video
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import run
from kinema.generate.control import parse_controls
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.render.mattes import matte_from_mask

W, H, N = 64, 48, 22
MARGIN, FEATHER = 4, 2.0


def blob(i: int) -> np.ndarray:
    """The object on frame ``i``: a disc moving right."""
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (16 + i)) ** 2 + (yy - 24) ** 2 < 9**2


def outside(i: int) -> np.ndarray:
    """Where the matte (the mask grown and feathered) is 0."""
    grown = matte_from_mask(blob(i), grow=MARGIN) > 0.5
    return matte_from_mask(grown, feather=FEATHER) == 0


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from kinema.media.synth import write_clip

    folder = tmp_path_factory.mktemp("shot")
    video = write_clip(folder / "shot.mp4", n=N, size=(W, H), fps=24)
    writer = NpzLabels(folder / "masks.npz", N, (W, H), overwrite=False)
    for i in range(N):
        writer.write(blob(i).astype(np.uint8))
    return video, writer.close()


def animatediff(models: Path, **extra: object) -> dict:
    return {"engine": "animatediff", "prompt": "a red car", "seed": 5, "strength": 0.8, "steps": 3,
            "margin": MARGIN, "feather": FEATHER, "window": 8, "overlap": 3,
            "model": models / "sd15-base", "motion_model": models / "animatediff-v1-5-3",
            "controls": parse_controls("canny=0.8"),
            "controlnets": {"canny": models / "controlnet-canny-sd15"}, "device": "cpu", **extra}


def frames_of(folder: Path) -> list[np.ndarray]:
    return [read_image(p) for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def restyled(shot, tiny_animatediff: Path, tmp_path_factory) -> tuple[Path, list, dict]:
    video, masks = shot
    out = tmp_path_factory.mktemp("ad") / "styled"
    seen: dict[int, list[np.ndarray]] = {}
    job = restyle_video(video, out, mask=masks, on_window=lambda first, made: seen.update({first: made}),
                        **animatediff(tiny_animatediff))
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as done:
            result = done.value
            break
    return out, events, {"result": result, "windows": seen}


def test_animatediff_writes_every_frame_and_keeps_the_outside(restyled, shot) -> None:
    out, events, found = restyled
    result = found["result"]
    assert result.frames == N and result.windows == 4  # 0-8, 5-13, 10-18, 14-22
    frames = frames_of(out)
    assert [p.name for p in sorted(out.glob("*.png"))] == [f"{i:05d}.png" for i in range(N)]
    with open_video(shot[0]) as source:
        for i, frame in enumerate(frames):
            assert (frame[outside(i)] == source[i][outside(i)]).all(), i
            assert np.abs(frame.astype(int) - source[i])[blob(i)].mean() > 5, i  # restyled inside
    written = [e.done for e in events if e.message is None]
    assert written == list(range(1, N + 1))
    assert any(e.message == "window 2/4: step 2/2" for e in events)  # 3 steps at strength 0.8


def test_window_seams_are_a_blend_not_a_cut(restyled) -> None:
    out, _events, found = restyled
    frames = frames_of(out)
    windows = found["windows"]
    # frames 5-7 are made by windows 0 and 1: each output frame is the crossfade of the two,
    # the later window's weight rising 1/4, 2/4, 3/4 (not a cut from one to the other)
    apart = 0.0
    for k, i in enumerate(range(5, 8)):
        a = windows[0][i].astype(float)
        b = windows[5][i - 5].astype(float)
        t = (k + 1) / 4
        assert np.abs(frames[i] - np.rint(a * (1 - t) + b * t)).max() <= 1, i
        apart = max(apart, float(np.abs(a - b).max()))
    assert apart > 2  # the windows did not make identical frames: the blend is real
    # and the later window continued the earlier one: the two agree far better on the frames
    # they share than one window's neighbouring frames do
    shared = np.mean([np.abs(windows[0][i].astype(float) - windows[5][i - 5]).mean() for i in (5, 6, 7)])
    assert shared < np.abs(windows[0][5].astype(float) - windows[0][4]).mean()


def test_the_same_seed_makes_the_same_shot(restyled, shot, tiny_animatediff: Path, tmp_path: Path) -> None:
    video, masks = shot
    again = run(restyle_video(video, tmp_path / "again", mask=masks, **animatediff(tiny_animatediff)))
    assert again.frames == N
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(restyled[0]), frames_of(tmp_path / "again"),
                                                     strict=True))
    other = run(restyle_video(video, tmp_path / "other", mask=masks,
                              **animatediff(tiny_animatediff, seed=6)))
    assert other.frames == N
    assert not np.array_equal(frames_of(tmp_path / "other")[3], frames_of(restyled[0])[3])


def test_the_recipe_is_beside_the_output(restyled, tiny_animatediff: Path) -> None:
    out, _events, found = restyled
    record = json.loads(out.with_name("styled.provenance.json").read_text())
    (recipe,) = record["operations"]
    assert recipe["engine"] == "animatediff" and recipe["window"] == 8 and recipe["overlap"] == 3
    assert recipe["prompt"] == "a red car" and recipe["seed"] == 5 and recipe["steps"] == 3
    assert recipe["motion_model"]["model_id"].endswith("animatediff-v1-5-3")
    assert [c["kind"] for c in recipe["controls"]] == ["canny"]
    assert tuple(recipe["size"]) == found["result"].recipe.size


def test_wan_vace_restyles_a_movie_with_the_matte_as_alpha(shot, tiny_wan_vace: Path, tmp_path: Path) -> None:
    video, masks = shot
    result = run(restyle_video(video, tmp_path / "vace.mov", engine="wan-vace", mask=masks,
                               prompt="a blue ball", seed=2, steps=2, window=9, overlap=5,
                               margin=MARGIN, feather=FEATHER, model=tiny_wan_vace, device="cpu"))
    assert result.frames == N and result.windows >= 4
    with open_video(tmp_path / "vace.mov", alpha=True) as made, open_video(video) as source:
        assert len(made) == N
        for i in (0, 7, N - 1):
            frame = made[i]
            assert frame.shape[2] == 4 and (frame[..., 3][outside(i)] == 0).all()
            assert (frame[..., 3][blob(i)] == 255).all()
            # ProRes 4444 is near-lossless, not exact: the outside is the source within a level or two
            assert np.abs(frame[..., :3].astype(int) - source[i])[outside(i)].mean() < 1.5


@pytest.mark.parametrize(("extra", "message"), [
    ({"window": 40}, "longer than the shot"),
    ({"window": 8, "overlap": 8}, "between 1 and"),
    ({"controls": parse_controls("depth=1")}, "has no depth control"),
    ({"engine": "sora"}, "unknown engine"),
    ({"prompt": " "}, "prompt is empty"),
])
def test_bad_input_is_one_line(shot, tiny_animatediff: Path, tmp_path: Path, extra: dict,
                               message: str) -> None:
    video, masks = shot
    with pytest.raises(KinemaError, match=message):
        run(restyle_video(video, tmp_path / "out", mask=masks, **{**animatediff(tiny_animatediff), **extra}))
    assert not (tmp_path / "out").exists()


def test_a_model_that_does_not_fit_the_engine(shot, tiny_animatediff: Path, tiny_wan: Path,
                                              tmp_path: Path) -> None:
    video, masks = shot
    with pytest.raises(KinemaError):
        run(restyle_video(video, tmp_path / "out", mask=masks,
                          **animatediff(tiny_animatediff, model=tiny_wan)))
    with pytest.raises(InvalidArgumentError, match="wan-vace engine takes no ControlNets"):
        run(restyle_video(video, tmp_path / "out", mask=masks, engine="wan-vace", prompt="x",
                          model=tiny_wan, controlnets={"canny": tiny_animatediff / "controlnet-canny-sd15"},
                          controls=parse_controls("canny=1")))
    assert not (tmp_path / "out").exists()


def cli(*args: str | Path) -> object:
    from typer.testing import CliRunner

    from kinema.cli.main import app

    return CliRunner().invoke(app, ["restyle", *map(str, args)])


def test_cli_engines(shot, tiny_animatediff: Path, tiny_sdxl: Path, tiny_controlnet: Path,
                     tmp_path: Path) -> None:
    video, masks = shot
    m = tiny_animatediff
    done = cli(video, "--mask", masks, "--engine", "animatediff", "--prompt", "a red car",
               "--steps", "2", "--window", "8", "--overlap", "3", "--model", m / "sd15-base",
               "--motion-model", m / "animatediff-v1-5-3", "--device", "cpu", "-o", tmp_path / "ad")
    assert done.exit_code == 0, done.output
    assert f"{N} frames in 4 windows" in done.output and len(list((tmp_path / "ad").glob("*.png"))) == N
    # keys: two keys restyled with SDXL into OUT.keys/, then carried through every frame
    done = cli(video, "--mask", masks, "--engine", "keys", "--frames", "0,15", "--prompt", "a red car",
               "--steps", "2", "--control", "canny=0.8", "--controlnet", f"canny={tiny_controlnet}",
               "--model", tiny_sdxl, "--margin", MARGIN, "--feather", FEATHER, "--device", "cpu",
               "-o", tmp_path / "keyed")
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "keyed.keys").glob("*.png")) == ["00000.png", "00015.png"]
    keyed = frames_of(tmp_path / "keyed")
    assert len(keyed) == N
    assert np.array_equal(keyed[15], read_image(tmp_path / "keyed.keys" / "00015.png"))
    with open_video(video) as source:
        assert all((keyed[i][outside(i)] == source[i][outside(i)]).all() for i in (3, 9, 20))


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "animatediff", "--frames", "0,4"], "are for key frames"),
    (["--window", "8"], "are for --engine animatediff or wan-vace"),
    (["--engine", "keys"], "no key frames given"),
    (["--engine", "animatediff", "--window", "99"], "longer than the shot"),
])
def test_cli_bad_input_is_one_line(shot, tiny_animatediff: Path, tmp_path: Path, args: list,
                                   message: str) -> None:
    video, masks = shot
    m = tiny_animatediff
    motion = ["--motion-model", m / "animatediff-v1-5-3"] if "animatediff" in args else []
    done = cli(video, "--mask", masks, "--prompt", "x", "--model", m / "sd15-base", *motion, *args,
               "-o", tmp_path / "out")
    assert done.exit_code != 0 and message in done.output, done.output
    assert done.output.count("error:") == 1 and "Traceback" not in done.output
    assert not (tmp_path / "out").exists()


def test_a_project_gets_the_restyled_shot_as_a_layer(shot, tiny_animatediff: Path, tmp_path: Path) -> None:
    from kinema.app.evaluate import FrameEvaluator
    from kinema.document import store
    from kinema.document.model import ClipItem

    video, _masks = shot
    folder = tracked_project(tmp_path / "shot", video, [blob(i) for i in range(N)], "ball")
    options = animatediff(tiny_animatediff)
    result = run(restyle_video(folder, tmp_path / "ball.mov", track="ball", **options))
    doc = store.load(folder)
    layer = doc.timeline.video_layers[-1]
    assert layer.id == result.layer_id and layer.name == "ball restyled"
    (clip,) = layer.items
    assert isinstance(clip, ClipItem) and doc.media[clip.media_id].path == str(tmp_path / "ball.mov")
    recipe = doc.recipes[doc.media[clip.media_id].recipe_id]
    assert recipe.engine == "animatediff" and recipe.track_id == "t1"
    assert [i.id for i in recipe.inputs] == ["m1"]
    shown = FrameEvaluator(doc, folder).frame(6)
    with open_video(video) as source:
        # over its clip the layer shows the restyle inside the object, the footage outside
        # (ProRes 4444's alpha is exact, its colour within a level or two)
        assert np.abs(shown.astype(int) - source[6])[outside(6)].max() <= 3
        assert np.abs(shown.astype(int) - source[6])[blob(6)].mean() > 5


def test_a_window_longer_than_the_motion_modules_context(shot, tiny_animatediff: Path,
                                                         tmp_path: Path) -> None:
    video, masks = shot
    result = run(restyle_video(video, tmp_path / "long", mask=masks,
                               **animatediff(tiny_animatediff, window=20, overlap=4)))
    assert result.windows == 2 and len(frames_of(tmp_path / "long")) == N


def test_masks_of_another_size_are_one_line(shot, tiny_animatediff: Path, tmp_path: Path) -> None:
    video, _masks = shot
    writer = NpzLabels(tmp_path / "small.npz", N, (W // 2, H // 2), overwrite=False)
    for _ in range(N):
        writer.write(np.ones((H // 2, W // 2), np.uint8))
    small = writer.close()
    with pytest.raises(InvalidArgumentError, match="the masks are 32x24 but the footage is 64x48"):
        run(restyle_video(video, tmp_path / "out", mask=small, **animatediff(tiny_animatediff)))
    assert not (tmp_path / "out").exists()
