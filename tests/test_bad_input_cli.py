"""Bad input through the command line: sound-only files, shorter relinked media, frames out of
range, read-only folders and full disks. Each gets one ``error:`` line naming the file, a non-zero
exit, no traceback and nothing partial left behind."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import write_sound
from kinema.app.project_jobs import new_project, relink
from kinema.core.errors import UnsupportedMediaError
from kinema.document import store
from kinema.document.masktrack import MaskTrackStore
from kinema.media.synth import write_clip

W, H, N = 64, 48, 12


def kinema(*args: str, cwd: Path | None = None, limit_bytes: int | None = None
           ) -> subprocess.CompletedProcess[str]:
    def small_files() -> None:  # a full disk where mounting a small one is not allowed
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, preexec_fn=small_files if limit_bytes else None)


def one_error_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The single ``error:`` line of a failed run, checked to name each of ``names``."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")
                  if any(mark in p.name for mark in (".partial-", ".old-", ".kinema-render")))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", n=N, size=(W, H), fps=24, bframes=0)


@pytest.fixture
def project(tmp_path: Path, clip: Path) -> Path:
    folder = new_project(tmp_path / "p", clip)
    MaskTrackStore(folder / "masks" / "obj1", N, W, H, create=True).write_many(
        0, [np.ones((H, W), bool)] * N)
    from kinema.document import edits
    from kinema.document.model import MaskTrackRef

    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="obj1", name="o", media_id="m1",
                                                        frames=N, width=W, height=H)))
        pf.save()
    return folder


# -- sound-only files, shorter media, ranges ----------------------------------------------------

def test_sound_only_input_is_one_line(tmp_path: Path, project: Path):
    sound = write_sound(tmp_path / "music.m4a")
    one_error_line(kinema("new", str(tmp_path / "q"), "--video", str(sound)), "music.m4a", "sound only")
    assert not (tmp_path / "q.kinema").exists()
    one_error_line(kinema("relink", str(project), "m1", str(sound), "--force"), "music.m4a")
    assert store.load(project).media["m1"].width == W  # the project is unchanged
    from kinema.ui.editor import Editor  # what `kinema edit music.m4a` opens

    with pytest.raises(UnsupportedMediaError, match="sound only"):
        Editor.open(sound)


def test_render_after_relinking_a_shorter_file(tmp_path: Path, project: Path):
    short = write_clip(tmp_path / "short.mp4", n=6, size=(W, H), fps=24, bframes=0)
    relink(project, "m1", short, force=True)
    line = one_error_line(kinema("render", str(project), "-o", str(tmp_path / "r.mp4"),
                                 "--range", "0:10"), "short.mp4", "relink")
    assert "0.250 s" in line and not (tmp_path / "r.mp4").exists()


@pytest.mark.parametrize("args,message", [
    (["frame", "{clip}", "--index", "-1", "-o", "{tmp}/f.png"], "frame -1 is not one of the 12"),
    (["frame", "{clip}", "--index", "12", "-o", "{tmp}/f.png"], "frame 12 is not one of the 12"),
    (["render", "{project}", "-o", "{tmp}/r.mp4", "--range", "5:400"], "frames 5:400 are not inside 0:12"),
    (["render", "{project}", "-o", "{tmp}/r.mp4", "--range", "-3:"], "frames -3:12 are not inside"),
    (["transcode", "{clip}", "{tmp}/t.mp4", "--end", "5000"], "frames 0:5000 are not inside 0:12"),
])
def test_frames_outside_the_clip_are_errors(tmp_path: Path, clip: Path, project: Path,
                                            args: list[str], message: str):
    filled = [a.format(clip=clip, project=project, tmp=tmp_path) for a in args]
    result = kinema(*filled)
    assert result.returncode == 2
    one_error_line(result, message)
    assert not list(tmp_path.glob("[frt].*"))


def test_an_empty_timeline_says_so(tmp_path: Path, project: Path):
    doc = project / store.DOCUMENT
    data = json.loads(doc.read_text())
    data["timeline"].update(duration=0, video_layers=[], audio_tracks=[])
    doc.write_text(json.dumps(data))
    one_error_line(kinema("render", str(project), "-o", str(tmp_path / "r.mp4")), "timeline is empty")


# -- read-only folders and full disks -------------------------------------------------------------

@contextlib.contextmanager
def small_disk(where: Path, *, read_only: bool, seed: Path | None = None) -> Iterator[Path | None]:
    """A tmpfs at ``where`` (holding a copy of ``seed``), read-only or filled to the last byte;
    ``None`` where mounting is not allowed (not root, or a container without the privilege)."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        yield None
        return
    try:
        if seed is not None:
            shutil.copy(seed, where / seed.name)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        else:
            _fill(where / ".filler")
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _commands(clip: Path, project: Path, out: Path) -> dict[str, list[str]]:
    return {
        "transcode": ["transcode", str(clip), str(out / "t.mp4")],
        "render": ["render", str(project), "-o", str(out / "r.mov"), "--codec", "prores4444"],
        "new": ["new", str(out / "n"), "--video", str(clip)],
        "frame": ["frame", str(clip), "--index", "3", "-o", str(out / "f.png")],
        "track": ["track", str(clip), "--point", "32,24@0", "-o", str(out / "m.mov")],
        "export": ["export", "matte", str(project), "-t", "obj1", "-o", str(out / "matte")],
    }


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "full"])
def test_unwritable_outputs_are_one_line(tmp_path: Path, clip: Path, project: Path, read_only: bool):
    with small_disk(tmp_path / "disk", read_only=read_only) as disk:
        out = disk or tmp_path / "disk"
        if disk is None and read_only:
            if os.geteuid() == 0:
                pytest.skip("cannot mount a read-only tmpfs here and root ignores permissions")
            out.chmod(0o555)
        for name, args in _commands(clip, project, out).items():
            result = kinema(*args, limit_bytes=None if disk or read_only else 2048)
            line = one_error_line(result, str(out))
            hint = "not writable" if read_only else "disk is full"
            assert hint in line, f"{name}: {line}"
            assert "Traceback" not in result.stderr
            assert not leftovers(out), name


def test_proxy_beside_a_read_only_video(tmp_path: Path, clip: Path):
    with small_disk(tmp_path / "disk", read_only=True, seed=clip) as disk:
        if disk is None:
            pytest.skip("mounting a read-only tmpfs is not allowed here")
        result = kinema("proxy", str(disk / clip.name), "--beside")
        one_error_line(result, str(disk), "not writable")
