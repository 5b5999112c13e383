"""The editor window for real: under Xvfb with Mesa's software OpenGL, a real clip is opened,
scrubbed, clicked, propagated and exported through ``kinema edit --do``, and the screenshot is
checked against the frame and the mask."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import media
from kinema.document.masktrack import MaskTrackStore
from kinema.media import open_video
from kinema.media.image import read_image


@pytest.fixture(scope="module")
def display():
    """A display to open windows on: the session's, else a private Xvfb."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (make sysdeps installs it)")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f":{number}"
    server.terminate()
    server.wait(10)


def test_open_scrub_click_propagate_export_screenshot(display: str, tmp_path: Path):
    clip = tmp_path / "dog.mp4"
    shutil.copy(media("dog.mp4"), clip)  # the project is made beside the video
    shot, matte = tmp_path / "editor.png", tmp_path / "matte.mov"
    script = f"seek 40; seek 3; seek 5; click 320 300; propagate forward 10; export matte {matte}"
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}
    run = subprocess.run([sys.executable, "-m", "kinema", "edit", str(clip), "--screenshot", str(shot),
                          "--do", script, "--size", "1400x900"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr

    masks = MaskTrackStore(tmp_path / "dog.kinema" / "masks" / "obj1", 289, 1280, 720)
    assert masks.keyframes() == [5]
    assert all(masks.read(i) is not None and masks.read(i).sum() > 5000 for i in range(5, 16))
    assert masks.read(4) is None and masks.read(16) is None
    with open_video(matte, alpha=True) as m:
        assert len(m) == 289 and (m[10][..., 3] > 127).sum() > 5000 and not m[30][..., 3].any()

    image = read_image(shot)[..., :3].astype(int)
    region = image[30:650, :1088]  # above the timeline, left of the side panel
    background = np.median(region[:5, :5].reshape(-1, 3), axis=0)
    ys, xs = np.nonzero(np.abs(region - background).sum(axis=2) > 30)
    y0, y1, x0, x1 = ys.min() + 30, ys.max() + 31, xs.min(), xs.max() + 1
    assert abs((x1 - x0) / (y1 - y0) - 1280 / 720) < 0.03  # the frame, fitted, aspect kept
    import cv2

    with open_video(clip) as r:
        frame = cv2.resize(r[5], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(int)
        other = cv2.resize(r[60], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(int)
    shown = image[y0:y1, x0:x1]
    mask = cv2.resize(masks.read(5).astype(np.uint8), (x1 - x0, y1 - y0),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    kernel = np.ones((9, 9), np.uint8)
    outside = ~cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    inside = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    # The viewer shows frame 5: compared at a quarter size, where the GPU's and OpenCV's ways
    # of shrinking agree, it is much closer to frame 5 than to frame 60 (camera still, people moved).
    def small(a: np.ndarray) -> np.ndarray:
        keep = np.where(outside[..., None], a, 0).astype(np.uint8)
        return cv2.resize(keep, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA).astype(int)

    error = np.abs(small(shown) - small(frame)).mean()
    assert error < 4 and error < 0.5 * np.abs(small(shown) - small(other)).mean()
    red = (shown[inside][:, 0] - frame[inside][:, 0]).mean()
    assert red > 25  # the object's colour (255, 64, 64) tints the mask, and only the mask


def test_do_fails_loudly_and_saves_only_when_told(display: str, tmp_path: Path):
    from kinema.document import store
    from kinema.media.synth import write_clip

    clip = write_clip(tmp_path / "small.mp4", n=12, size=(160, 120), fps=24)
    folder = clip.with_suffix(".kinema")
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}

    def edit(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kinema", "edit", str(clip), "--do", script,
                               "--screenshot", str(tmp_path / "shot.png"), "--size", "800x600"],
                              capture_output=True, text=True, env=env, timeout=300)

    def error_line(run: subprocess.CompletedProcess[str]) -> str:
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert run.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), run.stderr
        return lines[0]

    assert "no object" in error_line(edit("seek 3; propagate forward 5"))
    assert "unknown editor command" in error_line(edit("seek 3; wobble"))
    run = edit("brush 80 60 20")
    assert run.returncode == 0, run.stderr
    assert not store.load(folder).mask_tracks  # no `save`: only the autosave has the edit
    assert "obj1" in store.load(folder, recover=True).mask_tracks
    # The next session is asked about those edits before anything else; a script answers.
    assert "unsaved edits" in error_line(edit("brush 10 10 5"))
    run = edit("recover; save")
    assert run.returncode == 0, run.stderr
    assert "obj1" in store.load(folder).mask_tracks and not (folder / "autosave.json").exists()


def test_a_killed_editor_window_loses_no_edits(display: str, tmp_path: Path):
    """The real window under Xvfb is SIGKILLed while it propagates a click through a long clip:
    the autosave it leaves is offered, not lost, and ``kinema recover`` brings the object back."""
    from kinema.document import store
    from kinema.media.synth import write_clip

    clip = write_clip(tmp_path / "long.mp4", n=600, size=(320, 240), fps=24)
    folder = clip.with_suffix(".kinema")
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kinema", "edit", str(clip), "--size", "800x600",
                             "--do", "object dancer; click 160 120; propagate forward"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        chunks = folder / "masks" / "obj1"
        while time.monotonic() < deadline and proc.poll() is None and not (
                (folder / "autosave.json").exists() and len(list(chunks.glob("chunk_*.npz"))) >= 2):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait(30)
    assert "obj1" not in store.load(folder).mask_tracks  # never saved
    recovered = subprocess.run([sys.executable, "-m", "kinema", "recover", str(folder)],
                               capture_output=True, text=True, timeout=60)
    assert recovered.returncode == 0, recovered.stderr
    track = store.load(folder).mask_tracks["obj1"]
    assert track.name == "dancer"
    masks = MaskTrackStore(folder / "masks" / "obj1", track.frames, track.width, track.height)
    assert masks.keyframes() == [0] and masks.read(0)[120, 160]
    propagated = np.flatnonzero(masks.states() == 2)  # written before the kill: they survive too
    assert len(propagated) > 0 and all(masks.read(int(i)) is not None for i in propagated[-3:])
