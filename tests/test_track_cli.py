"""kinema segment / track through the CLI: the three output formats, projects, bad prompts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kinema.app.project_jobs import new_project
from kinema.cli.main import app
from kinema.cli.prompt_args import parse_prompts
from kinema.core.errors import InvalidArgumentError
from kinema.core.hashing import files_sha256
from kinema.document import edits, store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.document.model import LayerMask, object_colour
from kinema.document.recipes import InputRef, ModelRef, PromptRecord, TrackRecipe
from kinema.media import open_video
from kinema.media.image import read_labels
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
    kinema("track", str(clip), "--point", f"{x},{y}@0", "--object", "2", "--box", "10,10,60,60@0",
           "--smooth", "1", "--project", str(folder))
    project = store.load(folder)
    assert list(project.mask_tracks) == ["obj1", "obj2"]
    track = MaskTrackStore(folder / "masks" / "obj1", N, 320, 240)
    assert track.keyframes() == [0] and track.state(10) == FrameState.PROPAGATED
    assert iou(track.read(10), masks[10]) >= 0.9
    # each object in its own colour, each with the recipe that made it
    one, two = project.mask_tracks["obj1"], project.mask_tracks["obj2"]
    assert (one.color, two.color) == (object_colour(1), object_colour(2)) and one.color != two.color
    recipe = project.recipes[one.recipe_id]
    assert isinstance(recipe, TrackRecipe) and recipe.model is None  # classic: no weights
    assert recipe.backend == "classic" and recipe.smooth == 1
    assert recipe.prompts == [PromptRecord(frame=0, object=1, points=[(x, y)], labels=[1])]
    assert recipe.start == 0 and recipe.end == N
    assert recipe.inputs == [InputRef(id="m1", sha256=project.media["m1"].sha256)]
    assert project.recipes[two.recipe_id].prompts[0].box == (10, 10, 60, 60)

    # tracking again replaces the object's masks and recipe; renders name the recipe they use
    kinema("track", str(clip), "--point", f"{x},{y}@0", "--end", "12", "--project", str(folder))
    project = store.load(folder)
    assert sorted(project.recipes) == ["track-obj1", "track-obj2"]
    assert project.recipes["track-obj1"].end == 12
    again = MaskTrackStore(folder / "masks" / "obj1", N, 320, 240)
    assert again.read(11) is not None and all(again.read(i) is None for i in range(12, N))
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.set_layer("l1", mask=LayerMask(track_id="obj1")))
        pf.save()
    kinema("render", str(folder), "-o", str(tmp_path / "r.mp4"), "--range", "0:4")
    record = json.loads(kinema("provenance", str(tmp_path / "r.mp4")).stdout)
    assert [op["id"] for op in record["operations"]] == ["track-obj1"]
    assert record["operations"][0]["prompts"][0]["points"] == [[x, y]]


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


def test_object_groups_in_process(scene, tmp_path: Path):
    """track takes the order of its prompt options from click, not from sys.argv: called in-process
    (here through typer's runner) each --object still groups the prompts after it."""
    clip, masks, (x, y) = scene
    patch = np.zeros_like(masks[0])
    patch[5:50, 5:60] = True
    out, png = tmp_path / "two.npz", _mask_png(tmp_path, patch)
    run = CliRunner().invoke(app, ["track", str(clip), "--object", "2", f"--mask={png}@5", "--object", "1",
                                   "--point", f"{x},{y}@5", "--start", "5", "--end", "8", "-o", str(out)])
    assert run.exit_code == 0, run.output
    labels = np.load(out)["masks"]
    assert set(np.unique(labels[5:8])) == {0, 1, 2} and iou(labels[5] == 2, patch) >= 0.9
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
    folder = new_project(tmp_path / "p", clip)
    run = subprocess.run([sys.executable, "-m", "kinema", "track", str(clip), "--backend", "sam2",
                          "--model", "sam2-tiny", "--point", f"{x},{y}@0", "--end", "4",
                          "--project", str(folder)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    recipe = store.load(folder).recipes["track-obj1"]
    weights = sorted((models / "sam2-tiny").glob("*.safetensors"))
    assert recipe.model == ModelRef(model_id="facebook/sam2.1-hiera-tiny", revision="main",
                                    weights_sha256=files_sha256(weights))
    assert recipe.backend == "sam2"
    one = subprocess.run([sys.executable, "-m", "kinema", "segment", str(clip), "-f", "3", "--backend",
                          "sam2", "--model", str(models / "sam2-tiny"), "--point", f"{x},{y}",
                          "-o", str(tmp_path / "s.png")], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    assert read_labels(tmp_path / "s.png").shape == (240, 320)


def test_cleanups(scene, tmp_path: Path):
    from kinema.app.segment_jobs import Cleanup, smoothed

    base = np.zeros((8, 8), np.uint8)
    base[2:6, 2:6] = 1
    flicker = base.copy()
    flicker[0, 0] = 1  # one frame only
    smooth = dict(smoothed(enumerate([base, base, flicker, base, base]), 1))
    assert not smooth[2][0, 0] and np.array_equal(smooth[4], base)
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


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_streamed_smoothing_is_the_whole_clip_majority(radius):
    """Smoothing a frame at a time, in either tracking order, gives each object's majority over
    the whole run of frames (maskops.temporal_smooth), later ids winning where they overlap."""
    from kinema.app.segment_jobs import smoothed
    from kinema.vision.maskops import temporal_smooth

    rng = np.random.default_rng(radius)
    frames = [rng.choice(np.array([0, 0, 1, 2], np.uint8), (6, 7)) for _ in range(9)]
    expected = [np.zeros((6, 7), np.uint8) for _ in frames]
    for object_id in (1, 2):
        for k, voted in enumerate(temporal_smooth([f == object_id for f in frames], radius)):
            expected[k][voted] = object_id
    forward = list(smoothed(enumerate(frames), radius))
    backward = list(smoothed(reversed(list(enumerate(frames))), radius))
    assert [i for i, _ in forward] == list(range(9)) and [i for i, _ in backward] == list(range(8, -1, -1))
    assert all(np.array_equal(labels, expected[i]) for i, labels in forward + backward)


@pytest.mark.parametrize(("start", "end", "reverse"), [(None, 10, False), (0, 10, True)])
def test_masks_are_written_as_they_are_tracked(scene, tmp_path: Path, monkeypatch, start, end, reverse):
    """Forwards each mask reaches the writer before the next frame is tracked; backwards they
    wait on disk and are written in frame order at the end. Progress counts the tracked frames."""
    from kinema.app import mask_outputs
    from kinema.app.segment_jobs import track_to
    from kinema.vision.base import Prompt

    clip, masks, _ = scene
    events: list[str] = []
    written: list[np.ndarray] = []

    class Recorder:
        def write(self, labels: np.ndarray) -> None:
            events.append("frame")
            written.append(labels.copy())

        def close(self) -> Path:
            events.append("closed")
            return tmp_path

        def abort(self) -> None:
            events.append("aborted")

    monkeypatch.setattr(mask_outputs, "open_labels", lambda *args: Recorder())
    at = 9 if reverse else 0
    for p in track_to(clip, [Prompt(frame=at, mask=masks[at])], tmp_path / "m.npz",
                      start=start, end=end, reverse=reverse):
        events.append(f"{p.done}/{p.total}")
    progress = [e for e in events if "/" in e]
    assert progress == [f"{k}/10" for k in range(1, 11)]
    if reverse:
        assert events[:10] == progress and events[10:] == ["frame"] * N + ["closed"]
    else:
        assert events[:4] == ["frame", "1/10", "frame", "2/10"] and events[-1] == "closed"
    assert len(written) == N and not np.any(written[10:])
    assert np.array_equal(written[at], masks[at].astype(np.uint8))


def test_tracking_memory_does_not_grow_with_the_clip(scene, tmp_path: Path):
    """Memory (traced) of tracking into an .npz and a project, 24 frames against 8: what is held
    when the last frame is tracked, and the peak over the whole job."""
    import tracemalloc

    from kinema.app.segment_jobs import track_to
    from kinema.vision.base import Prompt

    clip, masks, _ = scene
    folder = new_project(tmp_path / "p", clip)

    def measure(end: int) -> tuple[int, int]:
        tracemalloc.start()
        for p in track_to(clip, [Prompt(frame=0, mask=masks[0])], tmp_path / "m.npz",
                          project=folder, end=end, overwrite=True):
            held = tracemalloc.get_traced_memory()[0] if p.done == p.total else 0
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return held, top

    measure(8)  # a first run pays for imports and caches
    (held, top), (held_long, top_long) = measure(8), measure(N)
    mask = masks[0].nbytes  # 16 more frames held would be 16 of these and more
    assert held_long - held < mask and top_long - top < 8 * mask, (held, held_long, top, top_long)


def test_frames_outside_the_clip_are_errors_naming_the_range(scene, tmp_path: Path):
    clip, _, (x, y) = scene
    for command, message in [
        (["segment", "--frame", "500", "--point", f"{x},{y}"], "frame 500 is outside the video (0..23)"),
        (["segment", "--frame", "-3", "--point", f"{x},{y}"], "frame -3 is outside the video (0..23)"),
        (["track", "--point", f"{x},{y}@0", "--end", "5000"], "end frame 5000 is outside 1..24"),
        (["track", "--point", f"{x},{y}@0", "--end", "0"], "end frame 0 is outside 1..24"),
        (["track", "--point", f"{x},{y}@0", "--start", "-2"], "start frame -2 is outside the video (0..23)"),
        (["track", "--point", f"{x},{y}@30"], "outside the video (0..23)"),
    ]:
        out = tmp_path / ("f.png" if command[0] == "segment" else "t.npz")
        run = kinema(command[0], str(clip), *command[1:], "-o", str(out), check=False)
        assert run.returncode == 2 and message in run.stderr, (command, run.stderr)
        assert run.stderr.count("\n") == 1 and not out.exists()


def test_tiny_clips_track(make_clip, tmp_path: Path):
    """Frames under 12 px a side (too small for DIS flow) are tracked, not a cv2 traceback."""
    clip = make_clip("tiny8.mp4", n=6, size=(8, 8))
    run = kinema("track", str(clip), "--point", "4,4@0", "-o", str(tmp_path / "t.npz"), check=False)
    assert run.returncode == 0, run.stderr
    assert np.load(tmp_path / "t.npz")["masks"].shape == (6, 8, 8)


def test_an_output_that_is_the_current_folder(scene, tmp_path: Path):
    """``-o .`` is the current folder: one error line while it holds other files, and with
    --overwrite the frames go there beside them (it used to be a ValueError traceback)."""
    clip, _, (x, y) = scene
    (tmp_path / "notes.txt").write_text("mine")
    args = [sys.executable, "-m", "kinema", "track", str(clip), "--point", f"{x},{y}@0", "--end", "3",
            "-o", "."]
    run = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0 and run.stderr.startswith("error:") and run.stderr.count("\n") == 1
    run = subprocess.run([*args, "--overwrite"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "00000.png").is_file() and (tmp_path / "notes.txt").read_text() == "mine"
