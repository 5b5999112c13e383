"""The editor's remote worker (``kinema serve`` on uvicorn in a thread, tiny models named to the
server): the setting is kept and tested without a window, *Test connection* as a job the window
never waits for; with it on, an asset made on the worker lands in the project equal bit for bit
to a local one, its progress in order in the same job list, labelled with the worker's host;
restyled keys come back with previews and become a style layer equal to the local keys;
cancelling the job cancels it on the server; a wrong token or an unreachable worker is one clear
message in the job list and changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import free_port, serve_in_thread
from kinema.app.segment_jobs import ModelChoice
from kinema.core.jobs import Job, Progress
from kinema.document.masktrack import FrameState
from kinema.document.model import AssetItem, StyleItem
from kinema.media.synth import write_clip
from kinema.ui.editor import Editor
from kinema.ui.model.remote import RemoteSetting
from test_asset import disc_generator  # noqa: F401  (the disc picture instead of noise)

TOKEN = "editor-remote-token-0123456789ab"
W, H, N = 96, 72, 8
NAMES = {"generate": "tiny-sdxl", "restyle": "tiny-sdxl", "canny": "tiny-canny"}


@pytest.fixture
def worker_url(tmp_path: Path, tiny_sdxl: Path, tiny_controlnet: Path):
    with serve_in_thread(tmp_path / "store", TOKEN, models={"tiny-sdxl": tiny_sdxl,
                                                            "tiny-canny": tiny_controlnet}) as url:
        yield url


def token_file(folder: Path, token: str) -> Path:
    path = folder / "token"
    path.write_text(token + "\n")
    return path


@pytest.fixture
def editor(tmp_path: Path, tiny_sdxl: Path, tiny_controlnet: Path, worker_url: str):
    """An editor with local tiny models, its remote setting on the test worker (off)."""
    remote = RemoteSetting(worker_url, token_file(tmp_path, TOKEN), models=dict(NAMES))
    ed = Editor.open(write_clip(tmp_path / "shot.mp4", n=N, size=(W, H), fps=24),
                     choice=ModelChoice(device="cpu"), sdxl=tiny_sdxl,
                     controlnets={"canny": tiny_controlnet}, remote=remote)
    yield ed
    ed.close()


def finish(ed: Editor, timeout: float = 120) -> Job:
    """Wait for the editor's one job (not bringing its result in) and return it."""
    (job,) = ed.jobs.items
    assert job.wait(timeout)
    return job


def test_the_setting_is_kept_and_tested(tmp_path: Path, worker_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "config" / "remote.json"
    monkeypatch.setenv("KINEMA_REMOTE", "http://gpu-box:8765")
    monkeypatch.setenv("KINEMA_TOKEN", TOKEN)
    remote = RemoteSetting.load(saved)  # nothing saved: off, the URL and token of the environment
    assert (remote.url, remote.token(), remote.on, remote.host) == ("http://gpu-box:8765", TOKEN,
                                                                    False, "gpu-box:8765")
    remote.url, remote.on, remote.models = worker_url, True, {"generate": "tiny-sdxl"}
    assert remote.test() == f"ok: {remote.host} answers" == remote.status
    remote.token_file = token_file(tmp_path, "not-the-token")
    remote.save(saved)
    again = RemoteSetting.load(saved)
    assert again == RemoteSetting(worker_url, remote.token_file, True, {"generate": "tiny-sdxl"})
    assert TOKEN not in saved.read_text() and "not-the-token" not in saved.read_text()
    assert again.test().startswith(f"the kinema server at {worker_url} refused the token (401)")
    again.url = f"http://127.0.0.1:{free_port()}"
    assert again.test().startswith(f"cannot reach the kinema server at {again.url}")
    again.token_file = tmp_path / "missing"
    assert "cannot read the token file" in again.test()


def test_test_connection_is_a_job_the_window_never_waits_for(editor: Editor, worker_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from kinema.ui.model import remote as remote_module

    ed, remote = editor, editor.remote
    monkeypatch.setattr(remote_module, "TEST_TIMEOUT", 1.0)
    with socket.socket() as silent:  # takes the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        remote.url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        job = remote.start_test(ed.jobs)
        assert time.monotonic() - began < 0.2 and remote.status == remote_module.TESTING
        assert ed.jobs.items == [job] and job.label == f"test {remote.host}"
        assert job.wait(10) and job.error is None
    assert remote.status.startswith(f"cannot reach the kinema server at {remote.url} (ReadTimeout")
    assert ed.poll() == []  # the answer is the panel's, not a failure note
    remote.url = worker_url
    assert remote.start_test(ed.jobs).wait(10)
    assert remote.status == f"ok: {remote.host} answers"


def place_asset(ed: Editor, remote: bool) -> tuple[Path, AssetItem, dict]:
    """A disc made and placed at (40, 30) from frame 2, on the worker or here."""
    ed.remote.on = remote
    ed.generate.prompt, ed.generate.seed, ed.generate.size = "a blue disc, flat", 5, (128, 128)
    ed.transport.seek(2)
    ed.generate.place(40, 30, 0.25)
    job = finish(ed)
    assert job.error is None, job.error
    assert ed.poll() == []
    layer = ed.session.file.project.timeline.video_layers[-1]
    item = layer.items[0]
    assert isinstance(item, AssetItem)
    media = ed.session.file.project.media[item.media_id]
    recipe = ed.session.file.project.recipes[f"asset-{item.media_id}"]
    ed.jobs.items.clear()
    return Path(media.path), item, {"transform": layer.transform, "recipe": recipe.model_dump()}


def test_a_remote_asset_lands_like_a_local_one(editor: Editor, salient_model, disc_generator,  # noqa: F811
                                               job_events: dict[str, list[Progress]]) -> None:
    local_png, local_item, local = place_asset(editor, remote=False)
    remote_png, remote_item, remote = place_asset(editor, remote=True)
    assert remote_png.name == "blue-disc-5-2.png" and remote_png.read_bytes() == local_png.read_bytes()
    assert remote_item.model_copy(update={"id": "x", "media_id": "m"}) == local_item.model_copy(
        update={"id": "x", "media_id": "m"})
    assert remote["transform"] == local["transform"]  # the object's centre where clicked
    for recipe in (local["recipe"], remote["recipe"]):
        del recipe["id"], recipe["created"]
    assert remote["recipe"] == local["recipe"] and not remote["recipe"]["uncut"]  # a disc found
    assert editor.generate.preview is not None and editor.generate.preview.shape[2] == 4
    # one job in the list, labelled with the worker; its progress in order
    label = f"generate {remote_png.name} on {editor.remote.host}"
    seen = job_events[label]
    assert seen[0] == Progress(0, 1, "upload")
    steps = [e for e in seen if e.unit == "steps"]
    assert [e.done for e in steps] == sorted(e.done for e in steps) and steps[-1].done == steps[-1].total
    # undo takes the remote asset away like a local one
    editor.history.undo()
    assert remote_item not in editor.session.file.project.timeline.video_layers[-1].items


def disc_track(ed: Editor, keys: tuple[int, ...]) -> None:
    """An object "dog": a disc moving right, clicked on ``keys``."""
    yy, xx = np.mgrid[0:H, 0:W]
    ed.objects.add("dog")
    store = ed.objects.get(ed.objects.active).store
    discs = [(xx - (30 + 4 * i)) ** 2 + (yy - 36) ** 2 < 16**2 for i in range(N)]
    store.write_many(0, discs, FrameState.PROPAGATED)
    for frame in keys:
        store.write(frame, discs[frame], FrameState.KEYFRAME)


def restyle_keys(ed: Editor, remote: bool) -> Path:
    """The dog restyled on its keys, here or on the worker; its keys folder."""
    ed.remote.on = remote
    ed.restyle.prompt, ed.restyle.seed, ed.restyle.strength = "a red dog", 3, 0.9
    ed.restyle.set_control("canny", 0.8)
    ed.restyle.run()
    job = finish(ed, 240)
    assert job.error is None, job.error
    ed.poll()
    ed.jobs.items.clear()
    item = ed.session.file.project.timeline.video_layers[-1].items[0]
    assert isinstance(item, StyleItem)
    return Path(item.keys_path)


def test_remote_keys_become_a_style_layer_like_local_ones(editor: Editor,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from kinema.ui.model.restyle import Restyle

    ed = editor
    disc_track(ed, (1, 6))
    local = restyle_keys(ed, remote=False)
    local_previews = ed.restyle.previews
    shown: list[tuple[int, tuple[int, ...]]] = []
    preview = Restyle._preview
    monkeypatch.setattr(Restyle, "_preview", lambda self, frame, image: (
        shown.append((frame, image.shape)), preview(self, frame, image)))
    remote = restyle_keys(ed, remote=True)
    # the worker's preview of each key as it was made, then the keys as written
    assert shown == [(1, (H, W, 3)), (6, (H, W, 3))] * 2
    assert remote.name.endswith("-2") and sorted(ed.restyle.previews) == [1, 6]
    for frame in (1, 6):
        name = f"{frame:05d}.png"
        assert (remote / name).read_bytes() == (local / name).read_bytes()
        assert np.array_equal(ed.restyle.previews[frame], local_previews[frame])
    project = ed.session.file.project
    layers = [layer for layer in project.timeline.video_layers if layer.name == "dog style"]
    one, two = (layer.items[0] for layer in layers)
    assert [k.sha256 for k in two.keys] == [k.sha256 for k in one.keys]
    r1, r2 = project.recipes[one.recipe_id], project.recipes[two.recipe_id]
    assert r2.track_id == r1.track_id and r2.inputs == r1.inputs and r2.frames == [1, 6]
    assert r2.model == r1.model and r2.controls == r1.controls


@pytest.fixture
def slow_generator(monkeypatch: pytest.MonkeyPatch):
    """The tiny SDXL taking 100 steps of 50 ms each (the server's own cancel stops it at one)."""
    from kinema.generate.sdxl import ImageGenerator

    def generate(self, request, on_step=None):
        for step in range(1, 101):
            time.sleep(0.05)
            if on_step is not None:
                on_step(step, 100)
        raise AssertionError("the job was not cancelled")

    monkeypatch.setattr(ImageGenerator, "generate", generate)


def test_cancelling_a_remote_job_cancels_it_on_the_server(editor: Editor, tmp_path: Path,
                                                         salient_model, slow_generator) -> None:
    ed = editor
    ed.remote.on, ed.generate.prompt = True, "a ufo"
    job = ed.generate.place(10, 10)
    end = time.monotonic() + 60
    while job.progress is None or job.progress.unit != "steps":  # running on the server
        assert time.monotonic() < end and not job.finished, job.error
        time.sleep(0.02)
    job.cancel()
    assert job.wait(30) and job.cancelled and job.state.startswith("cancelled")
    (saved,) = (tmp_path / "store" / "jobs").glob("*.json")
    job_id = json.loads(saved.read_text())["id"]
    while (state := httpx.get(f"{ed.remote.url}/jobs/{job_id}",
                              headers={"Authorization": f"Bearer {TOKEN}"}).json()["state"]) != "cancelled":
        assert state in ("queued", "running") and time.monotonic() < end
        time.sleep(0.05)
    layers = len(ed.session.file.project.timeline.video_layers)
    assert ed.poll() == [] and len(ed.session.file.project.timeline.video_layers) == layers
    assert not list((ed.folder / "assets").glob("*"))


@pytest.mark.parametrize("fault", ["token", "unreachable"])
def test_a_wrong_token_or_no_worker_is_one_message(editor: Editor, tmp_path: Path, fault: str) -> None:
    ed = editor
    if fault == "token":
        ed.remote.token_file = token_file(tmp_path, "not-the-token")
        why = f"the kinema server at {ed.remote.url} refused the token (401)"
    else:
        ed.remote.url = f"http://127.0.0.1:{free_port()}"
        why = f"cannot reach the kinema server at {ed.remote.url}"
    ed.remote.on, ed.generate.prompt = True, "a ufo"
    project = ed.session.file.project
    layers, media, revision = len(project.timeline.video_layers), dict(project.media), ed.history.revision
    job = ed.generate.place(10, 10)
    finish(ed)
    (failed,) = ed.poll()
    assert failed.startswith(f"generate ufo-0.png on {ed.remote.host}: {why}")
    assert "\n" not in failed and ed.session.notes[-1].text == failed and ed.session.notes[-1].error
    assert job.state == "failed" and not ed.busy()
    assert (len(project.timeline.video_layers), project.media, ed.history.revision) == (layers, media,
                                                                                        revision)
    assert not list((ed.folder / "assets").glob("*"))
