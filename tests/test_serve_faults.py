"""kinema serve when things die: the server killed in the middle of a restyle (the client says
so in one error; the server, started again, reports the job failed and a rerun keeps the keys
finished before the kill), and the client killed (the job finishes on the server and a rerun
takes the waiting result). The server and the killed client are real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from conftest import disc_shot, free_port
from kinema.core.jobs import run

TOKEN = "faults-test-token-0123456789abcd"
W, H, N = 96, 72, 8
KEYS = list(range(N))
STEPS = 30  # enough that a key takes a moment: the kill lands between two keys


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return disc_shot(tmp_path_factory.mktemp("shot"), N, (W, H))


class Server:
    """``kinema serve`` in its own process on a free port, with the tiny models named."""

    def __init__(self, store: Path, models: dict[str, Path]) -> None:
        self.store = store
        self.models = models
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Server:
        token = self.store.parent / "token"
        token.write_text(TOKEN)
        port = free_port()
        args = [sys.executable, "-m", "kinema", "serve", "--port", str(port), "--store",
                str(self.store), "--token-file", str(token)]
        for name, folder in self.models.items():
            args += ["--model", f"{name}={folder}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.url = f"http://127.0.0.1:{port}"
        import httpx

        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            try:
                httpx.get(f"{self.url}/jobs/{'0' * 32}", timeout=1,
                          headers={"Authorization": f"Bearer {TOKEN}"})
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("kinema serve did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path, tiny_sdxl: Path, tiny_controlnet: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "store", {"tiny-sdxl": tiny_sdxl})
    try:
        yield srv
    finally:
        srv.kill()


def restyle_steps(worker, video: Path, masks: Path, out: Path):
    from kinema.app.remote_calls import restyle_remote

    return restyle_remote(worker, video, out, mask=masks, prompt="a red dog", frames=KEYS,
                          seed=5, strength=1.0, steps=STEPS, model="tiny-sdxl")


def wait_for(test, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if found := test():
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint_keys(store: Path) -> list[Path]:
    """The finished keys the server's checkpoints hold (not a key being written)."""
    return sorted(p for p in store.glob("work/*/checkpoint/*.png") if not p.name.startswith("."))


def saved_jobs(store: Path) -> list[dict]:
    jobs = []
    for path in store.glob("jobs/*.json"):
        try:
            jobs.append(json.loads(path.read_text()))
        except ValueError:  # being replaced right now
            continue
    return jobs


@pytest.fixture(scope="module")
def local_keys(shot, tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The keys a local run makes (what every remote run must equal)."""
    from kinema.app.restyle_jobs import restyle

    video, masks = shot
    out = tmp_path_factory.mktemp("local") / "keys"
    run(restyle(video, out, frames=KEYS, mask=masks, prompt="a red dog", seed=5, strength=1.0,
                steps=STEPS, model=tiny_sdxl, device="cpu"))
    return out


def same_keys(a: Path, b: Path) -> None:
    names = [f"{k:05d}.png" for k in KEYS]
    assert sorted(p.name for p in a.iterdir()) == names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_server_killed_mid_job_then_a_rerun_resumes(server: Server, shot, local_keys: Path,
                                                    tmp_path: Path) -> None:
    from kinema.app.remote import RemoteError, RemoteWorker

    video, masks = shot
    server.start()
    out = tmp_path / "keys"
    failure: list[BaseException] = []

    def client() -> None:
        with RemoteWorker(server.url, TOKEN, reattach=2, reattach_wait=0.2) as worker:
            try:
                run(restyle_steps(worker, video, masks, out))
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    wait_for(lambda: checkpoint_keys(server.store), 120, "a first key")
    server.kill()
    thread.join(timeout=60)
    kept = len(checkpoint_keys(server.store))
    assert 1 <= kept < N, kept
    assert len(failure) == 1 and isinstance(failure[0], RemoteError), failure
    assert server.url in str(failure[0]) and not out.exists()
    (old,) = saved_jobs(server.store)
    server.start()  # the same store, another port
    with RemoteWorker(server.url, TOKEN) as worker:
        before = worker.job(old["id"])
        assert before["state"] == "failed" and "submit it again" in before["error"]
        events = []
        result = run(restyle_steps(worker, video, masks, out), on_progress=events.append)
    notes = [e.message for e in events if e.message and "earlier run" in e.message]
    assert notes == [f"{kept} keys kept from an earlier run"], notes
    assert result.job["id"] != old["id"] and not checkpoint_keys(server.store)
    same_keys(out, local_keys)


def test_client_killed_the_job_finishes_and_its_result_waits(server: Server, shot,
                                                             local_keys: Path,
                                                             tmp_path: Path) -> None:
    video, masks = shot
    server.start()
    out = tmp_path / "keys"
    args = [sys.executable, "-m", "kinema", "restyle", str(video), "--mask", str(masks),
            "--frames", ",".join(map(str, KEYS)), "--prompt", "a red dog", "--seed", "5",
            "--strength", "1.0", "--steps", str(STEPS), "--model", "tiny-sdxl", "-o", str(out),
            "--remote", server.url]
    env = {**os.environ, "KINEMA_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    client = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(j["state"] == "running" for j in saved_jobs(server.store)), 120,
                 "the job to run")
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    done = wait_for(lambda: [j for j in saved_jobs(server.store) if j["state"] == "done"], 180,
                    "the job to finish without its client")
    assert len(done) == 1 and not out.exists()
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    jobs = saved_jobs(server.store)
    assert sum(j["state"] == "done" and not j["cached"] for j in jobs) == 1  # made once
    assert any(j["cached"] for j in jobs)
    same_keys(out, local_keys)
