"""The registry of backends: lookups, a backend added from outside, tiny-model builders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kinema.app.segment_jobs import ModelChoice, backend_names, make_segmenter, make_tracker, segment_frame
from kinema.core.errors import InvalidArgumentError
from kinema.media.writer import VideoWriter
from kinema.models import backends
from kinema.models.tiny import builder
from kinema.vision.base import Prompt

# A package outside kinema that adds a tracker: installed as an entry point, it needs no edit in
# kinema. Its tracker marks a 10x10 square around the first click, on every frame.
FAKE_MODULE = '''
from kinema.models.backends import Backend, register
from kinema.vision.base import VideoTracker
import numpy as np


class SquareTracker(VideoTracker):
    def add_prompt(self, prompt):
        self.prompt = prompt
        return {prompt.object_id: self._mask()}

    def propagate(self, start, stop=None, *, reverse=False):
        stop = (-1 if reverse else len(self.frames)) if stop is None else stop
        for index in range(start, stop, -1 if reverse else 1):
            yield index, {self.prompt.object_id: self._mask()}

    def _mask(self):
        x, y = (int(v) for v in self.prompt.points[0])
        mask = np.zeros(self.frames[0].shape[:2], bool)
        mask[y - 5:y + 5, x - 5:x + 5] = True
        return mask


register(Backend("track", "fake", "a square around the click", lambda frames, **_: SquareTracker(frames)))
'''


@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    """A folder holding the fake backend and its ``kinema.backends`` entry point."""
    root = tmp_path / "site"
    (root / "kinema_fake_backend-0.1.dist-info").mkdir(parents=True)
    (root / "kinema_fake_backend.py").write_text(FAKE_MODULE, encoding="utf-8")
    info = root / "kinema_fake_backend-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kinema-fake-backend\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text("[kinema.backends]\nfake = kinema_fake_backend\n",
                                           encoding="utf-8")
    return root


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mkv"
    with VideoWriter(path, 24, (64, 48), codec="h264", options={"qp": "0"}) as writer:
        for i in range(6):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    return path


def kinema(*args: str, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "kinema", *args], capture_output=True, text=True, env=env)


def test_an_installed_backend_is_offered_and_runs_end_to_end(fake_package: Path, clip: Path,
                                                              tmp_path: Path) -> None:
    helped = kinema("track", "--help", site=fake_package)
    assert helped.returncode == 0 and "fake" in helped.stdout and "square around the click" in helped.stdout

    wrong = kinema("track", str(clip), "--point", "20,20@0", "--backend", "nope", "-o", "x.npz",
                   site=fake_package)
    assert wrong.returncode != 0 and "unknown backend 'nope'" in wrong.stderr
    assert "classic, sam2, guided, fake" in wrong.stderr

    out = tmp_path / "masks.npz"
    run = kinema("track", str(clip), "--point", "20,30@0", "--backend", "fake", "-o", str(out),
                 site=fake_package)
    assert run.returncode == 0, run.stderr
    square = np.zeros((48, 64), np.uint8)
    square[25:35, 15:25] = 1
    labels = np.load(out)["masks"]
    assert labels.shape == (6, 48, 64) and all(np.array_equal(frame, square) for frame in labels)


class StubTracker:
    def __init__(self, frames, **options) -> None:
        self.frames, self.options = frames, options


def test_registering_is_all_a_backend_needs() -> None:
    backends.register(backends.Backend("track", "stub", "records its arguments", StubTracker,
                                       model_task="segment-video"))
    try:
        assert "stub" in backend_names("track") and "stub" not in backend_names("segment")
        made = make_tracker("stub", [np.zeros((4, 4, 3), np.uint8)], ModelChoice(model="m", device="cpu"))
        assert isinstance(made, StubTracker)
        assert made.options == {"model": "m", "device": "cpu", "dtype": None}
    finally:
        backends.unregister("track", "stub")
    assert "stub" not in backend_names("track")


def test_built_in_backends_and_errors() -> None:
    assert backend_names("track")[:2] == ["classic", "sam2"]
    assert backend_names("segment")[:2] == ["classic", "sam2"]
    assert backends.names("detect") == ["grounding-dino"] and backends.names("embed") == ["clip"]
    assert backends.names("music") == []  # a task of the generative half, no backend yet
    assert backends.get("track", "sam2").model_task == "segment-video"
    assert backends.get("track", "classic").model_task is None
    with pytest.raises(InvalidArgumentError,
                       match="unknown backend 'nope' for segment; use one of classic, sam2"):
        make_segmenter("nope")
    with pytest.raises(InvalidArgumentError, match="unknown task"):
        backends.names("dance")
    with pytest.raises(InvalidArgumentError, match="the classic backend has no model"):
        make_tracker("classic", [np.zeros((4, 4, 3), np.uint8)], ModelChoice(model="sam2-tiny"))


def test_segment_frame_goes_through_the_registry() -> None:
    frames = [np.zeros((48, 64, 3), np.uint8)]
    frames[0][10:30, 20:40] = (230, 60, 40)
    labels = segment_frame(frames, [Prompt(0, 1, points=((30, 20),), labels=(1,))], "classic")
    assert labels.dtype == np.uint8 and labels[20, 30] == 1 and labels[0, 0] == 0


def test_lookups_import_nothing_heavy() -> None:
    code = textwrap.dedent("""
        import sys
        from kinema.models import backends
        assert backends.names("track") and backends.describe("segment")
        print(*(name in sys.modules for name in ("torch", "transformers", "cv2", "kinema.vision.sam2")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 4


def test_tiny_builders_by_family() -> None:
    from kinema.models.tiny_sam2 import build_tiny_sam2

    assert builder("sam2") is build_tiny_sam2
    with pytest.raises(InvalidArgumentError, match="no tiny builder for llm models"):
        builder("llm")


class HoldTracker:
    """Carries the keyframe's mask unchanged through the shot."""

    def __init__(self, frames, **options) -> None:
        self.frames, self.masks = frames, {}

    def add_prompt(self, prompt):
        self.masks[prompt.object_id] = prompt.mask
        return dict(self.masks)

    def propagate(self, start, stop=None, *, reverse=False):
        stop = (-1 if reverse else len(self.frames)) if stop is None else stop
        for index in range(start, stop, -1 if reverse else 1):
            yield index, dict(self.masks)


def test_the_editor_offers_a_registered_backend(clip: Path) -> None:
    from kinema.ui.editor import Editor

    backends.register(backends.Backend("track", "hold", "keeps the keyframe's mask", HoldTracker))
    try:
        editor = Editor.open(clip, backend="hold")
        try:
            editor.objects.add("square")
            painted = editor.tools.brush(30, 20, 6)
            job = editor.propagation.propagate("forward")
            assert job.wait(60) and job.error is None, job.error
            store = editor.objects.get(editor.objects.active).store
            assert all(np.array_equal(store.read(i), painted) for i in range(1, 6))
        finally:
            editor.close()
    finally:
        backends.unregister("track", "hold")
