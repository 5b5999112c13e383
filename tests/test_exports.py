"""Mattes and cutouts leave kinema frame-exact; media that moved is found again by relinking."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_project
from kinema.app.export_jobs import export_cutout, export_matte
from kinema.app.project_jobs import media_status, relink
from kinema.app.render_job import render
from kinema.core.errors import InvalidArgumentError, MediaOpenError
from kinema.document import store
from kinema.media import open_video
from kinema.media.image import read_image
from kinema.media.synth import write_clip
from kinema.render.mattes import matte_from_mask

W, H, N = 96, 64, 10


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (25 + 4 * i)) ** 2 + (yy - 30) ** 2 < 14**2


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24)
    folder = tracked_project(tmp_path / "shot", video, [disc(i) for i in range(N)], "ball")
    return folder


def run(job) -> None:
    for _ in job:
        pass


def test_png_mattes_are_the_masks(project: Path, tmp_path: Path):
    run(export_matte(project, "t1", tmp_path / "m8"))
    run(export_matte(project, "t1", tmp_path / "m16", depth=16, feather=4))
    files8, files16 = sorted((tmp_path / "m8").iterdir()), sorted((tmp_path / "m16").iterdir())
    assert len(files8) == len(files16) == N
    for i in (0, 4, 9):
        eight = read_image(files8[i])
        assert eight.dtype == np.uint8
        assert np.array_equal(eight.reshape(H, W, -1)[..., 0], disc(i) * np.uint8(255))
        sixteen = read_image(files16[i]).reshape(H, W, -1)[..., 0]
        want = np.round(matte_from_mask(disc(i), feather=4) * 65535)
        assert sixteen.dtype == np.uint16 and np.abs(sixteen.astype(int) - want).max() <= 1
        assert np.count_nonzero((sixteen > 0) & (sixteen < 65535)) > 0  # a soft edge


def test_prores_matte_and_cutout(project: Path, tmp_path: Path):
    run(export_matte(project, "t1", tmp_path / "matte.mov"))
    run(export_cutout(project, "t1", tmp_path / "cut.mov"))
    run(export_cutout(project, "t1", tmp_path / "cut"))
    with open_video(tmp_path / "matte.mov", alpha=True) as matte, \
            open_video(tmp_path / "cut.mov", alpha=True) as cut, \
            open_video(tmp_path / "shot.mp4") as src:
        assert len(matte) == len(cut) == N and cut.fps == 24
        for i in (0, 7):
            m = disc(i)
            assert np.abs(matte[i][..., 3].astype(int) - m * 255).max() <= 2
            assert np.abs(matte[i][..., 0].astype(int) - m * 255).max() <= 3
            assert np.abs(cut[i][..., 3].astype(int) - m * 255).max() <= 2
            inside = cut[i][..., :3][m].astype(int) - src[i][m]
            assert np.abs(inside).mean() < 2
            png = read_image(sorted((tmp_path / "cut").iterdir())[i])
            assert np.array_equal(png[..., 3], m * np.uint8(255))
            assert np.array_equal(png[..., :3][m], src[i][m]) and not png[..., :3][~m].any()


def test_export_errors(project: Path, tmp_path: Path):
    with pytest.raises(InvalidArgumentError, match="tracks in this project: t1"):
        run(export_matte(project, "nope", tmp_path / "x"))
    with pytest.raises(InvalidArgumentError, match="PNG folder or a .mov"):
        run(export_matte(project, "t1", tmp_path / "x.mp4"))
    with pytest.raises(InvalidArgumentError, match="8 or 16"):
        run(export_matte(project, "t1", tmp_path / "x", depth=12))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError):
        run(export_matte(project, "t1", tmp_path / "taken"))
    cli = subprocess.run([sys.executable, "-m", "kinema", "export", "matte", str(project), "-t",
                          "t1", "-o", str(tmp_path / "bad.mp4")], capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stderr.startswith("error:") and "bad.mp4" in cli.stderr


def test_moved_media_is_listed_and_relinked(project: Path, tmp_path: Path):
    moved = tmp_path / "elsewhere" / "shot.mp4"
    moved.parent.mkdir()
    shutil.move(tmp_path / "shot.mp4", moved)
    assert [s.state for s in media_status(project)] == ["missing"]
    with pytest.raises(MediaOpenError, match="missing"):
        run(render(project, tmp_path / "r.mp4"))
    with pytest.raises(MediaOpenError, match="relink"):
        run(export_cutout(project, "t1", tmp_path / "c.mov"))

    other = write_clip(tmp_path / "other.mp4", n=N, size=(W, H), fps=24, bframes=0)
    with pytest.raises(InvalidArgumentError, match="content differs"):
        relink(project, "m1", other)
    relink(project, "m1", moved)
    assert [(s.id, s.state) for s in media_status(project, verify=True)] == [("m1", "ok"), ("t1", "ok")]
    assert store.load(project).media["m1"].path == str(moved.resolve())
    run(render(project, tmp_path / "r.mp4"))
    assert (tmp_path / "r.mp4").exists()


def test_soft_mattes_follow_the_picture(project: Path, tmp_path: Path):
    from kinema.vision.maskops import soft_matte

    run(export_matte(project, "t1", tmp_path / "soft", depth=16, soft=True, feather=4))
    run(export_cutout(project, "t1", tmp_path / "cut", soft=True))
    with open_video(tmp_path / "shot.mp4") as src:
        want = soft_matte(src[3], disc(3), radius=4)  # the guided filter on this very frame
        default = soft_matte(src[3], disc(3), radius=8)
    matte = read_image(sorted((tmp_path / "soft").iterdir())[3]).reshape(H, W, -1)[..., 0] / 65535
    alpha = read_image(sorted((tmp_path / "cut").iterdir())[3])[..., 3]
    assert np.abs(matte - want).max() < 1e-3
    assert np.abs(alpha.astype(int) - np.round(default * 255)).max() <= 1
    assert np.count_nonzero((want > 0.05) & (want < 0.95)) > 0  # soft, not a hard copy
