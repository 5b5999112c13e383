"""A project's style layer: painted keys carried through the shot into a cache, the layer over
its clip exactly what ``kinema propagate`` makes, a changed key redoing only the frames it
reaches, and a render refusing keys the document does not know."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.evaluate import FRAME_NAME, FrameEvaluator, cache_folder, footage_frame
from kinema.app.propagate_jobs import propagate_video
from kinema.app.render_job import render
from kinema.app.style_layer import Span, spans, stylize
from kinema.core.errors import InvalidArgumentError
from kinema.core.jobs import run
from kinema.document import edits, store
from kinema.document.model import StyleItem
from kinema.document.recipes import StyleKey
from kinema.media import open_video
from kinema.media.image import encode_png, read_image
from kinema.media.synth import write_clip

W, H, N = 96, 64, 12


def disc(i: int, radius: int = 14) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (25 + 3 * i)) ** 2 + (yy - 30) ** 2 < radius**2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder = tracked_project(tmp_path / "shot", video, [disc(i) for i in range(N)], "ball")
    return folder


def paint(path: Path, seed: int) -> Path:
    path.write_bytes(encode_png(np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)))
    return path


@pytest.fixture
def painted(tmp_path: Path) -> dict[int, Path]:
    return {2: paint(tmp_path / "two.png", 1), 8: paint(tmp_path / "eight.png", 2)}


def test_spans_depend_on_the_keys_around_them() -> None:
    a, b = StyleKey(frame=3, sha256="a"), StyleKey(frame=7, sha256="b")
    assert spans([b, a], 0, 10) == [Span(0, 3, None, a), Span(3, 4, a, a), Span(4, 7, a, b),
                                    Span(7, 8, b, b), Span(8, 10, b, None)]
    assert [s.reads for s in spans([a, b], 0, 10)] == [range(0, 4), range(3, 4), range(3, 8),
                                                      range(7, 8), range(7, 10)]
    # a key outside the item's frames widens them; adjacent keys leave no gap between them
    c = StyleKey(frame=4, sha256="c")
    assert spans([a, c], 5, 6) == [Span(3, 4, a, a), Span(4, 5, c, c), Span(5, 6, c, None)]
    assert spans([], 0, 10) == []


def test_painted_keys_become_a_layer_that_is_the_propagate_output(project: Path, painted, tmp_path: Path):
    result = run(stylize(project, track="ball", keys=painted))
    assert result.changes == ["key 2 painted", "key 8 painted"]
    (update,) = result.updates
    assert (update.styled, update.kept) == (N, 0)
    doc = store.load(project)
    layer = doc.timeline.video_layers[-1]
    (item,) = layer.items
    assert isinstance(item, StyleItem) and layer.name == "ball style" and item.keys_path is None
    assert [(k.frame, Path(k.path).name) for k in item.keys] == [(2, "two.png"), (8, "eight.png")]
    cache = cache_folder(project, item.id)
    assert sorted(p.name for p in cache.glob("*.png")) == [FRAME_NAME.format(i) for i in range(N)]
    # the same keys through kinema propagate in project-track mode
    reference = run(propagate_video(tmp_path / "shot.mp4", tmp_path / "ref", keys=painted,
                                    project=project, track="ball"))
    evaluator = FrameEvaluator(doc, project)
    with open_video(tmp_path / "shot.mp4") as source:
        for i in range(N):
            shown = evaluator.frame(i).astype(int)
            want = read_image(reference.output / FRAME_NAME.format(i)).astype(int)
            outside = ~(disc(i) | (read_image(cache / FRAME_NAME.format(i))[..., 3] > 0))
            if i in painted:  # key frames: the key inside the object (off its feathered edge)
                key = read_image(painted[i]).astype(int)
                assert np.abs(shown - key)[disc(i, 11)].max() <= 1
            else:
                assert np.abs(shown - want).max() <= 1, i
            assert (shown[outside] == source[i][outside]).all()
    evaluator.close()


def test_a_repainted_key_redoes_only_the_frames_it_reaches(project: Path, painted, tmp_path: Path):
    run(stylize(project, track="ball", keys=painted))
    cache = cache_folder(project, "s1")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.glob("*.png")}
    paint(painted[8], 3)  # the artist repaints frame 8's key in place
    with pytest.raises(InvalidArgumentError, match="key of frame 8 changed"):
        run(render(project, tmp_path / "render"))
    assert not list(tmp_path.glob("*render*"))  # refused before anything was written
    result = run(stylize(project))
    assert result.changes == ["s1: key 8 changed"]
    (update,) = result.updates
    assert (update.styled, update.kept) == (N - 3, 3)  # frames 3-11 again, 0-2 from the cache
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.glob("*.png")}
    for i in range(N):
        name = FRAME_NAME.format(i)
        assert (after[name] == before[name]) == (i <= 2), i
    # nothing changed: nothing propagated again, and a render takes the cache as it is
    assert run(stylize(project)).updates[0].styled == 0
    run(render(project, tmp_path / "render"))
    rendered = sorted((tmp_path / "render").glob("*.png"))
    key = read_image(painted[8]).astype(int)
    assert len(rendered) == N
    assert np.abs(read_image(rendered[8])[..., :3].astype(int) - key)[disc(8, 11)].max() <= 1


def test_a_key_added_to_a_keys_folder_is_taken_in(project: Path, tmp_path: Path):
    keys = tmp_path / "keys"
    keys.mkdir()
    paint(keys / "00004.png", 4)
    with store.ProjectFile(project) as pf:
        item = StyleItem(id="s1", track_id="t1", keys_path=str(keys), start=0, duration=N,
                         keys=[StyleKey(frame=4, sha256=_sha(keys / "00004.png"))])
        pf.history.do(edits.add_layer(_layer(item)))
        pf.save()
    assert run(stylize(project)).updates[0].styled == N
    paint(keys / "00010.png", 10)
    result = run(stylize(project))
    assert result.changes == ["s1: key 10 added"]
    assert result.updates[0].styled == N - 5  # the gap 5-9, the key and frame 11
    (keys / "00004.png").unlink()
    assert run(stylize(project)).changes == ["s1: key 4 gone"]


def test_the_layer_follows_its_clip_on_the_timeline(project: Path):
    doc = store.load(project)
    item = StyleItem(id="s1", track_id="t1", start=20, duration=5, source_start=3)
    assert [footage_frame(doc, item, t) for t in (19, 20, 24, 25)] == [None, 3, 7, None]


def test_bad_input_is_one_line(project: Path, tmp_path: Path):
    small = tmp_path / "small.png"
    small.write_bytes(encode_png(np.zeros((H // 2, W // 2, 3), np.uint8)))
    for args, message in [
        (["--track", "ball", "--key", f"2={small}"], "is 48x32 but shot.mp4 is 96x64"),
        (["--track", "ball", "--key", f"40={small}"], "frames 0-11"),
        (["--track", "nobody", "--key", f"2={small}"], "nobody"),
        ([], "no style layer"),
        (["--key", f"2={small}"], "needs the object"),
    ]:
        done = subprocess.run([sys.executable, "-m", "kinema", "stylize", str(project), *args],
                              capture_output=True, text=True)
        assert done.returncode != 0 and done.stderr.count("error:") == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (project / "cache" / "styles").exists()
    assert len(store.load(project).timeline.video_layers) == 1


def _sha(path: Path) -> str:
    from kinema.core.hashing import file_sha256

    return file_sha256(path)


def _layer(item: StyleItem):
    from kinema.document.model import VideoLayer

    return VideoLayer(id="l9", name="style", items=[item])


def test_exr_and_16_bit_keys_read_as_the_8_bit_painting(tmp_path: Path):
    from kinema.app.style_keys import read_key
    from kinema.media.image import encode_exr, srgb_to_linear

    key = np.random.default_rng(5).integers(0, 256, (H, W, 3), np.uint8)
    (tmp_path / "deep.png").write_bytes(encode_png(key.astype(np.uint16) * 257))
    (tmp_path / "linear.exr").write_bytes(encode_exr(srgb_to_linear(key)))
    read = {name: read_key(3, tmp_path / name, size=(W, H), frames=N, start=0, end=N,
                           footage="shot.mp4") for name in ("deep.png", "linear.exr")}
    assert np.array_equal(read["deep.png"], key)
    assert read["linear.exr"].dtype == np.uint8
    assert np.abs(read["linear.exr"].astype(int) - key).max() <= 1


def test_a_render_records_how_the_style_was_carried(project: Path, painted, tmp_path: Path):
    run(stylize(project, track="ball", keys=painted, quality="best"))
    run(render(project, tmp_path / "render", start=0, stop=4))
    record = json.loads((tmp_path / "render.provenance.json").read_text())
    (carried,) = [op for op in record["operations"] if op["operation"] == "propagate"]
    assert carried["id"] == "propagate-s1" and carried["track_id"] == "t1"
    assert (carried["start"], carried["end"], carried["quality"]) == (0, N, "best")
    assert [(k["frame"], k["sha256"]) for k in carried["keys"]] == [
        (f, _sha(path)) for f, path in sorted(painted.items())]
