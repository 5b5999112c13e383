"""The editor's pose overlay: the view-model finds the woman's keypoints on a frame of dog.mp4,
caches poses per frame (a stand-in model counts its calls), stays off with a note naming
``kinema models fetch-bundled mediapipe`` when the models are missing, and the window draws the
skeleton in OpenPose's colours over the viewer (under Xvfb, ``--do "seek 5; pose on"``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import media
from kinema.core.errors import InvalidArgumentError, KinemaError, ModelNotFoundError
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from kinema.ui.model.pose_overlay import PoseOverlay
from kinema.ui.window import run_command
from test_editor_window import display  # noqa: F401  (the Xvfb fixture)

OPENPOSE_COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)


@pytest.fixture
def small(tmp_path: Path):
    ed = Editor.open(write_clip(tmp_path / "small.mp4", n=12, size=(160, 120), fps=24))
    yield ed
    ed.close()


def _pose_models_or_skip() -> None:
    from kinema.app.pose_jobs import FramePoses, check_pose_models

    try:
        check_pose_models()
        FramePoses(media("dog.mp4")).close()  # LiteRT too
    except KinemaError as exc:
        pytest.skip(f"the bundled mediapipe pose models are not usable here: {exc}")


def _stand_in(calls: list[int]):
    person = np.zeros((18, 3))
    person[1] = (50, 40, 1)  # neck
    person[2] = (40, 42, 1)  # right shoulder
    person[8] = (45, 90, 0.9)  # right hip

    def make():
        def poses(frame: int) -> list[np.ndarray]:
            calls.append(frame)
            return [person + (frame, 0, 0)]
        return poses
    return make


def test_the_overlay_toggles_and_caches_poses_per_frame(small: Editor):
    calls: list[int] = []
    overlay = PoseOverlay(small.session, small.transport, poses=_stand_in(calls))
    try:
        assert overlay.skeleton(0) is None and overlay.people(0) is None and not calls  # off: nothing
        small.transport.seek(3)
        overlay.set(True)  # starts on the shown frame at once
        assert overlay.wait(10) and calls == [3]
        kp = overlay.people(3)
        assert kp is not None and kp[0][1].tolist() == [53, 40, 1]
        sk = overlay.skeleton(3)
        assert sk is not None
        assert (53, 40, 43, 42, (255, 0, 0)) in sk.limbs  # neck to right shoulder: limb 0's colour
        assert (53, 40, (255, 85, 0)) in sk.joints  # the neck in keypoint 1's colour
        assert all(abs(x - 53) < 20 for x, _, _ in sk.joints)
        # The same frame again: from the cache, the model is not run.
        assert overlay.people(3) is not None and overlay.skeleton(3) is sk and not overlay.busy()
        assert calls == [3]
        # Another frame is asked for without waiting; while it is found, near frames stand in.
        assert overlay.skeleton(4) is None or overlay.cached(4)
        assert overlay.wait(10) and calls == [3, 4]
        assert overlay.skeleton(7, near=3) is overlay.skeleton(4)
        overlay.wait(10)
        overlay.toggle()
        assert not overlay.on and overlay.skeleton(3) is None
        overlay.toggle()
        assert overlay.on and overlay.skeleton(3) is sk and overlay.wait(10)
        assert calls == [3, 4, 7]  # back on: frame 3 is still cached
    finally:
        overlay.close()


def test_the_latest_frame_asked_for_goes_first(small: Editor):
    import threading

    gate, started, calls = threading.Event(), threading.Event(), []

    def make():
        def poses(frame: int) -> list[np.ndarray]:
            started.set()
            gate.wait(10)
            calls.append(frame)
            return []
        return poses

    overlay = PoseOverlay(small.session, small.transport, poses=make)
    try:
        overlay.set(True)  # frame 0, held at the gate
        assert started.wait(10)
        for frame in range(1, 10):  # scrubbing past frames 1..8
            overlay.people(frame)
        assert overlay.busy()
        gate.set()
        assert overlay.wait(10) and calls == [0, 9]
        assert overlay.skeleton(9) is not None and overlay.skeleton(9).joints == ()
    finally:
        overlay.close()


def test_missing_models_leave_the_overlay_off_with_a_note(small: Editor, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KINEMA_MODELS", str(tmp_path / "no-models"))
    small.session.guard(small.pose.toggle)  # the View menu's toggle
    assert not small.pose.on and not small.pose.busy()
    assert "kinema models fetch-bundled mediapipe" in small.session.notes[-1].text
    with pytest.raises(ModelNotFoundError, match="fetch-bundled mediapipe"):
        run_command(small, "pose on")  # a script stops there
    assert not small.pose.on
    with pytest.raises(InvalidArgumentError, match="on or off"):
        run_command(small, "pose maybe")
    run_command(small, "pose off")


def test_a_model_that_fails_to_load_turns_the_overlay_off(small: Editor):
    def make():
        raise ModelNotFoundError("bundled model file is damaged",
                                 hint="run: kinema models fetch-bundled mediapipe")

    overlay = PoseOverlay(small.session, small.transport, poses=make)
    overlay.set(True)
    assert overlay.wait(10) and not overlay.on
    assert "pose overlay off" in small.session.notes[-1].text
    assert "fetch-bundled mediapipe" in small.session.notes[-1].text
    overlay.close()


def test_the_view_model_finds_the_woman_on_dog_mp4(tmp_path: Path):
    _pose_models_or_skip()
    clip = tmp_path / "dog.mp4"
    shutil.copy(media("dog.mp4"), clip)
    ed = Editor.open(clip)
    try:
        run_command(ed, "seek 5")
        run_command(ed, "pose on")
        assert ed.pose.wait(60)
        people = ed.pose.people(5)
        assert people is not None and len(people) == 1
        kp = people[0]
        assert kp[[0, 1, 2, 5, 8, 11], 2].min() > 0.5  # nose, neck, shoulders, hips
        nose, neck, ankle = kp[0], kp[1], kp[10]
        assert nose[1] < neck[1] < ankle[1]  # standing
        assert 200 < neck[0] < 500 and 150 < nose[1] < 350 and ankle[1] > 450  # the woman, left
        skeleton = ed.pose.skeleton(5)
        assert skeleton is not None and len(skeleton.limbs) >= 10
        run_command(ed, "pose off")
        assert ed.pose.skeleton(5) is None
    finally:
        ed.close()


def test_the_window_draws_the_skeleton_in_openpose_colours(display: str, tmp_path: Path):  # noqa: F811
    from kinema.app.pose_jobs import FramePoses
    from kinema.media.image import read_image

    _pose_models_or_skip()
    clip = tmp_path / "dog.mp4"
    shutil.copy(media("dog.mp4"), clip)
    env = {**os.environ, "DISPLAY": display, "LIBGL_ALWAYS_SOFTWARE": "1"}

    def edit(script: str, shot: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kinema", "edit", str(clip), "--screenshot", str(shot),
                               "--do", script, "--size", "1400x900"], capture_output=True, text=True,
                              env=env, timeout=300)

    plain, posed = tmp_path / "plain.png", tmp_path / "posed.png"
    for script, shot in (("seek 5", plain), ("seek 5; pose on", posed)):
        run = edit(script, shot)
        assert run.returncode == 0, run.stderr

    before = read_image(plain)[..., :3].astype(int)
    image = read_image(posed)[..., :3].astype(int)
    # Where the frame is shown: as test_editor_window finds it, from the plain screenshot.
    region = before[30:650, :1088]
    background = np.median(region[:5, :5].reshape(-1, 3), axis=0)
    ys, xs = np.nonzero(np.abs(region - background).sum(axis=2) > 30)
    y0, x0, x1 = ys.min() + 30, xs.min(), xs.max() + 1
    scale = (x1 - x0) / 1280

    poses = FramePoses(clip)
    kp = poses(5)[0]
    poses.close()
    # Keypoints at least 15 px from every other, so each one's disc is its own colour.
    found = [k for k in range(18) if kp[k, 2] > 0.5
             and all(np.hypot(*(kp[k, :2] - kp[j, :2])) > 15 for j in range(18) if j != k and kp[j, 2] > 0)]
    assert len(found) >= 2
    for k in found[:2]:
        x, y = round(x0 + kp[k, 0] * scale), round(y0 + kp[k, 1] * scale)
        colour = np.array(OPENPOSE_COLOURS[k])
        off = np.abs(image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3) - colour).sum(axis=1).min()
        was = np.abs(before[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3) - colour).sum(axis=1).min()
        assert off < 40 < was, (k, off, was)  # the keypoint's colour, drawn over the footage
    # An overlay: away from the skeleton the footage is as it was.
    far = image[y0 + 20:y0 + 120, x1 - 200:x1 - 20]
    assert np.abs(far - before[y0 + 20:y0 + 120, x1 - 200:x1 - 20]).mean() < 2
    # The frame's limb pixels: many screen pixels in OpenPose limb colours near the woman.
    box = image[y0 + int(200 * scale):y0 + int(560 * scale), x0 + int(200 * scale):x0 + int(480 * scale)]
    changed = np.abs(box - before[y0 + int(200 * scale):y0 + int(560 * scale),
                                  x0 + int(200 * scale):x0 + int(480 * scale)]).sum(axis=2) > 60
    assert changed.sum() > 300
