"""kinema segment / track through the CLI: the three output formats, projects, bad prompts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinema.app.project_jobs import new_project
from kinema.cli.prompt_args import parse_prompts
from kinema.cli.vision_commands import _ordered_prompts
from kinema.core.errors import InvalidArgumentError
from kinema.document import store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.media.image import read_labels
from kinema.media.reader import open_video
from kinema.media.writer import VideoWriter
from kinema.vision.maskops import iou
from kinema.vision.synthetic import moving_object

N = 24


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, list[np.ndarray], tuple[int, int]]:
    """A lossless clip of the moving-object scene, its true masks, and a click on the object."""
    folder = tmp_path_factory.mktemp("scene")
    s = moving_object(n=N, size=(320, 240), seed=1)
    clip = folder / "scene.mkv"
    with VideoWriter(clip, 24, (320, 240), codec="h264", options={"qp": "0", "crf": "0"}) as w:
        for f in s.frames:
            w.write(f)
    ys, xs = np.nonzero(s.masks[0])
    return clip, s.masks, (int(xs.mean()), int(ys.mean()))


def kinema(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          check=check)


def test_track_writes_npz_pngs_and_a_matte(scene, tmp_path: Path):
    clip, masks, (x, y) = scene
    kinema("track", str(clip), "--point", f"{x},{y}@0", "-o", str(tmp_path / "m.npz"))
    labels = np.load(tmp_path / "m.npz")["masks"]
    assert labels.shape == (N, 240, 320) and labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
    assert np.mean([iou(labels[i] == 1, masks[i]) for i in range(N)]) >= 0.9

    kinema("track", str(clip), "--point", f"{x},{y}@0", "-o", str(tmp_path / "davis"))
    pngs = sorted((tmp_path / "davis").iterdir())
    assert [p.name for p in pngs[:2]] == ["00000.png", "00001.png"] and len(pngs) == N
    assert np.array_equal(read_labels(pngs[7]), labels[7])

    kinema("track", str(clip), "--point", f"{x},{y}@0", "-o", str(tmp_path / "matte.mov"))
    with open_video(tmp_path / "matte.mov", alpha=True) as matte:
        assert len(matte) == N
        assert np.abs(matte[7][..., 3].astype(int) - (labels[7] > 0) * 255).max() <= 2


def test_objects_ranges_and_reverse(scene, tmp_path: Path):
    clip, masks, (x, y) = scene
    out = tmp_path / "two.npz"
    patch = np.zeros_like(masks[0])
    patch[5:50, 5:60] = True  # a piece of the background as a second object
    kinema("track", str(clip), "--object", "1", "--point", f"{x},{y}@5", "--object", "2",
           "--mask", f"{_mask_png(tmp_path, patch)}@5", "--start", "5", "--end", "15", "-o", str(out))
    labels = np.load(out)["masks"]
    assert set(np.unique(labels[5:15])) == {0, 1, 2}
    assert not labels[:5].any() and not labels[15:].any()  # outside the range: background
    back = tmp_path / "back.npz"
    kinema("track", str(clip), "--point", f"{x},{y}@0", "--mask", f"{_mask_png(tmp_path, masks[20])}@20",
           "--reverse", "--end", "21", "-o", str(back))
    labels = np.load(back)["masks"]
    assert iou(labels[20] == 1, masks[20]) == 1.0  # the mask prompt itself
    assert np.mean([iou(labels[i] == 1, masks[i]) for i in range(21)]) >= 0.85


def _mask_png(folder: Path, mask: np.ndarray) -> Path:
    from kinema.app.mask_outputs import davis_palette
    from kinema.media.image import encode_palette_png

    path = folder / f"prompt{int(mask.sum())}.png"
    path.write_bytes(encode_palette_png(mask.astype(np.uint8), davis_palette()))
    return path


def test_segment_one_frame(scene, tmp_path: Path):
    clip, masks, (x, y) = scene
    kinema("segment", str(clip), "--frame", "3", "--point", f"{x + 5},{y}", "-o", str(tmp_path / "f.png"))
    assert iou(read_labels(tmp_path / "f.png") == 1, masks[3]) >= 0.9


def test_project_gets_mask_tracks(scene, tmp_path: Path):
    clip, masks, (x, y) = scene
    folder = new_project(tmp_path / "p", clip)
    kinema("track", str(clip), "--point", f"{x},{y}@0", "--project", str(folder))
    project = store.load(folder)
    assert list(project.mask_tracks) == ["obj1"]
    track = MaskTrackStore(folder / "masks" / "obj1", N, 320, 240)
    assert track.keyframes() == [0] and track.state(10) == FrameState.PROPAGATED
    assert iou(track.read(10), masks[10]) >= 0.9


def test_bad_prompts_are_one_line_errors(scene, tmp_path: Path):
    clip, _, _ = scene
    for args, message in [
        (["--point", "10,10"], "does not say which frame"),
        (["--point", "10@0"], "is not X,Y"),
        (["--point", "10,10@2", "--start", "0"], "has no prompt"),
        (["--point", "999,10@0"], "outside"),
        (["--box", "50,50,10,10@0"], "x0 < x1"),
        (["--text", "person@0", "--backend", "nope"], "unknown backend"),
    ]:
        run = kinema("track", str(clip), *args, "-o", str(tmp_path / "x.npz"), check=False)
        assert run.returncode != 0 and message in run.stderr, (args, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.npz").exists()
    run = kinema("track", str(clip), "--point", "10,10@0", "--backend", "sam2",
                 "--model", "sam2-large", "-o", str(tmp_path / "x.npz"), check=False)
    assert run.returncode == 1 and "kinema models pull sam2-large" in run.stderr


def test_prompt_parsing_keeps_object_groups():
    pairs = _ordered_prompts(["track", "v.mp4", "--point", "1,2@0", "--object", "3", "--neg=4,5@0",
                              "--box", "0,0,9,9@4", "-o", "x.npz"])
    prompts = parse_prompts(pairs, None)
    assert [(p.object_id, p.frame, p.labels) for p in prompts] == [(1, 0, (1,)), (3, 0, (0,)), (3, 4, ())]
    with pytest.raises(InvalidArgumentError):
        parse_prompts([("--object", "x")], None)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "gdino"
    run = kinema("models", "tiny", "grounding-dino-tiny", str(folder))
    assert "--detector" in run.stdout and not run.stderr
    return folder


def test_text_prompts_become_boxes_then_masks(scene, tiny_detector: Path, tmp_path: Path):
    from kinema.app.segment_jobs import ModelChoice, ground_text
    from kinema.vision.base import Prompt

    clip, _, _ = scene
    frames = [np.zeros((240, 320, 3), np.uint8)] * 3
    boxes = ground_text(frames, [Prompt(frame=2, object_id=4, text="person"),
                                 Prompt(frame=2, object_id=1, points=((5, 5),), labels=(1,))],
                        ModelChoice(detector=str(tiny_detector), min_score=0.0, max_objects=3))
    assert [(p.object_id, p.frame, p.text) for p in boxes] == [(4, 2, None), (5, 2, None), (6, 2, None),
                                                               (1, 2, None)]
    assert all(0 <= p.box[0] < p.box[2] <= 320 and 0 <= p.box[1] < p.box[3] <= 240 for p in boxes[:3])
    # No score reaches 1.01: nothing is found, and the CLI says so in one line.
    run = kinema("track", str(clip), "--text", "person@0", "--detector", str(tiny_detector),
                 "--min-score", "1.01", "-o", str(tmp_path / "t.npz"), check=False)
    assert run.returncode == 2 and "nothing matching 'person'" in run.stderr
    kinema("track", str(clip), "--text", "person@0", "--detector", str(tiny_detector),
           "--min-score", "0", "-o", str(tmp_path / "t.npz"))
    assert np.load(tmp_path / "t.npz")["masks"].shape == (N, 240, 320)


def test_models_commands(tmp_path: Path, monkeypatch):
    listing = kinema("models", "list", "--json")
    import json

    names = {m["name"]: m for m in json.loads(listing.stdout)}
    assert {"sam2-tiny", "grounding-dino-tiny"} <= set(names)
    run = kinema("models", "path", "sam2-small", check=False)
    assert run.returncode == 1 and "kinema models pull sam2-small" in run.stderr
    run = kinema("models", "path", "nope", check=False)
    assert run.returncode == 2 and "known models" in run.stderr


def test_sam2_backend_through_the_cli(scene, tmp_path: Path):
    """A tiny random-weight SAM 2, found by name under $KINEMA_MODELS, end to end: masks are
    meaningless, the plumbing (prompts, objects, formats, sizes) is not."""
    import os

    clip, _, (x, y) = scene
    models = tmp_path / "models"
    kinema("models", "tiny", "sam2-tiny", str(models / "sam2-tiny"))
    env = {**os.environ, "KINEMA_MODELS": str(models), "HF_HUB_OFFLINE": "1"}
    path = subprocess.run([sys.executable, "-m", "kinema", "models", "path", "sam2-tiny"],
                          capture_output=True, text=True, env=env, check=True)
    assert path.stdout.strip() == str(models / "sam2-tiny")
    run = subprocess.run([sys.executable, "-m", "kinema", "track", str(clip), "--backend", "sam2",
                          "--model", "sam2-tiny", "--point", f"{x},{y}@0", "--object", "2",
                          "--box", "200,20,300,100@0", "--end", "12", "-o", str(tmp_path / "s.npz")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    labels = np.load(tmp_path / "s.npz")["masks"]
    assert labels.shape == (N, 240, 320) and set(np.unique(labels)) <= {0, 1, 2}
    assert not labels[12:].any()
    one = subprocess.run([sys.executable, "-m", "kinema", "segment", str(clip), "-f", "3", "--backend",
                          "sam2", "--model", str(models / "sam2-tiny"), "--point", f"{x},{y}",
                          "-o", str(tmp_path / "s.png")], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    assert read_labels(tmp_path / "s.png").shape == (240, 320)


def test_cleanups(scene, tmp_path: Path):
    from kinema.app.segment_jobs import Cleanup, _packed, _smoothed, _unpacked

    base = np.zeros((8, 8), np.uint8)
    base[2:6, 2:6] = 1
    flicker = base.copy()
    flicker[0, 0] = 1  # one frame only
    results = {i: _packed(m) for i, m in enumerate([base, base, flicker, base, base])}
    smooth = _smoothed(results, (8, 8), 1)
    assert not _unpacked(smooth[2], (8, 8))[0, 0] and np.array_equal(_unpacked(smooth[4], (8, 8)), base)
    holed = np.zeros((20, 20), bool)
    holed[2:15, 2:15] = True
    holed[6, 6] = False
    holed[18, 18] = True  # an island
    cleaned = Cleanup(fill_holes=4, min_island=4).frame({1: holed})[1]
    assert cleaned[6, 6] and not cleaned[18, 18]

    clip, masks, (x, y) = scene
    kinema("track", str(clip), "--point", f"{x},{y}@0", "--smooth", "1", "--fill-holes", "200",
           "--min-island", "50", "-o", str(tmp_path / "c.npz"))
    labels = np.load(tmp_path / "c.npz")["masks"]
    assert np.mean([iou(labels[i] == 1, masks[i]) for i in range(N)]) >= 0.9
