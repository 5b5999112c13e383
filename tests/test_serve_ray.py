"""kinema serve --ray: each job runs in a Ray task (a two-CPU local cluster here; a GPU each on
a cluster with GPUs) through the same code as in the server's process: a remote restyle equals
the local one bit for bit (at the task's one CPU thread) with its previews and progress in
order, and a cancel stops the task."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import disc_shot, serve_in_thread
from kinema.core.jobs import run

TOKEN = "serve-ray-token-0123456789abcdef"
W, H, N = 96, 72, 6


@pytest.fixture(scope="module")
def cluster():
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KINEMA_RAY", raising=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()


def test_jobs_on_ray_equal_local_ones_and_cancel(cluster, tiny_sdxl: Path, tmp_path: Path) -> None:
    from kinema.app.remote import RemoteWorker
    from kinema.app.remote_calls import restyle_remote
    from kinema.app.restyle_jobs import restyle

    video, masks = disc_shot(tmp_path, N, (W, H))
    options = {"prompt": "a red dog", "seed": 2, "strength": 1.0, "steps": 3}
    import torch

    local = tmp_path / "local"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray task's (one CPU each): float sums in the same order
    try:
        run(restyle(video, local, frames=[0, 4], mask=masks, model=tiny_sdxl, device="cpu",
                    **options))
    finally:
        torch.set_num_threads(threads)
    store = tmp_path / "store"
    with serve_in_thread(store, TOKEN, models={"tiny-sdxl": tiny_sdxl}, ray=True) as url, \
            RemoteWorker(url, TOKEN) as worker:
        events, previews = [], []
        run(restyle_remote(worker, video, tmp_path / "remote", mask=masks, frames=[0, 4],
                           model="tiny-sdxl",
                           on_preview=lambda image, frame: previews.append(frame), **options),
            on_progress=events.append)
        for name in ("00000.png", "00004.png"):
            assert (tmp_path / "remote" / name).read_bytes() == (local / name).read_bytes()
        steps = [e.done for e in events if e.unit == "steps" and e.total]
        assert steps == sorted(steps) and previews == [0, 4]
        # a long job cancelled on the server: its Ray task stops and nothing is kept
        sent = [worker.send(video), worker.send(masks)]
        job = worker.submit({"operation": "restyle", "video": sent[0].model_dump(),
                             "masks": sent[1].model_dump(), "frames": list(range(N)),
                             "model": "tiny-sdxl", "prompt": "lava", "steps": 400,
                             "strength": 1.0})
        end = time.monotonic() + 120
        while worker.job(job["id"])["progress"] is None:
            assert time.monotonic() < end, "the job never started on Ray"
            time.sleep(0.05)
        worker.cancel(job["id"])
        while (state := worker.job(job["id"])["state"]) == "running":
            assert time.monotonic() < end, "the cancel did not stop the Ray task"
            time.sleep(0.05)
        assert state == "cancelled" and len(list((store / "results").iterdir())) == 1  # no result
