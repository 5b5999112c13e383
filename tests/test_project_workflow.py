"""The whole project workflow on a real clip, through the CLI as a user runs it: create, mask,
render, kill and resume, export a timeline and a matte, read the provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import media
from kinema.app.render_job import work_folder
from kinema.document import edits, store
from kinema.document.masktrack import FrameState, MaskTrackStore
from kinema.document.model import LayerMask, MaskTrackRef, SolidItem, VideoLayer
from kinema.media import open_video
from kinema.media.image import read_image

KINEMA = [sys.executable, "-m", "kinema"]


def kinema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(KINEMA + list(args), capture_output=True, text=True, check=True)


def video_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def box(i: int) -> np.ndarray:
    """A known mask: a 200x300 box sliding right 4 px a frame."""
    mask = np.zeros((720, 1280), bool)
    mask[200:500, 100 + 4 * i:300 + 4 * i] = True
    return mask


def test_juggle_project_from_start_to_handoff(tmp_path: Path):
    clip = media("juggle.mp4")
    folder = Path(kinema("new", str(tmp_path / "juggle"), "--video", str(clip)).stdout.split()[-1])
    project = store.load(folder)
    assert project.timeline.rate == 24 and project.timeline.duration == 247

    n = 50  # two render chunks: 48 frames, then 2
    MaskTrackStore(folder / "masks" / "t1", 247, 1280, 720, create=True).write_many(
        0, [box(i) for i in range(n)], FrameState.PROPAGATED)
    with store.ProjectFile(folder) as pf:
        pf.history.do(edits.add_mask_track(MaskTrackRef(id="t1", name="juggler", media_id="m1",
                                                        frames=247, width=1280, height=720)))
        pf.history.do(edits.add_layer(VideoLayer(
            id="glow", name="glow", blend_mode="screen", mask=LayerMask(track_id="t1", feather=8),
            items=[SolidItem(id="s1", color=(40, 90, 255, 255), duration=247)])))
        pf.save()

    out = tmp_path / "render.mov"
    render = ["render", str(folder), "--range", f"0:{n}", "-c", "prores4444"]
    proc = subprocess.Popen(KINEMA + render + ["-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = work_folder(out) / "part_00000.mov"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists() and not out.exists(), "the render should have been killed midway"
    kept = video_packets(first)
    kinema(*render, "-o", str(out), "--resume")
    assert video_packets(out)[:48] == kept and len(video_packets(out)) == n
    with open_video(out, alpha=True) as rendered, open_video(clip) as source:
        assert len(rendered) == n and rendered.fps == 24
        frame, src = rendered[30][..., :3].astype(int), source[30].astype(int)
        inside, outside = box(30), ~box(30)
        outside[150:550, 50:500] = False  # away from the feathered edge
        assert np.abs(frame[outside] - src[outside]).max() <= 3
        assert (frame[inside][:, 2] - src[inside][:, 2]).mean() > 60  # screened with blue

    record = json.loads(kinema("provenance", str(out)).stdout)
    assert record["sources"][0]["sha256"] == project.media["m1"].sha256
    assert record["frames"] == {"start": 0, "stop": n, "rate": "24"}

    timeline = tmp_path / "juggle.otio"
    kinema("export", "otio", str(folder), str(timeline))
    back = Path(kinema("import", str(timeline), str(tmp_path / "back")).stdout.split()[-1])
    assert store.load(back).timeline == store.load(folder).timeline

    kinema("export", "matte", str(folder), "--track", "t1", "-o", str(tmp_path / "matte"))
    frames = sorted((tmp_path / "matte").iterdir())
    assert len(frames) == 247
    assert np.array_equal(read_image(frames[12]).reshape(720, 1280, -1)[..., 0] > 0, box(12))
