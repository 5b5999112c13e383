"""Nothing a user owns is lost: folder outputs replace only kinema's own frames, an output
never overwrites an input, signals and stale runs leave no temporary files, missing mask data
is an error, not a blank matte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kinema.app.export_jobs import export_matte
from kinema.app.project_jobs import new_project
from kinema.app.render_job import render
from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, OutputExistsError, ProjectCorruptError
from kinema.document import store
from kinema.document.masktrack import CHUNK, MaskTrackStore
from kinema.media.synth import write_clip

N, W, H = 40, 64, 48


def kinema(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def run(job) -> None:
    for _ in job:
        pass


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial-" in p.name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project on a 40-frame clip with mask track ``t1`` holding a square on every frame."""
    clip = write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24, bframes=0)
    folder = new_project(tmp_path / "p", clip)
    square = np.zeros((H, W), bool)
    square[10:30, 20:40] = True
    MaskTrackStore(folder / "masks" / "t1", N, W, H, create=True).write_many(0, [square] * N)
    from kinema.document import edits
    from kinema.document.model import LayerMask, MaskTrackRef

    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="t1", name="square", media_id="m1",
                                                        frames=N, width=W, height=H)))
        pf.history.do(edits.set_layer("l1", mask=LayerMask(track_id="t1")))
        pf.save()
    return folder


# -- item 1: folder outputs replace only what kinema wrote ------------------------------------

def test_render_into_a_folder_keeps_the_users_files(project: Path, tmp_path: Path):
    out = tmp_path / "frames"
    assert kinema("render", str(project), "-o", str(out), "--codec", "png").returncode == 0
    assert len(list(out.glob("frame_*.png"))) == N
    (out / "notes.txt").write_text("mine")
    (out / "refs").mkdir()
    (out / "refs" / "frame_000000.png").write_bytes(b"the user's own reference")

    again = kinema("render", str(project), "-o", str(out), "--codec", "png", "--range", "0:10", "-y")
    assert again.returncode == 0, again.stderr
    # the ten new frames, none of the thirty older ones left over, the user's files untouched
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(10)]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "refs" / "frame_000000.png").read_bytes() == b"the user's own reference"
    assert not partials(tmp_path)


def test_a_file_kinema_did_not_write_is_never_replaced(project: Path, tmp_path: Path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "frame_000003.png").write_bytes(b"hand-painted")
    with pytest.raises(OutputExistsError, match="did not write"):
        run(render(project, out, codec="png", overwrite=True))
    assert [p.name for p in out.iterdir()] == ["frame_000003.png"]
    assert (out / "frame_000003.png").read_bytes() == b"hand-painted"
    assert not partials(tmp_path)


def test_matte_export_over_a_folder_keeps_subfolders(project: Path, tmp_path: Path):
    out = tmp_path / "matte"
    run(export_matte(project, "t1", out))
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("keep")
    run(export_matte(project, "t1", out, invert=True, overwrite=True))
    assert (out / "sub" / "keep.txt").read_text() == "keep"
    assert len(list(out.glob("*.png"))) == N


def test_track_into_the_working_folder_deletes_nothing(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    clip = write_clip(work / "clip.mp4", n=8, size=(W, H), fps=24, bframes=0)
    (work / "script.py").write_text("print('mine')")
    (work / "old").mkdir()
    for out in (str(work), "."):  # twice: the second replaces the first run's frames
        result = kinema("track", str(clip), "--point", "32,24@0", "-o", out, "-y", cwd=work)
        assert result.returncode == 0, result.stderr
    assert (work / "script.py").read_text() == "print('mine')"
    assert clip.is_file() and (work / "old").is_dir()
    assert sorted(p.name for p in work.glob("0*.png")) == [f"{i:05d}.png" for i in range(8)]


def test_a_folder_output_never_replaces_a_file_or_the_reverse(tmp_path: Path):
    (tmp_path / "taken.mov").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"):
        atomic.check_can_write(tmp_path / "taken.mov", True)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        atomic.check_can_write(tmp_path / "plain", True, folder=True)


# -- item 2: an output is never one of the inputs ---------------------------------------------

def test_transcode_onto_its_own_source_is_refused(tmp_path: Path):
    src = write_clip(tmp_path / "s.mp4", n=10, size=(W, H), fps=24)
    before = src.read_bytes()
    os.link(src, tmp_path / "hard.mp4")
    (tmp_path / "soft.mp4").symlink_to(src)
    for target in ("s.mp4", "hard.mp4", "soft.mp4", "./s.mp4"):
        result = kinema("transcode", str(src), target, "-y", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error:") and "is also an input" in result.stderr
    assert src.read_bytes() == before


def test_render_onto_the_projects_media_is_refused(project: Path, tmp_path: Path):
    media = tmp_path / "shot.mp4"
    before = media.read_bytes()
    with pytest.raises(InvalidArgumentError, match="is also an input"):
        run(render(project, media, overwrite=True))
    with pytest.raises(InvalidArgumentError, match="is also an input"):
        run(export_matte(project, "t1", project, overwrite=True))
    assert media.read_bytes() == before


# -- item 4: no temporary files left behind -----------------------------------------------------

def test_sigterm_leaves_no_partial_files(tmp_path: Path):
    src = write_clip(tmp_path / "long.mp4", n=600, size=(320, 240), fps=30)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "kinema", "transcode", str(src),
                             str(out / "t.mov"), "--codec", "prores4444"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not partials(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert partials(out), "the transcode never started writing"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and stderr.strip() == "error: terminated"
    assert list(out.iterdir()) == []


def test_leftovers_of_dead_runs_are_swept_and_live_ones_kept(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale_file = tmp_path / f".out.partial-{dead}-0123abcd.mp4"
    stale_file.write_bytes(b"x" * 1000)
    stale_dir = tmp_path / f".seq.partial-{dead}-89abcdef"
    stale_dir.mkdir()
    (stale_dir / "frame_000000.png").write_bytes(b"x")
    live = tmp_path / f".other.partial-{os.getppid()}-deadbeef.mov"  # pytest's parent: alive
    live.write_bytes(b"y")
    users = tmp_path / ".my.partial-notes"
    users.write_text("not kinema's")
    src = write_clip(tmp_path / "s.mp4", n=5, size=(W, H), fps=24)
    assert kinema("transcode", str(src), str(tmp_path / "t.mp4")).returncode == 0
    assert not stale_file.exists() and not stale_dir.exists()
    assert live.exists() and users.exists()


# -- item 7: missing mask data is an error ---------------------------------------------------

def test_a_deleted_mask_chunk_is_an_error_naming_the_frames(project: Path, tmp_path: Path):
    (project / "masks" / "t1" / "chunk_000001.npz").unlink()
    with pytest.raises(ProjectCorruptError, match=rf"t1: the data of frames {CHUNK}-{N - 1} is missing"):
        run(render(project, tmp_path / "r.mp4"))
    with pytest.raises(ProjectCorruptError, match="is missing"):
        run(export_matte(project, "t1", tmp_path / "m.mov"))
    assert not (tmp_path / "r.mp4").exists() and not (tmp_path / "m.mov").exists()
    result = kinema("media", str(project), "--verify")
    assert result.returncode == 1
    assert "t1" in result.stdout and "damaged" in result.stdout and f"{CHUNK}-{N - 1}" in result.stdout


def test_a_deleted_mask_track_folder_is_an_error(project: Path, tmp_path: Path):
    import shutil

    shutil.rmtree(project / "masks" / "t1")
    result = kinema("export", "matte", str(project), "-t", "t1", "-o", str(tmp_path / "m"))
    assert result.returncode == 1 and result.stderr.startswith("error:")
    assert "mask track t1 is missing" in result.stderr and not (tmp_path / "m").exists()
    listed = kinema("media", str(project), "--verify")
    assert listed.returncode == 1 and "missing" in listed.stdout
