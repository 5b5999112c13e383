"""The flow interpolator (`--backend flow`, the default): rendered scenes with exact middle frames,
occlusion, flow reuse for several in-betweens, and the folder output's naming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinema.core.jobs import run
from kinema.generate.flow_interp import FlowInterpolator
from kinema.generate.rife import blend

pytest.importorskip("cv2")

W, H = 224, 160
SIDE = 56  # the square's side


def texture(seed: int, w: int, h: int) -> np.ndarray:
    """A smooth random colour texture (noise blurred at two scales), uint8 RGB."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.5)
    coarse = cv2.GaussianBlur(noise, (0, 0), 6)
    mix = 0.5 * (fine - fine.mean()) / fine.std() + 0.5 * (coarse - coarse.mean()) / coarse.std()
    return np.clip(128 + 45 * mix, 0, 255).astype(np.uint8)


BACKGROUND = texture(1, W + 80, H + 80)
OBJECT = texture(2, SIDE, SIDE)


def scene(t: float, *, bg: tuple[float, float] = (3.0, 1.0), fg: tuple[float, float] = (4.0, 1.0),
          spin: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` (any real): the background sliding ``bg`` px per frame, a textured square
    moving ``fg`` px and turning ``spin`` degrees per frame; also the square's boolean mask."""
    import cv2

    shift = np.float32([[1, 0, -20 - bg[0] * t], [0, 1, -20 - bg[1] * t]])
    frame = cv2.warpAffine(BACKGROUND, shift, (W, H), flags=cv2.INTER_CUBIC)
    cx, cy = 70 + fg[0] * t, 80 + fg[1] * t
    turn = cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), spin * t, 1.0)
    turn[:, 2] += (cx - SIDE / 2, cy - SIDE / 2)
    obj = cv2.warpAffine(OBJECT, turn, (W, H), flags=cv2.INTER_CUBIC)
    inside = cv2.warpAffine(np.full((SIDE, SIDE), 255, np.uint8), turn, (W, H),
                            flags=cv2.INTER_LINEAR) / 255.0
    out = frame * (1 - inside[..., None]) + obj * inside[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), inside > 0.5


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[where].mean() if where is not None else diff.mean()
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def test_the_middle_of_a_moving_turning_square_beats_the_cross_fade() -> None:
    """Background sliding 6 px, a square moving 8 px and turning 4 degrees between the frames."""
    a, _ = scene(0)
    b, _ = scene(2)
    truth, _ = scene(1)
    flow = psnr(FlowInterpolator().interpolate(a, b, 0.5), truth)
    fade = psnr(blend(a, b, 0.5), truth)
    assert flow >= fade + 10 and flow >= 31, (flow, fade)


def test_bicubic_samples_beat_bilinear_ones_at_half_pixel_motion() -> None:
    """Background sliding (3, 1) px, the square moving (5, 2) px and turning 4 degrees: the middle
    frame samples both frames half-way between pixels, where bilinear sampling blurs."""
    motion = {"bg": (1.5, 0.5), "fg": (2.5, 1.0), "spin": 2.0}
    a, _ = scene(0, **motion)
    b, _ = scene(2, **motion)
    truth, _ = scene(1, **motion)
    sharp = psnr(FlowInterpolator().interpolate(a, b, 0.5), truth)
    bilinear = psnr(FlowInterpolator(detail=0).interpolate(a, b, 0.5), truth)
    assert sharp >= bilinear + 0.5 and sharp >= 35, (sharp, bilinear)


def test_uncovered_and_covered_background_beat_the_cross_fade() -> None:
    """The square moves 6 px right over a still background: behind it at 0.5 lies background
    that frame 0 hides and frame 1 shows; ahead of it, background frame 1 hides."""
    motion = {"bg": (0.0, 0.0), "fg": (3.0, 0.0), "spin": 0.0}
    a, in_a = scene(0, **motion)
    b, in_b = scene(2, **motion)
    truth, in_mid = scene(1, **motion)
    behind = in_a & ~in_mid  # background at 0.5, hidden in frame 0, shown in frame 1
    ahead = in_b & ~in_mid  # background at 0.5, shown in frame 0, hidden in frame 1
    assert behind.sum() > 100 and ahead.sum() > 100
    flow = FlowInterpolator().interpolate(a, b, 0.5)
    fade = blend(a, b, 0.5)
    for region in (behind, ahead):
        assert psnr(flow, truth, region) > psnr(fade, truth, region) + 2
    assert psnr(flow, truth) > 38


def test_several_in_betweens_of_one_pair_compute_its_flows_once() -> None:
    frames = [scene(2 * k)[0] for k in range(3)]
    model = FlowInterpolator()
    for i in range(2):
        for t in (0.25, 0.5, 0.75):
            model.interpolate(frames[i], frames[i + 1], t)
    assert model.flow_pairs == 2
    # t = 0 and t = 1 are the frames themselves; a new array is a new pair
    assert np.array_equal(model.interpolate(frames[0], frames[1], 0.0), frames[0])
    assert np.array_equal(model.interpolate(frames[0], frames[1], 1.0), frames[1])
    model.interpolate(frames[0].copy(), frames[1], 0.5)
    assert model.flow_pairs == 3


def test_bad_arguments_are_one_line_errors() -> None:
    from kinema.core.errors import InvalidArgumentError

    a, _ = scene(0)
    with pytest.raises(InvalidArgumentError, match="preset"):
        FlowInterpolator(preset="slow")
    with pytest.raises(InvalidArgumentError, match="detail"):
        FlowInterpolator(detail=-1)
    with pytest.raises(InvalidArgumentError, match="t must be"):
        FlowInterpolator().interpolate(a, a, 1.5)
    with pytest.raises(InvalidArgumentError, match="expected"):
        FlowInterpolator().interpolate(a, a[:64], 0.5)


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kinema.media.writer import VideoWriter

    path = tmp_path_factory.mktemp("moving") / "moving.mp4"
    with VideoWriter(path, 12, (W, H)) as writer:
        for k in range(6):
            writer.write(scene(2 * k)[0])
    return path


def source_frames(path: Path) -> list[np.ndarray]:
    from kinema.media import open_video

    with open_video(path, prefetch=False) as reader:
        return [reader[i] for i in range(len(reader))]


def test_a_folder_gets_the_whole_sequence_in_order_source_frames_exact(moving_clip: Path,
                                                                       tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video
    from kinema.media.image import read_image

    out = tmp_path / "x4"
    model = FlowInterpolator()
    result = run(interpolate_video(moving_clip, out, factor=4, interpolator=model, backend="flow"))
    source = source_frames(moving_clip)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{k:06d}.png" for k in range(result.frames)]
    assert result.frames == 4 * len(source)
    for i, frame in enumerate(source):  # frame 4i of a x4 output is source frame i, bit-exact
        assert np.array_equal(read_image(out / f"frame_{4 * i:06d}.png"), frame)
    assert model.flow_pairs == len(source) - 1  # three in-betweens per pair, one flow pair
    middle = read_image(out / "frame_000006.png")  # halfway from source frame 1 to 2
    assert psnr(middle, scene(3)[0]) > psnr(blend(source[1], source[2], 0.5), scene(3)[0]) + 5


def test_the_command_defaults_to_flow_and_writes_frame_2i_as_source_frame_i(
        moving_clip: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kinema.cli.main import app
    from kinema.media.image import read_image

    out = tmp_path / "x2"
    result = CliRunner().invoke(app, ["interpolate", str(moving_clip), "--factor", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    source = source_frames(moving_clip)
    assert len(list(out.glob("*.png"))) == 2 * len(source)
    for i, frame in enumerate(source):
        assert np.array_equal(read_image(out / f"frame_{2 * i:06d}.png"), frame)
    record = json.loads(Path(f"{out}.provenance.json").read_text())
    assert record["operations"][0]["backend"] == "flow"
    assert record["operations"][0]["model"] is None  # no weights


def test_flow_is_registered_and_the_default() -> None:
    import inspect

    from kinema.app.restore_jobs import interpolate_video
    from kinema.cli.restore_commands import interpolate
    from kinema.models import backends

    assert isinstance(backends.create("interpolate", "flow"), FlowInterpolator)
    assert inspect.signature(interpolate_video).parameters["backend"].default == "flow"
    assert inspect.signature(interpolate).parameters["backend"].default == "flow"
