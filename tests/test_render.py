"""Rendering a project: frames match a per-pixel expectation; provenance; missing media."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinema.app.project_jobs import new_project
from kinema.app.provenance import read_provenance
from kinema.app.render_job import render
from kinema.core.errors import MediaOpenError
from kinema.document import edits, store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.document.model import LayerMask, MaskTrackRef, SolidItem, VideoLayer
from kinema.document.recipes import ModelRef, PromptRecord, SegmentRecipe, UpscaleRecipe
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.media.synth import decode_index, write_clip

W, H, N = 96, 64, 12


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (30 + 3 * i)) ** 2 + (yy - 40) ** 2 < 12**2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder = new_project(tmp_path / "shot", video)
    track = MaskTrackStore(folder / "masks" / "t1", N, W, H, create=True)
    track.write_many(0, [disc(i) for i in range(N)], FrameState.PROPAGATED)
    with store.ProjectFile(folder) as pf:
        h = pf.history
        h.do(edits.record_mask_track(
            MaskTrackRef(id="t1", name="ball", media_id="m1", frames=N, width=W, height=H),
            SegmentRecipe(id="r1", backend="classic", model=ModelRef(model_id="classic"),
                          prompts=[PromptRecord(frame=0, points=[(30, 40)], labels=[1])])))
        h.do(edits.add_layer(VideoLayer(id="red", name="red",
                                        items=[SolidItem(id="s", color=(255, 0, 0, 255),
                                                         duration=N)])))
        h.do(edits.set_layer("red", mask=LayerMask(track_id="t1")))
        pf.project.timeline.video_layers[1].transform.opacity.value = 0.5
        h.do(edits.add_recipe(UpscaleRecipe(id="unused", backend="x", scale=2,
                                            model=ModelRef(model_id="not-in-this-render"))))
        pf.save()
    return folder


def test_render_matches_the_expected_pixels(project: Path, tmp_path: Path):
    out = tmp_path / "frames"
    for _ in render(project, out):
        pass
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == N
    with open_video(tmp_path / "shot.mp4") as src:
        for i in (0, 5, 11):
            got = read_image(files[i])[..., :3].astype(int)
            source = src[i].astype(float)
            m = disc(i)[..., None] * 0.5
            want = np.round(source * (1 - m) + np.array([255.0, 0, 0]) * m)
            assert np.abs(got - want).max() <= 1
            assert decode_index(got.astype(np.uint8)) == i


def test_range_and_provenance(project: Path, tmp_path: Path):
    out = tmp_path / "part.mkv"
    for _ in render(project, out, start=4, stop=9):
        pass
    with open_video(out) as r:
        assert len(r) == 5 and r.fps == 24
    record = read_provenance(out)
    assert record["frames"] == {"start": 4, "stop": 9, "rate": "24"}
    assert record["sources"][0]["sha256"] == store.load(project).media["m1"].sha256
    # the recipe of the matte the red layer uses; not the one nothing in the render uses
    assert [op["id"] for op in record["operations"]] == ["r1"] and record["models"] == ["classic"]
    cli = subprocess.run([sys.executable, "-m", "kinema", "provenance", str(out)],
                         capture_output=True, text=True, check=True)
    assert json.loads(cli.stdout)["frames"]["stop"] == 9


def test_missing_media_blocks_only_the_render(project: Path, tmp_path: Path):
    (tmp_path / "shot.mp4").unlink()
    assert store.load(project).name == "shot"  # the project still opens
    with pytest.raises(MediaOpenError, match="missing"):
        for _ in render(project, tmp_path / "x.mp4"):
            pass
    assert not (tmp_path / "x.mp4").exists()
