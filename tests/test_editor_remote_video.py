"""The Restyle panel's video engines on the editor's remote worker (``kinema serve`` on uvicorn
in a thread, the tiny AnimateDiff set and Wan VACE named to it): with the setting on, the shot
is restyled there as one job of the job list, its progress in order; the movie lands in
``media/`` on a new layer, one undoable step, its decoded frames equal to a local run's at
equal settings (wan-vace with its reference picture too); a wrong token is one note and adds
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import serve_in_thread
from kinema.app.segment_jobs import ModelChoice
from kinema.core.jobs import Progress
from kinema.document.masktrack import FrameState
from kinema.document.model import ClipItem
from kinema.media import open_video
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from kinema.ui.model.remote import RemoteSetting
from kinema.ui.window import run_command

TOKEN = "editor-remote-video-token-0123456"
W, H, N = 64, 48, 10
SD15, MOTION, CANNY = "sd15-base", "animatediff-v1-5-3", "controlnet-canny-sd15"
NAMES = {"animatediff": "tiny-sd15", "motion": "tiny-motion", "canny-sd15": "tiny-canny15"}


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - (16 + 2 * i)) ** 2 + (yy - 24) ** 2 < 9**2


@contextmanager
def ball_editor(tmp_path: Path, server: dict[str, Path], here: dict[str, Path],
                names: dict[str, str]) -> Iterator[Editor]:
    """An editor on a disc "ball" moving right with the video models ``here``, its remote
    setting (off) on a test worker holding the folders of ``server`` by name, naming ``names``."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with serve_in_thread(tmp_path / "store", TOKEN, models=server) as url:
        ed = Editor.open(write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24),
                         choice=ModelChoice(device="cpu"), video_models=here,
                         remote=RemoteSetting(url, token, models=names))
        try:
            ed.objects.add("ball")
            ed.objects.get(ed.objects.active).store.write_many(0, [disc(i) for i in range(N)],
                                                               FrameState.PROPAGATED)
            yield ed
        finally:
            ed.close()


@pytest.fixture
def editor(tmp_path: Path, tiny_animatediff: Path) -> Iterator[Editor]:
    """The ball editor with AnimateDiff (window 8, overlap 3, canny), the tiny models here and
    named the same on the worker."""
    models = {"tiny-sd15": tiny_animatediff / SD15, "tiny-motion": tiny_animatediff / MOTION,
              "tiny-canny15": tiny_animatediff / CANNY}
    here = {"animatediff": models["tiny-sd15"], "motion": models["tiny-motion"],
            "canny": models["tiny-canny15"]}
    with ball_editor(tmp_path, models, here, dict(NAMES)) as ed:
        for command in ("restyle engine animatediff", "restyle window 8 3", "restyle control canny 0.8"):
            run_command(ed, command)
        ed.restyle.prompt, ed.restyle.strength, ed.restyle.seed = "a red ball", 0.8, 5
        yield ed


def restyle(ed: Editor, remote: bool, engine: str = "animatediff") -> tuple[ClipItem, list[np.ndarray]]:
    """The ball restyled through the shot, here or on the worker, brought in by ``poll()``:
    the new layer's clip and its movie's decoded frames (RGBA)."""
    ed.remote.on = remote
    revision = ed.history.revision
    job = ed.restyle.run()
    assert job.wait(300) and job.error is None, job.error
    latest = ed.restyle.video.receive()  # a finished window reached the UI thread
    assert latest is not None and latest.frames[0].shape[:2] == (H, W)
    assert ed.restyle.video.preview(latest.first) is not None
    assert ed.poll() == [] and not ed.busy()
    assert ed.history.revision == revision + 1 and ed.history.undo_label == f"Restyle ball ({engine})"
    layer = ed.session.file.project.timeline.video_layers[-1]
    (item,) = layer.items
    assert layer.name == "ball restyled" and isinstance(item, ClipItem)
    media = ed.session.file.project.media[item.media_id]
    with open_video(media.path, prefetch=False) as reader:
        frames = [np.asarray(f).copy() for f in reader.frames(0, len(reader))]
    ed.jobs.items.clear()
    return item, frames


def test_a_remote_video_restyle_lands_like_a_local_one(editor: Editor,
                                                       job_events: dict[str, list[Progress]]) -> None:
    ed, project = editor, editor.session.file.project
    local_item, local_frames = restyle(ed, remote=False)
    remote_item, remote_frames = restyle(ed, remote=True)
    assert len(remote_frames) == len(local_frames) == N
    for mine, theirs in zip(local_frames, remote_frames, strict=True):
        assert np.array_equal(mine, theirs)
    assert remote_item.source_range == local_item.source_range and remote_item.start == local_item.start
    local_media, remote_media = (project.media[i.media_id] for i in (local_item, remote_item))
    assert Path(remote_media.path).name.endswith("-animatediff-2.mov")
    assert remote_media.relative_path == f"media/{Path(remote_media.path).name}"
    mine, theirs = (project.recipes[m.recipe_id] for m in (local_media, remote_media))
    same = ("engine", "prompt", "seed", "strength", "window", "overlap", "track_id", "inputs",
            "size", "steps", "controls")
    assert {k: getattr(theirs, k) for k in same if k != "controls"} == {
        k: getattr(mine, k) for k in same if k != "controls"}
    assert [(c.kind, c.weight) for c in theirs.controls] == [("canny", 0.8)]
    assert theirs.model == mine.model and theirs.motion_model == mine.motion_model  # the same folders
    note = ed.session.notes[-1].text
    assert note.startswith(f"ball: {N} frames restyled in 2 windows (animatediff), layer ")
    # one job in the list, labelled with the worker; upload first, then the frames in order
    seen = job_events[f"restyle ball (animatediff) on {ed.remote.host}"]
    assert seen[0] == Progress(0, 1, "upload")
    frames = [e for e in seen if e.unit == "frames"]
    assert frames and [e.done for e in frames] == sorted(e.done for e in frames)
    assert any((e.message or "").startswith("window 2/2") for e in frames)
    assert frames[-1].done == frames[-1].total == N
    # one undoable step, like a local one
    ed.history.undo()
    assert remote_item not in project.timeline.video_layers[-1].items
    assert remote_media.id not in project.media


def test_a_wrong_token_is_one_note_and_adds_nothing(editor: Editor, tmp_path: Path) -> None:
    ed, project = editor, editor.session.file.project
    ed.remote.token_file = tmp_path / "wrong"
    ed.remote.token_file.write_text("not-the-token")
    ed.remote.on = True
    layers, media, revision = len(project.timeline.video_layers), dict(project.media), ed.history.revision
    job = ed.restyle.run()
    assert job.wait(60) and job.state == "failed"
    (failed,) = ed.poll()
    why = f"the kinema server at {ed.remote.url} refused the token (401)"
    assert failed.startswith(f"restyle ball (animatediff) on {ed.remote.host}: {why}")
    assert "\n" not in failed and ed.session.notes[-1].text == failed and ed.session.notes[-1].error
    assert not ed.busy() and ed.restyle.job is None
    assert (len(project.timeline.video_layers), project.media, ed.history.revision) == (layers, media,
                                                                                        revision)
    assert not (ed.folder / "media").exists()


def test_a_remote_wan_vace_restyle_takes_the_reference_along(tmp_path: Path, tiny_wan_vace: Path) -> None:
    from kinema.media.image import write_image

    reference = tmp_path / "look.png"
    write_image(reference, np.full((32, 32, 3), (200, 40, 40), np.uint8))
    with ball_editor(tmp_path, {"tiny-vace": tiny_wan_vace}, {"wan-vace": tiny_wan_vace},
                     {"wan-vace": "tiny-vace"}) as ed:
        for command in ("restyle engine wan-vace", "restyle window 9 5", f"restyle reference {reference}"):
            run_command(ed, command)
        ed.restyle.prompt, ed.restyle.seed = "a blue ball", 2
        (local, local_frames), (remote, remote_frames) = (restyle(ed, on, "wan-vace") for on in (False, True))
        assert len(remote_frames) == N and all(
            np.array_equal(a, b) for a, b in zip(local_frames, remote_frames, strict=True))
        project = ed.session.file.project
        mine, theirs = (project.recipes[project.media[i.media_id].recipe_id] for i in (local, remote))
        assert theirs.reference_sha256 == mine.reference_sha256 is not None
        assert theirs.inputs == mine.inputs and theirs.model == mine.model
