"""Chunked renders: an interrupted or killed render resumes to the very same file.

Byte identity is asserted with ProRes, whose encoder is deterministic. The libx264 in PyAV's
wheels is not (two renders of the same frames in two processes differ), so H.264 resumes are
checked frame by frame: the kept chunks stay as they were and every frame is in its place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinema.app import evaluate
from kinema.app.project_jobs import new_project
from kinema.app.render_job import render, work_folder
from kinema.core.errors import InvalidArgumentError
from kinema.document import edits, store
from kinema.document.model import SolidItem, VideoLayer
from kinema.media import open_video
from kinema.media.synth import decode_index, write_clip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    video = write_clip(tmp_path / "shot.mp4", n=40, size=(128, 96), fps=24)
    folder = new_project(tmp_path / "shot", video)
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_layer(VideoLayer(
            id="tint", name="tint", items=[SolidItem(id="s", color=(0, 0, 255, 90), duration=40)])))
        pf.save()
    return folder


def finish(job) -> None:
    for _ in job:
        pass


def interrupt(job, at: int) -> None:
    """Stop ``job`` after ``at`` frames, as Ctrl-C does: the chunk in progress is dropped."""
    for event in job:
        if event.done == at:
            break
    job.close()


def test_interrupted_render_resumes_to_identical_bytes(project: Path, tmp_path: Path, monkeypatch):
    whole, resumed = tmp_path / "whole.mov", tmp_path / "resumed.mov"
    finish(render(project, whole, codec="prores4444", chunk_frames=8))
    interrupt(render(project, resumed, codec="prores4444", chunk_frames=8), 19)
    assert not resumed.exists()
    parts = sorted(p.name for p in work_folder(resumed).glob("part_*"))
    assert parts == ["part_00000.mov", "part_00001.mov"]

    evaluated: list[int] = []
    frame = evaluate.FrameEvaluator.frame
    monkeypatch.setattr(evaluate.FrameEvaluator, "frame",
                        lambda self, t, **kw: evaluated.append(t) or frame(self, t, **kw))
    progress = list(render(project, resumed, codec="prores4444", chunk_frames=8, resume=True))
    assert [(p.done, p.total) for p in (progress[0], progress[-1])] == [(16, 40), (40, 40)]
    assert [p.done for p in progress if p.checkpoint] == [16, 24, 32, 40]  # kept, then each chunk
    assert evaluated == list(range(16, 40))  # only the frames not already on disk
    assert resumed.read_bytes() == whole.read_bytes()
    assert not work_folder(resumed).exists()


def test_image_sequence_render_resumes(project: Path, tmp_path: Path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finish(render(project, whole, chunk_frames=8))
    interrupt(render(project, resumed, chunk_frames=8), 20)
    finish(render(project, resumed, chunk_frames=8, resume=True))
    names = sorted(p.name for p in whole.iterdir())
    assert names == sorted(p.name for p in resumed.iterdir()) and len(names) == 40
    assert all((whole / n).read_bytes() == (resumed / n).read_bytes() for n in names)


def video_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_h264_resume_keeps_finished_chunks_and_frame_order(project: Path, tmp_path: Path):
    out = tmp_path / "out.mp4"
    interrupt(render(project, out, chunk_frames=8), 12)
    kept = video_packets(work_folder(out) / "part_00000.mp4")
    finish(render(project, out, chunk_frames=8, resume=True))
    assert video_packets(out)[:8] == kept
    with open_video(out) as r, open_video(tmp_path / "shot.mp4") as src:
        assert len(r) == 40 and r.fps == 24
        assert [decode_index(r[i]) for i in range(40)] == list(range(40))
        assert r[20][..., 2].mean() > src[20][..., 2].mean() + 20  # the blue tint is there


def test_resume_refuses_chunks_of_a_changed_project(project: Path, tmp_path: Path):
    out = tmp_path / "out.mp4"
    interrupt(render(project, out, chunk_frames=8), 10)
    with store.ProjectFile(project) as pf:
        pf.history.do(edits.set_layer("tint", blend_mode="multiply"))
        pf.save()
    with pytest.raises(InvalidArgumentError, match="changed since this render began"):
        finish(render(project, out, chunk_frames=8, resume=True))
    finish(render(project, out, chunk_frames=8))  # without --resume it starts over
    assert out.exists() and not work_folder(out).exists()


def test_killed_cli_render_resumes(tmp_path: Path):
    video = write_clip(tmp_path / "long.mp4", n=240, size=(320, 240), fps=24)
    folder = new_project(tmp_path / "long", video)
    out, reference = tmp_path / "out.mov", tmp_path / "reference.mov"
    command = [sys.executable, "-m", "kinema", "render", str(folder), "-o", str(out), "-c", "prores4444"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_part = work_folder(out) / "part_00000.mov"
    deadline = time.monotonic() + 60
    while not first_part.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first_part.exists() and not out.exists(), "the render should have been killed midway"

    subprocess.run(command + ["--resume"], check=True, capture_output=True)
    finish(render(folder, reference, codec="prores4444"))
    assert out.read_bytes() == reference.read_bytes()
