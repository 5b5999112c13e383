"""Generation on a kinema serve worker (uvicorn on 127.0.0.1, tiny models named to the server):
a remote asset and a remote restyle equal the local ones bit for bit, previews come with the
keys, a model given as a folder is refused, two clients at once are queued and both right."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from typer.testing import CliRunner

from conftest import disc_shot, serve_in_thread
from kinema.cli.main import app
from kinema.core.jobs import run

TOKEN = "generate-test-token-0123456789ab"
W, H, N = 96, 72, 8


def invoke(args: list[object], **env: str):
    return CliRunner().invoke(app, [str(a) for a in args],
                              env={"KINEMA_REMOTE": None, "KINEMA_TOKEN": None, **env})


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return disc_shot(tmp_path_factory.mktemp("shot"), N, (W, H))


@pytest.fixture
def worker_url(tmp_path: Path, tiny_sdxl: Path, tiny_controlnet: Path):
    models = {"tiny-sdxl": tiny_sdxl, "tiny-canny": tiny_controlnet}
    with serve_in_thread(tmp_path / "store", TOKEN, models=models) as url:
        yield url


def without_volatile(record: dict) -> dict:
    """A provenance record without what differs between two runs of the same recipe."""
    record = json.loads(json.dumps(record))
    record.pop("remote", None)
    for key in ("created", "output"):
        record.pop(key)
    for op in record["operations"]:
        op.pop("created")
        op.pop("id")
    return record


def record_of(path: Path) -> dict:
    return json.loads(Path(f"{path}.provenance.json").read_text())


def test_a_remote_asset_equals_the_local_one(worker_url: str, tiny_sdxl: Path, salient_model,
                                             tmp_path: Path) -> None:
    common = ["asset", "a ufo, brushed metal", "--seed", 7, "--size", "64x48", "--steps", 3,
              "--cutout", "salient"]
    local, remote = tmp_path / "local.png", tmp_path / "remote.png"
    r = invoke([*common, "--model", tiny_sdxl, "--device", "cpu", "-o", local])
    assert r.exit_code == 0, r.output
    r = invoke([*common, "--model", "tiny-sdxl", "-o", remote, "--remote", worker_url],
               KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 0, r.output
    assert remote.read_bytes() == local.read_bytes()
    assert without_volatile(record_of(remote)) == without_volatile(record_of(local))
    assert record_of(remote)["operations"][0]["id"] == "asset-remote.png"
    # a model folder of this machine means nothing to the server: one error line, no request
    again = tmp_path / "again.png"
    r = invoke([*common, "--model", tiny_sdxl, "-o", again, "--remote", worker_url],
               KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 2 and "--model" in r.output and "name the server knows" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not again.exists()
    r = invoke([*common, "--model", "no-such-model", "-o", again, "--remote", worker_url],
               KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 1 and "unknown model no-such-model" in r.output and not again.exists()


def restyle_args(video: Path, masks: Path) -> list[object]:
    return ["restyle", video, "--mask", masks, "--frames", "6,0,3", "--prompt", "a red dog",
            "--seed", 3, "--strength", 0.9, "--control", "canny=0.8"]


def test_a_remote_restyle_equals_the_local_one_with_previews(worker_url: str, shot,
                                                             tiny_sdxl: Path, tiny_controlnet: Path,
                                                             tmp_path: Path) -> None:
    from kinema.app.remote_calls import restyle_remote
    from kinema.cli.remote_args import open_worker
    from kinema.generate.control import parse_controls

    video, masks = shot
    local, remote = tmp_path / "local", tmp_path / "remote"
    r = invoke([*restyle_args(video, masks), "--model", tiny_sdxl, "--controlnet",
                f"canny={tiny_controlnet}", "--device", "cpu", "-o", local])
    assert r.exit_code == 0, r.output
    r = invoke([*restyle_args(video, masks), "--model", "tiny-sdxl", "--controlnet",
                "canny=tiny-canny", "-o", remote, "--remote", worker_url], KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 0, r.output
    names = ["00000.png", "00003.png", "00006.png"]
    assert sorted(p.name for p in remote.iterdir()) == names
    for name in names:
        assert (remote / name).read_bytes() == (local / name).read_bytes()
    remote_record = record_of(remote)
    assert without_volatile(remote_record) == without_volatile(record_of(local))
    assert [s["path"] for s in remote_record["sources"]] == [str(video), str(masks)]
    # through the API: each finished key comes back as a preview while the job runs
    previews: list[tuple[int | None, np.ndarray]] = []
    with open_worker(worker_url, None) as worker:
        worker.client.headers["Authorization"] = f"Bearer {TOKEN}"
        run(restyle_remote(worker, video, tmp_path / "api", mask=masks, prompt="a red dog",
                           frames=[0, 3], seed=4, strength=0.9, model="tiny-sdxl",
                           controls=parse_controls("canny=0.8"),
                           controlnets={"canny": "tiny-canny"},
                           on_preview=lambda image, frame: previews.append((frame, image))))
    assert [frame for frame, _ in previews] == [0, 3] and previews[0][1].shape == (H, W, 3)


def test_two_clients_at_once_are_queued_and_both_right(worker_url: str, tiny_sdxl: Path,
                                                      salient_model, tmp_path: Path) -> None:
    from kinema.app.remote import RemoteWorker
    from kinema.app.remote_calls import asset_remote

    results: dict[int, object] = {}

    def client(seed: int) -> None:
        with RemoteWorker(worker_url, TOKEN) as worker:
            try:
                results[seed] = run(asset_remote(worker, "a ufo", tmp_path / f"remote{seed}.png",
                                                 seed=seed, size=(64, 48), steps=2,
                                                 model="tiny-sdxl", cutout="salient"))
            except Exception as exc:  # reported by the assert below
                results[seed] = exc

    threads = [threading.Thread(target=client, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert sorted(results) == [1, 2]
    for seed in (1, 2):
        local = tmp_path / f"local{seed}.png"
        r = invoke(["asset", "a ufo", "--seed", seed, "--size", "64x48", "--steps", 2,
                    "--cutout", "salient", "--model", tiny_sdxl, "--device", "cpu", "-o", local])
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"remote{seed}.png").read_bytes() == local.read_bytes()
    assert (tmp_path / "remote1.png").read_bytes() != (tmp_path / "remote2.png").read_bytes()


def test_a_projects_keys_made_remotely_become_its_style_layer(worker_url: str, shot,
                                                              tiny_sdxl: Path,
                                                              tmp_path: Path) -> None:
    from conftest import tracked_project
    from kinema.app.restyle_jobs import LabelFile
    from kinema.document import store
    from kinema.document.model import StyleItem

    video, masks = shot
    labels = LabelFile(masks)
    frames = [labels.read(i) > 0 for i in range(N)]
    labels.close()
    projects = {}
    for where in ("local", "remote"):
        folder = tracked_project(tmp_path / f"{where}-shot", video, frames, "dog")
        remote = ["--model", "tiny-sdxl", "--remote", worker_url] if where == "remote" else \
            ["--model", tiny_sdxl, "--device", "cpu"]
        r = invoke(["restyle", folder, "--track", "dog", "--frames", "1,5", "--prompt", "a red dog",
                    "--seed", 2, "--strength", 0.9, "-o", tmp_path / f"{where}-keys", *remote],
                   KINEMA_TOKEN=TOKEN)
        assert r.exit_code == 0, r.output
        projects[where] = store.load(folder)
    for name in ("00001.png", "00005.png"):
        assert (tmp_path / "remote-keys" / name).read_bytes() == \
            (tmp_path / "local-keys" / name).read_bytes()
    items = {where: p.timeline.video_layers[-1].items[0] for where, p in projects.items()}
    assert all(isinstance(item, StyleItem) for item in items.values())
    assert [(k.frame, k.sha256) for k in items["remote"].keys] == \
        [(k.frame, k.sha256) for k in items["local"].keys]
    recipes = {w: projects[w].recipes[items[w].recipe_id] for w in projects}
    assert recipes["remote"].track_id == recipes["local"].track_id == "t1"
    assert recipes["remote"].model_dump(exclude={"id", "created", "inputs"}) == \
        recipes["local"].model_dump(exclude={"id", "created", "inputs"})
