"""EbSynth interchange: a shot's frames, keys and masks out in EbSynth's folders, exactly; and
numbered frames made elsewhere back into the project as a layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.ebsynth_jobs import (
    _placement,
    export_ebsynth,
    import_frames,
    numbered_images,
)
from kinema.app.evaluate import FrameEvaluator
from kinema.app.render_job import render
from kinema.app.style_keys import parse_keys
from kinema.core.errors import InvalidArgumentError, KinemaError, MediaOpenError, OutputExistsError
from kinema.document import edits, store
from kinema.document.model import ClipItem
from kinema.document.timing import TimeRange
from kinema.media import open_video
from kinema.media.image import encode_png, read_image
from kinema.media.synth import write_clip

W, H, N = 96, 64, 10


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (25 + 4 * i)) ** 2 + (yy - 30) ** 2 < 14**2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    # frame 5 is left untracked: its mask is all black
    masks = [disc(i) if i != 5 else np.zeros((H, W), bool) for i in range(N)]
    return tracked_project(tmp_path / "shot", video, masks, "ball")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for frame in (2, 7):
        (folder / f"{frame:05d}.png").write_bytes(encode_png(rng.integers(0, 256, (H, W, 3), np.uint8)))
    return folder


def run(job):
    try:
        while True:
            next(job)
    except StopIteration as stop:
        return stop.value


def test_export_writes_ebsynth_folders_exactly(project: Path, keys: Path, tmp_path: Path):
    painted = tmp_path / "painted.png"
    painted.write_bytes(encode_png(np.full((H, W, 3), 200, np.uint8)))
    given = parse_keys([str(keys), f"4={painted}"])
    done = run(export_ebsynth(project, "ball", given, tmp_path / "eb", start=1, end=9))
    out = tmp_path / "eb"
    assert (done.start, done.end, done.keys) == (1, 9, (2, 4, 7))
    assert sorted(p.name for p in out.iterdir()) == ["keys", "mask", "video"]
    names = [f"{i:05d}.png" for i in range(1, 9)]
    assert sorted(p.name for p in (out / "video").iterdir()) == names
    assert sorted(p.name for p in (out / "mask").iterdir()) == names
    with open_video(tmp_path / "shot.mp4") as reader:
        for i in range(1, 9):
            assert np.array_equal(read_image(out / "video" / f"{i:05d}.png"), reader[i])
            mask = read_image(out / "mask" / f"{i:05d}.png")
            assert mask.dtype == np.uint8
            want = np.zeros((H, W), bool) if i == 5 else disc(i)
            assert np.array_equal(mask.reshape(H, W, -1)[..., 0], want * np.uint8(255))
            assert set(np.unique(mask)) <= {0, 255}
    assert sorted(p.name for p in (out / "keys").iterdir()) == ["00002.png", "00004.png", "00007.png"]
    assert (out / "keys" / "00002.png").read_bytes() == (keys / "00002.png").read_bytes()
    assert (out / "keys" / "00007.png").read_bytes() == (keys / "00007.png").read_bytes()
    assert (out / "keys" / "00004.png").read_bytes() == painted.read_bytes()

    # again only with --overwrite; the new export replaces the old one whole
    with pytest.raises(OutputExistsError):
        run(export_ebsynth(project, "t1", given, out))
    run(export_ebsynth(project, "t1", {2: keys / "00002.png"}, out, overwrite=True))
    assert len(list((out / "video").iterdir())) == N
    assert [p.name for p in (out / "keys").iterdir()] == ["00002.png"]
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "eb").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_bad_exports_are_one_error_and_leave_nothing(project: Path, keys: Path, tmp_path: Path):
    small = tmp_path / "small.png"
    small.write_bytes(encode_png(np.zeros((H // 2, W // 2, 3), np.uint8)))
    full = tmp_path / "full.png"
    full.write_bytes(encode_png(np.zeros((H, W, 3), np.uint8)))
    out = tmp_path / "eb"
    cases = [
        ("t1", {3: small}, {}, "is 48x32 but shot.mp4 is 96x64"),
        ("t1", {N: full}, {}, "has frames 0-9"),
        ("t1", {2: full}, {"start": 4}, "outside the range 4:10"),
        ("nope", {2: full}, {}, "no mask track 'nope'"),
        ("t1", {2: tmp_path / "missing.png"}, {}, "not found"),
        ("t1", {2: full}, {"end": N + 1}, "not inside"),
        ("t1", {}, {}, "no keys"),
    ]
    for track, given, options, message in cases:
        with pytest.raises(KinemaError, match=message):
            run(export_ebsynth(project, track, given, out, **options))
        _nothing_written(tmp_path)
    with pytest.raises(InvalidArgumentError, match="neither a folder nor"):
        parse_keys(["x=keys.png"])
    with pytest.raises(InvalidArgumentError, match="two keys"):
        parse_keys([str(keys), f"7={full}"])
    # a folder with someone else's files is never replaced
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="kinema did not write"):
        run(export_ebsynth(project, "t1", {2: full}, out, overwrite=True))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_import_frames_round_trips_through_a_render(project: Path, tmp_path: Path):
    run(export_ebsynth(project, "t1", {3: _key(tmp_path)}, tmp_path / "eb", start=3, end=8))
    done = run(import_frames(tmp_path / "eb" / "video", project, track="ball"))
    assert (done.start, done.frames) == (3, 5)
    assert done.movie.parent == project / "imports" and done.movie.is_file()
    doc = store.load(project)
    layer = doc.timeline.video_layers[-1]
    assert layer.id == done.layer_id and len(doc.timeline.video_layers) == 2
    (clip,) = layer.items
    assert isinstance(clip, ClipItem) and clip.start == 3 and clip.media_id == done.media_id
    assert doc.media[done.media_id].frames == 5
    # the source's layer hidden, a render shows only the imported frames
    with store.ProjectFile(project) as pf:
        pf.history.do(edits.set_layer("l1", visible=False))
        pf.save()
    run(render(project, tmp_path / "render", start=3, stop=8))
    rendered = sorted((tmp_path / "render").glob("*.png"))
    assert len(rendered) == 5
    with open_video(tmp_path / "shot.mp4") as source:
        for t, path in zip(range(3, 8), rendered, strict=True):
            image = read_image(path)
            assert image.shape[2] == 3 or (image[..., 3] == 255).all()
            diff = np.abs(image[..., :3].astype(int) - source[t])
            # ProRes 4444 (10-bit 4:4:4) is near-lossless, not bit-exact
            assert diff.mean() < 1.0 and diff.max() <= 6, (t, diff.mean(), diff.max())


def test_track_places_frames_where_the_timeline_shows_them(project: Path):
    doc = store.load(project)
    clip = doc.timeline.video_layers[0].items[0]
    moved = doc.model_copy(deep=True)
    moved.timeline.duration = N + 20
    moved.timeline.video_layers[0].items[0] = clip.model_copy(update={
        "start": 20, "source_range": TimeRange.from_frames(2, N - 2, doc.timeline.rate)})
    assert _placement(moved, project, 4, 3, None, "ball") == 22  # source 2 is timeline 20
    assert _placement(moved, project, 4, 3, 7, None) == 7
    assert _placement(moved, project, 4, 3, None, None) == 4
    with pytest.raises(InvalidArgumentError, match="no clip of track 'ball'"):
        _placement(moved, project, 0, 3, None, "ball")  # frames 0-1 are not on the timeline


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "k.png"
    path.write_bytes(encode_png(np.zeros((H, W, 3), np.uint8)))
    return path


def test_import_places_by_number_or_at(project: Path, tmp_path: Path):
    frames = tmp_path / "out"
    frames.mkdir()
    for n in range(4, 7):  # RGBA frames keep their alpha
        rgba = np.zeros((H, W, 4), np.uint8)
        rgba[..., 0] = 255
        rgba[:, : W // 2, 3] = 255
        (frames / f"frame_{n:04d}.png").write_bytes(encode_png(rgba))
    assert [n for n, _ in numbered_images(frames)] == [4, 5, 6]
    done = run(import_frames(frames, project))
    assert (done.start, done.frames) == (4, 3)
    again = run(import_frames(frames, project, at=0))
    assert again.start == 0 and again.movie.name == "out-2.mov" and again.layer_id != done.layer_id
    doc = store.load(project)
    evaluator = FrameEvaluator(doc, project)
    try:
        with open_video(tmp_path / "shot.mp4") as source:
            shown = evaluator.frame(1).astype(int)
            assert np.abs(shown[:, : W // 2] - [255, 0, 0]).max() <= 6
            assert np.abs(shown[:, W // 2 + 2:] - source[1][:, W // 2 + 2:]).max() <= 1
    finally:
        evaluator.close()


def test_bad_imports(project: Path, tmp_path: Path):
    frames = tmp_path / "seq"
    frames.mkdir()
    with pytest.raises(InvalidArgumentError, match="no numbered images"):
        run(import_frames(frames, project))
    for n in (0, 1, 3):
        (frames / f"{n:05d}.png").write_bytes(encode_png(np.zeros((H, W, 3), np.uint8)))
    with pytest.raises(InvalidArgumentError, match="frame 2 is missing"):
        run(import_frames(frames, project))
    (frames / "00002.png").write_bytes(encode_png(np.zeros((H + 2, W, 3), np.uint8)))
    with pytest.raises(InvalidArgumentError, match="unlike the first frame"):
        run(import_frames(frames, project))
    shutil.copy(frames / "00000.png", frames / "00002.png")
    with pytest.raises(InvalidArgumentError, match="outside the timeline"):
        run(import_frames(frames, project, at=N - 2))
    with pytest.raises(MediaOpenError, match="not found"):
        run(import_frames(tmp_path / "nowhere", project))
    # nothing of the failed imports is left in the project
    assert not (project / "imports").exists()
    assert len(store.load(project).timeline.video_layers) == 1


def test_cli(project: Path, keys: Path, tmp_path: Path):
    kinema = [sys.executable, "-m", "kinema"]
    made = subprocess.run(kinema + ["export", "ebsynth", str(project), "-t", "ball", "--keys", str(keys),
                                    "--end", "8", "-o", str(tmp_path / "eb")],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "frames 0-7, keys 2, 7" in made.stdout
    bad = subprocess.run(kinema + ["export", "ebsynth", str(project), "-t", "ball", "--keys", str(keys),
                                   "-o", str(tmp_path / "eb")], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.count("error:") == 1 and "Traceback" not in bad.stderr
    back = subprocess.run(kinema + ["import", "frames", str(tmp_path / "eb" / "video"), str(project)],
                          capture_output=True, text=True)
    assert back.returncode == 0, back.stderr
    assert "imported 8 frames" in back.stdout
