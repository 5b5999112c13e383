"""Crash recovery: an editor killed after an edit leaves an autosave that no later writer may
destroy; the CLI refuses with one line naming ``kinema recover``, which applies (or drops) it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kinema.document import store
from kinema.document.masktrack import MaskTrackStore
from kinema.media.writer import VideoWriter
from kinema.ui.editor import Editor
from kinema.vision.synthetic import moving_object

KINEMA = [sys.executable, "-m", "kinema"]


def kinema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KINEMA, *args], capture_output=True, text=True, timeout=120)


def error_line(run: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line a failed command printed (besides any warnings)."""
    lines = [line for line in run.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert run.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    return lines[0]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    scene = moving_object(n=20, size=(160, 120), seed=3)
    path = tmp_path / "scene.mkv"
    with VideoWriter(path, 24, (160, 120), codec="h264", options={"qp": "0"}) as w:
        for frame in scene.frames:
            w.write(frame)
    return path


def crashed_editor(clip: Path) -> Path:
    """A project whose editor process was SIGKILLed after adding an object and painting it."""
    code = textwrap.dedent(f"""
        import sys, time
        from kinema.ui.editor import Editor
        ed = Editor.open({str(clip)!r})
        ed.objects.add("dog")
        ed.tools.brush(80, 60, 20)
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    folder = clip.with_suffix(".kinema")
    assert (folder / "LOCK").exists()  # left behind by the dead process
    return folder


def test_killed_editor_leaves_edits_that_recover_restores(clip: Path, tmp_path: Path):
    folder = crashed_editor(clip)
    saved, autosave = (folder / "project.json").read_bytes(), (folder / "autosave.json").read_bytes()
    chunk = folder / "masks" / "obj1" / "chunk_000000.npz"
    assert chunk.is_file() and "obj1" not in store.load(folder).mask_tracks

    # A CLI writer takes over the stale lock, then refuses: the autosave is offered, not lost.
    line = error_line(kinema("relink", str(folder), "m1", str(clip)))
    assert "unsaved edits" in line and f"kinema recover {folder}" in line
    line = error_line(kinema("track", str(clip), "--point", "80,60@0", "--project", str(folder),
                             "-o", str(tmp_path / "t.npz")))
    assert f"kinema recover {folder}" in line and not (tmp_path / "t.npz").exists()
    # The editor opens the last save and asks; nothing is written until it is answered.
    ed = Editor.open(folder)
    try:
        assert ed.pending_autosave and [o.track_id for o in ed.objects] == []
        with pytest.raises(store.UnsavedEditsError):
            ed.tools.brush(10, 10, 5)
    finally:
        ed.close()
    assert (folder / "autosave.json").read_bytes() == autosave
    assert (folder / "project.json").read_bytes() == saved and chunk.is_file()

    run = kinema("recover", str(folder))
    assert run.returncode == 0, run.stderr
    project = store.load(folder)
    assert project.mask_tracks["obj1"].name == "dog"
    assert (folder / "project.json.bak").read_bytes() == saved
    assert not (folder / "autosave.json").exists() and not store.has_unsaved_edits(folder)
    masks = MaskTrackStore(folder / "masks" / "obj1", 20, 160, 120)
    assert masks.read(0) is not None and masks.read(0)[60, 80]
    assert "no unsaved edits" in error_line(kinema("recover", str(folder)))


def test_discard_drops_the_autosave_and_the_tracks_only_it_had(clip: Path):
    folder = crashed_editor(clip)
    run = kinema("recover", str(folder), "--discard")
    assert run.returncode == 0 and "obj1" in run.stdout, run.stderr
    assert not (folder / "autosave.json").exists() and not (folder / "masks" / "obj1").exists()
    assert store.load(folder).mask_tracks == {}
    run = kinema("relink", str(folder), "m1", str(clip))  # writers work again
    assert run.returncode == 0, run.stderr


def test_the_editor_recovers_or_discards_when_asked(clip: Path):
    folder = crashed_editor(clip)
    ed = Editor.open(folder)
    try:
        ed.session.recover()
        assert not ed.pending_autosave and [o.name for o in ed.objects] == ["dog"]
        assert ed.objects.overlays(0)
        ed.session.save()
    finally:
        ed.close()
    assert "obj1" in store.load(folder).mask_tracks
    crashed_editor(clip)  # this time the unsaved edits are thrown away
    ed = Editor.open(folder)
    try:
        ed.session.discard_autosave()
        assert not ed.pending_autosave and [o.name for o in ed.objects] == ["dog"]
        assert ed.objects.add() == "obj2"  # the lost session's obj2 went with its masks
        assert ed.objects.lane("obj2").sum() == 0 and ed.objects[-1].store.read(0) is None
    finally:
        ed.close()


def test_track_into_a_project_open_elsewhere_fails_before_tracking(clip: Path, tmp_path: Path):
    from kinema.app.project_jobs import new_project

    folder = new_project(tmp_path / "p", clip)
    out = tmp_path / "t.npz"
    with store.ProjectFile(folder):  # this live process holds the lock
        line = error_line(kinema("track", str(clip), "--point", "80,60@0", "--project", str(folder),
                                 "-o", str(out)))
    assert "open in another kinema" in line
    assert not out.exists() and not (folder / "masks" / "obj1").exists()


def test_reopening_refuses_and_keeps_the_autosave(tmp_path: Path, clip: Path):
    from kinema.app.project_jobs import new_project
    from kinema.document import edits

    folder = new_project(tmp_path / "p", clip)
    pf = store.ProjectFile(folder)
    pf.history.do(edits.set_layer("l1", name="unsaved"))
    (folder / "LOCK").write_text(json.dumps({"pid": 2**22 + 1, "host": socket.gethostname()}))
    del pf  # a crash: the lock names a process that is gone
    autosave = (folder / "autosave.json").read_bytes()
    with pytest.raises(store.UnsavedEditsError, match="kinema recover") as exc:
        store.ProjectFile(folder)
    assert isinstance(exc.value, FileExistsError)
    assert not (folder / "LOCK").exists() and (folder / "autosave.json").read_bytes() == autosave
    with store.ProjectFile(folder, unsaved="defer") as pf:
        assert pf.pending
        with pytest.raises(store.UnsavedEditsError):
            pf.save()
        pf.recover()
        assert pf.project.timeline.video_layers[0].name == "unsaved"
    assert (folder / "autosave.json").read_bytes() == autosave  # recovered, still unsaved
