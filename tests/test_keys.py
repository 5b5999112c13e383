"""Key frames picked where the footage changes most, classical looks, ``kinema keys``,
``kinema propagate --keys auto N`` and ``kinema restyle --frames auto N``.

The truth: a clip that is still for its first :data:`STILL` frames and then moves fast (a
texture sliding 6 pixels a frame, a disc crossing it), so the keys belong in the moving part;
a look is a pure function of the frame and leaves every pixel outside a matte alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.mask_outputs import NpzLabels
from kinema.generate.looks import LOOKS, apply_look
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.media.writer import VideoWriter
from kinema.vision.keyframes import ChangeMeter, change_scores, pick_keys

W, H, N, STILL = 96, 64, 36, 20


def kinema(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *map(str, args)], capture_output=True,
                          text=True, timeout=180)


def scene(n: int = N, still: int = STILL) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and the disc's masks: nothing moves before frame ``still``; from there the
    background slides left 6 pixels a frame and the disc moves right 3."""
    rng = np.random.default_rng(7)
    tex = cv2.GaussianBlur(rng.random((H, 4 * W, 3)).astype(np.float32), (0, 0), 2.0)
    tex = ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    frames, masks = [], []
    for i in range(n):
        t = max(0, i - still)
        back = tex[:, 6 * t: 6 * t + W].copy()
        disc = (xx - (20 + 3 * t)) ** 2 + (yy - H // 2) ** 2 < 12**2
        back[disc] = (230, 60, 40)
        frames.append(back)
        masks.append(disc)
    return frames, masks


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    frames, masks = scene()
    folder = tmp_path_factory.mktemp("footage")
    clip = folder / "clip.mp4"
    with VideoWriter(clip, 24, (W, H)) as writer:
        for frame in frames:
            writer.write(frame)
    with open_video(clip) as reader:
        decoded = [np.asarray(reader[i])[..., :3] for i in range(N)]
    labels = NpzLabels(folder / "masks.npz", N, (W, H), overwrite=False)
    for i, mask in enumerate(masks):
        labels.write((mask & (i >= 4)).astype(np.uint8))  # the disc is tracked from frame 4 on
    labels.close()
    return {"clip": clip, "decoded": decoded, "masks": folder / "masks.npz", "disc": masks}


# picking


def test_keys_fall_densely_where_the_footage_moves() -> None:
    frames, _ = scene()
    scores = change_scores(frames)
    assert scores[0] == 0 and max(scores[1:STILL]) == 0 and min(scores[STILL + 1:]) > 5
    for count in (1, 3, 6):
        keys = pick_keys(scores, count)
        assert len(keys) == count and keys == sorted(set(keys))
        assert all(k >= STILL for k in keys), keys
    # spread over the moving part, a key near each of its ends
    keys = pick_keys(scores, 4)
    assert keys[0] <= STILL + 3 and keys[-1] >= N - 3


def test_pick_keys_counts_shares_of_change() -> None:
    uniform = [0.0] + [1.0] * 99
    assert pick_keys(uniform, 2) == [25, 74]  # each key the middle of half the change
    assert pick_keys(uniform, 1, start=10) == [59]  # 49.5: a tie goes to the earlier
    assert pick_keys([0.0] * 10, 10) == list(range(10))  # as many keys as frames
    still = pick_keys([0.0] * 30, 3)
    assert len(still) == 3 and np.ptp(np.diff(still)) <= 1  # no change: evenly spaced
    # a moving part at the end pulls the keys there, and every frame may still be a key
    scores = [0.0] * 50 + [8.0] * 10
    assert min(pick_keys(scores, 5)) >= 48
    assert pick_keys(scores, 60) == list(range(60))
    assert pick_keys([0, 1, 1, 1, 1], 2, usable=[True, False, False, False, True]) == [0, 4]
    for bad in (0, 61):
        with pytest.raises(ValueError):
            pick_keys(scores, bad)


def test_the_meter_follows_the_object_only_inside_its_matte() -> None:
    frames, masks = scene()
    meter = ChangeMeter()
    for frame in frames:
        meter.add(frame, np.zeros((H, W), bool))
    assert max(meter.scores) == 0  # no object: no change counts
    fixed = ChangeMeter()
    for frame in frames:
        fixed.add(frame, masks[0])
    assert max(fixed.scores[:STILL]) == 0 and max(fixed.scores) > 5


# looks


@pytest.mark.parametrize("name", sorted(LOOKS))
def test_looks_are_deterministic_and_keep_the_outside(footage, name: str) -> None:
    frame, disc = footage["decoded"][STILL + 4], footage["disc"][STILL + 4]
    styled = apply_look(name, frame)
    assert styled.shape == frame.shape and styled.dtype == np.uint8
    assert np.array_equal(styled, apply_look(name, frame.copy()))
    assert np.abs(styled.astype(int) - frame).mean() > 2  # it does something
    matte = cv2.GaussianBlur(disc.astype(np.float32), (0, 0), 1.5)
    matte[matte < 1e-3] = 0
    inside = apply_look(name, frame, matte)
    assert np.array_equal(inside[matte == 0], frame[matte == 0])
    assert np.array_equal(inside[matte >= 1], styled[matte >= 1])


# kinema keys


def test_cli_writes_the_picked_source_frames_by_frame(footage, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = kinema("keys", footage["clip"], "--auto", 4, "-o", out)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    frames = [int(name[:5]) for name in names]
    assert names == [f"{k:05d}.png" for k in frames] and len(frames) == 4
    assert all(k >= STILL - 1 for k in frames), frames  # where the footage moves
    for k in frames:
        assert np.array_equal(read_image(out / f"{k:05d}.png"), footage["decoded"][k])
    recipe = json.loads((tmp_path / "keys.provenance.json").read_text())["operations"][0]
    assert recipe["operation"] == "keys" and recipe["frames"] == frames
    assert (recipe["count"], recipe["start"], recipe["end"], recipe["look"]) == (4, 0, N, None)


def test_cli_range_look_and_mask(footage, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = kinema("keys", footage["clip"], "--auto", 3, "--start", 2, "--end", 14,
                    "--look", "toon", "--mask", footage["masks"], "-o", out)
    assert result.returncode == 0, result.stderr
    frames = sorted(int(p.name[:5]) for p in out.iterdir())
    assert len(frames) == 3 and all(4 <= k < 14 for k in frames), frames  # where the object is
    for k in frames:
        image, source = read_image(out / f"{k:05d}.png"), footage["decoded"][k]
        far = ~cv2.dilate(footage["disc"][k].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.array_equal(image[far], source[far])
        assert not np.array_equal(image, source)
    again = kinema("keys", footage["clip"], "--auto", 3, "--start", 2, "--end", 14, "--look",
                   "toon", "--mask", footage["masks"], "-o", out, "--overwrite")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("case", ["zero", "too-many", "look", "exists", "range"])
def test_cli_bad_input_is_one_line(footage, tmp_path: Path, case: str) -> None:
    out = tmp_path / "keys"
    args: list[str | Path] = {
        "zero": ["--auto", 0], "too-many": ["--auto", 9, "--start", 4, "--end", 12],
        "look": ["--auto", 2, "--look", "oilpaint"], "exists": ["--auto", 2],
        "range": ["--auto", 2, "--end", N + 5]}[case]
    if case == "exists":
        out.mkdir()
        (out / "mine.txt").write_text("an artist's file")
    result = kinema("keys", footage["clip"], *args, "-o", out)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    named = {"zero": "0 key", "too-many": "9 key", "look": "oilpaint", "exists": "exists",
             "range": str(N + 5)}[case]
    assert named in lines[0], lines[0]
    assert (sorted(p.name for p in out.iterdir()) == ["mine.txt"]) if case == "exists" else not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


# kinema propagate --keys auto N


def test_propagate_auto_end_to_end(footage, tmp_path: Path) -> None:
    out = tmp_path / "styled"
    result = kinema("propagate", "--keys", "auto", 2, footage["clip"], "--look", "posterize",
                    "--start", 10, "--end", 30, "-o", out)
    assert result.returncode == 0, result.stderr
    keys = tmp_path / "styled.keys"
    frames = sorted(int(p.name[:5]) for p in keys.iterdir())
    assert len(frames) == 2 and all(STILL - 1 <= k < 30 for k in frames), frames
    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(10, 30)]
    for k in frames:
        key = read_image(keys / f"{k:05d}.png")
        assert np.array_equal(key, apply_look("posterize", footage["decoded"][k]))
        assert np.array_equal(read_image(out / f"{k:05d}.png"), key)
    record = json.loads((tmp_path / "styled.provenance.json").read_text())["operations"][0]
    assert [k["frame"] for k in record["keys"]] == frames
    made = json.loads((tmp_path / "styled.keys.provenance.json").read_text())["operations"][0]
    assert made["look"] == "posterize" and made["frames"] == frames
    # an output made before is refused; the keys folder reruns as --keys DIR (after a repaint)
    again = kinema("propagate", footage["clip"], "--keys", "auto", 2, "-o", tmp_path / "other")
    assert again.returncode == 0, again.stderr
    refused = kinema("propagate", footage["clip"], "--keys", "auto:2", "-o", tmp_path / "other")
    assert refused.returncode != 0 and "error:" in refused.stderr and "other" in refused.stderr
    painted = kinema("propagate", footage["clip"], "--keys", keys, "--start", 10, "--end", 30,
                     "-o", out, "--overwrite")
    assert painted.returncode == 0, painted.stderr


@pytest.mark.parametrize("args", [["--keys", "auto", 0], ["--keys", "auto"],
                                  ["--keys", "auto", 3, "--end", 2], ["--keys", "auto", 2, "--look", "nope"],
                                  ["--keys", "auto", "two"], ["--look", "toon", "--key", "0=a.png"]])
def test_propagate_auto_bad_input_is_one_line(footage, tmp_path: Path, args: list[Any]) -> None:
    out = tmp_path / "styled"
    result = kinema("propagate", footage["clip"], *args, "-o", out)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert not out.exists() and not (tmp_path / "styled.keys").exists()


# kinema restyle --frames auto N


def test_restyle_frames_auto_picks_where_the_object_is(footage) -> None:
    from kinema.app.key_jobs import restyle_frames
    from kinema.core.jobs import run

    frames = run(restyle_frames(footage["clip"], 3, mask=footage["masks"]))
    assert len(frames) == 3 and all(STILL - 1 <= k < N for k in frames), frames


def test_restyle_frames_auto_bad_count_is_one_line(footage, tmp_path: Path) -> None:
    result = kinema("restyle", footage["clip"], "--mask", footage["masks"], "--prompt", "lava",
                    "--frames", "auto", N + 1, "-o", tmp_path / "keys")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert f"{N + 1} key" in lines[0]


def test_project_track_keys_and_progress(footage, tmp_path: Path) -> None:
    """Keys of a project's mask track, styled only inside its matte; progress counts every frame
    read and every key written, then every propagated frame, never going back."""
    from kinema.app.key_jobs import propagate_auto
    from kinema.core.jobs import run

    folder = tracked_project(tmp_path / "shot", footage["clip"], footage["disc"], "disc")
    events: list[tuple[int, int]] = []
    result = run(propagate_auto(footage["clip"], tmp_path / "out", count=2, look="sketch",
                                project=folder, track="disc", start=16, end=28),
                 on_progress=lambda e: events.append((e.done, e.total)))
    assert [d for d, _ in events] == list(range(1, 12 + 2 + 12 + 1))
    assert [t for _, t in events] == [12 + 2] * 14 + [12 + 2 + 12] * 12
    keys = result.keys
    assert len(keys.frames) == 2 and all(16 <= k < 28 for k in keys.frames)
    recipe = json.loads(keys.record.read_text())["operations"][0]
    assert recipe["track_id"] == "t1" and recipe["look"] == "sketch"
    for k in keys.frames:
        image, source = read_image(keys.output / f"{k:05d}.png"), footage["decoded"][k]
        far = ~cv2.dilate(footage["disc"][k].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.array_equal(image[far], source[far]) and not np.array_equal(image, source)
    assert sorted(p.name for p in result.propagated.output.iterdir()) == [
        f"{i:05d}.png" for i in range(16, 28)]
