"""kinema serve: the worker's security (token, hashes, sizes, no paths from requests), its job
queue (events in order, cancel, one job at a time) and one real operation equal to local."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from kinema.app.remote_jobs import OPERATIONS, Context, Operation, Spec, unpack
from kinema.core.jobs import Progress, Steps
from kinema.serve.app import create_app

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ---- a gated test operation: runs until the test lets it go ------------------------------------

class WaitSpec(Spec):
    operation: str = "wait"
    steps: int = 5


GATES: dict[int, threading.Event] = {}
STARTED: list[int] = []


def _wait(spec: WaitSpec, ctx: Context) -> Steps[None]:
    STARTED.append(spec.steps)
    gate = GATES.setdefault(spec.steps, threading.Event())
    for k in range(spec.steps):
        yield Progress(k + 1, spec.steps, "steps")
        if k == 0:
            gate.wait(timeout=20)
    (ctx.out / "out.txt").write_text(f"waited {spec.steps}")


def result_files(client: TestClient, job_id: str, folder: Path) -> dict[str, bytes]:
    """The job's result tar unpacked into ``folder``: each file's bytes by its name."""
    r = client.get(f"/jobs/{job_id}/result", headers=AUTH)
    assert r.status_code == 200 and sha(r.content) == r.headers["x-sha256"]
    folder.mkdir(parents=True)
    (folder / "result.tar").write_bytes(r.content)
    unpack(folder / "result.tar", folder / "out")
    return {p.relative_to(folder / "out").as_posix(): p.read_bytes()
            for p in files_under(folder / "out")}


TEST_OPS = {**OPERATIONS, "wait": Operation(WaitSpec, _wait)}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    GATES.clear()
    STARTED.clear()
    app = create_app(tmp_path / "store", TOKEN, 1, operations=TEST_OPS)
    with TestClient(app) as c:
        yield c
    for gate in GATES.values():
        gate.set()


def put(client: TestClient, data: bytes, name: str | None = None, **kw: object):
    return client.put(f"/blobs/{name or sha(data)}", content=data, headers=AUTH, **kw)


def events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    found, kind = [], None
    with client.stream("GET", f"/jobs/{job_id}/events", headers=AUTH) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                found.append((kind, json.loads(line[6:])))
    return found


# ---- security -----------------------------------------------------------------------------------

def test_no_token_or_a_wrong_one_is_401_and_runs_nothing(client: TestClient, tmp_path: Path) -> None:
    data = b"hello"
    spec = {"operation": "wait", "steps": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        assert client.put(f"/blobs/{sha(data)}", content=data, headers=headers).status_code == 401
        assert client.head(f"/blobs/{sha(data)}", headers=headers).status_code == 401
        r = client.post("/jobs", json=spec, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.get(f"/jobs/{'0' * 32}", headers=headers).status_code == 401
        assert client.delete(f"/jobs/{'0' * 32}", headers=headers).status_code == 401
    assert STARTED == [] and client.app.state.jobs.jobs == {}
    assert files_under(tmp_path / "store") == []
    assert put(client, data).status_code == 201  # the right token works
    assert client.head(f"/blobs/{sha(data)}", headers=AUTH).status_code == 200


def test_a_blob_that_does_not_match_its_hash_is_refused(client: TestClient, tmp_path: Path) -> None:
    r = put(client, b"these bytes", name=sha(b"other bytes"))
    assert r.status_code == 400
    assert client.head(f"/blobs/{sha(b'other bytes')}", headers=AUTH).status_code == 404
    assert files_under(tmp_path / "store") == []
    assert put(client, b"these bytes").json() == {"sha256": sha(b"these bytes"), "stored": True,
                                                  "size": 11}
    assert put(client, b"these bytes").json()["stored"] is False  # already there: skipped
    assert client.get(f"/blobs/{sha(b'these bytes')}", headers=AUTH).content == b"these bytes"


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(client: TestClient,
                                                                tmp_path: Path) -> None:
    big = b"x" * (2**20 + 1)  # the limit is 1 MB
    assert put(client, big).status_code == 413  # by its Content-Length
    streamed = client.put(f"/blobs/{sha(big)}", headers=AUTH,  # chunked: no length up front
                          content=(big[i:i + 65536] for i in range(0, len(big), 65536)))
    assert streamed.status_code == 413
    assert files_under(tmp_path / "store") == []
    assert put(client, b"x" * 2**20).status_code == 201  # exactly the limit is fine


@pytest.mark.parametrize("name", ["..", "../../etc/passwd", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
                                  "/etc/passwd", "%2Fetc%2Fpasswd", "A" * 64, "0" * 63,
                                  "0" * 64 + "/x", "0" * 64 + ".txt"])
def test_names_that_are_not_hashes_reach_no_file(client: TestClient, tmp_path: Path,
                                                 name: str) -> None:
    r = client.put(f"/blobs/{name}", content=b"evil", headers=AUTH)
    assert r.status_code in (404, 422)  # 404 only where the URL matched no route at all
    assert client.head(f"/blobs/{name}", headers=AUTH).status_code in (404, 422)
    assert files_under(tmp_path / "store") == []
    assert not (tmp_path / "passwd").exists()


def test_names_in_routes_and_job_specs_are_422(client: TestClient, tmp_path: Path) -> None:
    for name in ("..%2F..%2Fx", "%2Fetc%2Fpasswd", "A" * 64):
        assert client.put(f"/blobs/{name}", content=b"e", headers=AUTH).status_code == 422
    for job_id in ("...", "Z" * 32, "0" * 31):
        assert client.get(f"/jobs/{job_id}", headers=AUTH).status_code == 422
        assert client.delete(f"/jobs/{job_id}", headers=AUTH).status_code == 422
    assert client.get("/jobs/%2Fetc%2Fpasswd/result", headers=AUTH).status_code in (404, 422)
    ok = sha(b"v")
    put(client, b"v")
    for video in ("../../etc/passwd", "/etc/passwd", str(tmp_path / "x.mp4"), "0" * 63):
        r = client.post("/jobs", json={"operation": "interpolate",
                                       "video": {"sha256": video, "name": "v.mp4"}}, headers=AUTH)
        assert r.status_code == 422, video
    bad_names = ("../x.mp4", "..", "/etc/passwd", "a/b.mp4", ".hidden", "", "x\\y", "a\nb")
    for name in bad_names:
        for field in ("video", "output"):
            spec = {"operation": "interpolate", "video": {"sha256": ok, "name": "v.mp4"}}
            spec[field] = {"sha256": ok, "name": name} if field == "video" else name
            assert client.post("/jobs", json=spec, headers=AUTH).status_code == 422, (field, name)
    for spec in ({"operation": "asset", "prompt": "a ufo", "out": str(tmp_path / "out.png")},
                 {"operation": "asset", "prompt": "a ufo", "model": "/etc"},
                 {"operation": "asset", "prompt": "a ufo", "model": "../models/x"},
                 {"operation": "restyle", "prompt": "lava", "frames": [0],
                  "video": {"sha256": ok, "name": "v.mp4"}, "masks": {"sha256": ok, "name": "m.npz"},
                  "controlnets": {"canny": str(tmp_path)}}):
        assert client.post("/jobs", json=spec, headers=AUTH).status_code == 422, spec
    extra = {"operation": "interpolate", "video": {"sha256": ok, "name": "v.mp4"},
             "path": str(tmp_path / "out.mp4")}
    assert client.post("/jobs", json=extra, headers=AUTH).status_code == 422  # no such field
    assert client.app.state.jobs.jobs == {}
    assert not (tmp_path / "out.mp4").exists()


def test_an_unknown_operation_or_model_is_422(client: TestClient) -> None:
    put(client, b"v")
    video = {"sha256": sha(b"v"), "name": "v.mp4"}
    for spec in ({"operation": "rm -rf"}, {"operation": "__init__"}, {}, [], "interpolate",
                 {"operation": "interpolate", "video": video, "backend": "evil-model"},
                 {"operation": "interpolate", "video": video, "factor": 1000},
                 {"operation": "asset", "prompt": "a ufo", "model": "no-such-model"},
                 {"operation": "asset", "prompt": "a ufo", "detector": "evil"}):
        assert client.post("/jobs", json=spec, headers=AUTH).status_code == 422, spec
    unknown = client.post("/jobs", json={"operation": "asset", "prompt": "x", "model": "evil"},
                          headers=AUTH)
    assert "unknown model evil" in unknown.json()["detail"]
    r = client.post("/jobs", content=b"not json", headers=AUTH)
    assert r.status_code == 422
    missing = client.post("/jobs", json={"operation": "interpolate",
                                         "video": {"sha256": "1" * 64, "name": "v.mp4"}}, headers=AUTH)
    assert missing.status_code == 409 and missing.json()["detail"] == {"missing_blobs": ["1" * 64]}
    assert client.app.state.jobs.jobs == {}


# ---- the queue ----------------------------------------------------------------------------------

def test_events_in_order_one_job_at_a_time_and_cancel(client: TestClient, tmp_path: Path) -> None:
    first = client.post("/jobs", json={"operation": "wait", "steps": 5}, headers=AUTH).json()
    second = client.post("/jobs", json={"operation": "wait", "steps": 3}, headers=AUTH).json()
    third = client.post("/jobs", json={"operation": "wait", "steps": 4}, headers=AUTH).json()
    assert first["state"] in ("queued", "running")
    _until(client, first["id"], lambda j: j["progress"] is not None)
    assert client.get(f"/jobs/{second['id']}", headers=AUTH).json()["state"] == "queued"  # one worker
    assert STARTED == [5]
    cancelled = client.delete(f"/jobs/{third['id']}", headers=AUTH).json()  # cancelled in the queue
    assert cancelled["state"] == "cancelled"
    GATES[5].set()
    seen = events(client, first["id"])
    assert [e["done"] for kind, e in seen if kind == "progress"] == [1, 2, 3, 4, 5]
    assert seen[-1][0] == "end" and seen[-1][1]["state"] == "done"
    assert result_files(client, first["id"], tmp_path / "first") == {"out.txt": b"waited 5"}
    _until(client, second["id"], lambda j: j["progress"] is not None)  # the next one runs
    client.delete(f"/jobs/{second['id']}", headers=AUTH)  # cancelled while running
    GATES[3].set()
    end = events(client, second["id"])
    # the step being worked on when the cancel came is the last: 2 of 3, never 3
    assert end[-1][1]["state"] == "cancelled" and [e["done"] for k, e in end if k == "progress"] == [1, 2]
    assert client.get(f"/jobs/{second['id']}/result", headers=AUTH).status_code == 409
    assert STARTED == [5, 3]  # the job cancelled in the queue never started
    again = client.post("/jobs", json={"operation": "wait", "steps": 5}, headers=AUTH).json()
    done = _until(client, again["id"], lambda j: j["state"] == "done")
    assert done["cached"] and STARTED == [5, 3]
    assert result_files(client, again["id"], tmp_path / "again") == {"out.txt": b"waited 5"}


def _until(client: TestClient, job_id: str, test, seconds: float = 20) -> dict:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        job = client.get(f"/jobs/{job_id}", headers=AUTH).json()
        if test(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never got there: {job}")


# ---- a real operation ---------------------------------------------------------------------------

def test_remote_interpolate_equals_local_bit_for_bit(client: TestClient, tmp_path: Path) -> None:
    from kinema.app.restore_jobs import interpolate_video
    from kinema.core.hashing import file_sha256
    from kinema.core.jobs import run
    from kinema.media.writer import VideoWriter

    src = tmp_path / "in.mp4"
    rng = np.random.default_rng(3)
    with VideoWriter(src, 8, (64, 48)) as w:
        for k in range(8):
            frame = (rng.random((12, 16, 3)) * 60 + 40).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            frame[16:32, 4 * k:4 * k + 16] = 230
            w.write(frame)
    data = src.read_bytes()
    assert put(client, data).status_code == 201
    spec = {"operation": "interpolate", "video": {"sha256": sha(data), "name": "in.mp4"},
            "factor": 2, "backend": "blend"}
    job = client.post("/jobs", json=spec, headers=AUTH).json()
    seen = events(client, job["id"])
    assert seen[-1][0] == "end" and seen[-1][1]["state"] == "done", seen[-1]
    done = [e["done"] for kind, e in seen if kind == "progress"]
    assert done == sorted(done) and done[-1] == seen[-2][1]["total"]
    remote = result_files(client, job["id"], tmp_path / "remote")
    assert sorted(remote) == ["interpolated.mp4", "interpolated.mp4.provenance.json"]
    local = tmp_path / "local" / "result.mp4"
    local.parent.mkdir()
    run(interpolate_video(src, local, factor=2, backend="blend"))
    assert sha(remote["interpolated.mp4"]) == file_sha256(local)
    record = json.loads(remote["interpolated.mp4.provenance.json"])
    assert [s["id"] for s in record["sources"]] == ["in.mp4"]  # named as the client named it
    assert not list((tmp_path / "store" / "work").iterdir())  # its work folder is gone


# ---- the command --------------------------------------------------------------------------------

def test_the_command_refuses_a_public_bind_without_a_token(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kinema.cli import serve_commands
    from kinema.cli.main import app

    started: list[dict] = []
    monkeypatch.setattr(serve_commands, "start", lambda **kw: started.append(kw))
    runner = CliRunner()
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.com"):
        r = runner.invoke(app, ["serve", "--host", host, "--store", str(tmp_path)])
        assert r.exit_code == 2 and "error:" in r.output and "--token-file" in r.output, r.output
        assert len([line for line in r.output.splitlines() if line.strip()]) == 1
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    r = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--token-file", str(weak)])
    assert r.exit_code == 2 and "error:" in r.output
    assert started == []
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    r = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--token-file", str(good),
                            "--store", str(tmp_path / "s"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert started == [dict(host="0.0.0.0", port=8765, token=TOKEN, workers=2,
                            max_upload_mb=2048, store=tmp_path / "s", models={}, ray=False,
                            max_store_gb=None)]
    r = runner.invoke(app, ["serve", "--store", str(tmp_path / "s")])  # loopback: no token needed
    assert r.exit_code == 0 and started[-1]["token"] is None and started[-1]["host"] == "127.0.0.1"


def test_many_open_event_streams_do_not_stall_other_requests(tmp_path: Path) -> None:
    """Streams waiting on a queued job hold no worker threads: with 60 of them open (more than
    the 40 threads sync routes share) a status request still answers at once."""
    import time

    import httpx

    from conftest import serve_in_thread

    GATES.clear()
    with serve_in_thread(tmp_path / "store", TOKEN, operations=TEST_OPS) as url, \
            httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        running = http.post("/jobs", json={"operation": "wait", "steps": 2}).json()
        queued = http.post("/jobs", json={"operation": "wait", "steps": 3}).json()
        stop = threading.Event()

        def follow() -> None:
            with httpx.Client(base_url=url, headers=AUTH, timeout=30) as own, \
                    own.stream("GET", f"/jobs/{queued['id']}/events") as r:
                for _ in r.iter_lines():
                    if stop.is_set():
                        return

        streams = [threading.Thread(target=follow, daemon=True) for _ in range(60)]
        for thread in streams:
            thread.start()
        time.sleep(1.0)
        began = time.monotonic()
        assert http.get(f"/jobs/{running['id']}").json()["state"] == "running"
        assert time.monotonic() - began < 5.0  # stalled, it waits for the gated job: for ever
        stop.set()
        for gate in (2, 3):
            GATES.setdefault(gate, threading.Event()).set()
        for thread in streams:
            thread.join(timeout=20)
        assert not any(thread.is_alive() for thread in streams)


def test_the_store_forgets_the_least_recently_used_blobs_past_its_limit(tmp_path: Path) -> None:
    """With a limit, finished jobs trim the blobs: the least recently used go first (a HEAD
    or a job's use counts), never an input of a queued job; a forgotten result is made
    again."""
    import os

    GATES.clear()
    app = create_app(tmp_path / "store", TOKEN, 1, operations=TEST_OPS, max_store_bytes=12000)
    with TestClient(app) as client:
        olds = [bytes([k]) * 1000 for k in range(3)]
        for k, data in enumerate(olds):
            put(client, data)
            path = tmp_path / "store" / "blobs" / sha(data)
            os.utime(path, (1000 + k, 1000 + k))  # used long ago, the first one longest
        assert client.head(f"/blobs/{sha(olds[0])}", headers=AUTH).status_code == 200  # used now
        GATES.setdefault(2, threading.Event()).set()
        job = client.post("/jobs", json={"operation": "wait", "steps": 2}, headers=AUTH).json()
        done = _until(client, job["id"], lambda j: j["state"] == "done")
        blobs = {p.name for p in (tmp_path / "store" / "blobs").iterdir()}
        # 3000 bytes of uploads and the result's 10240-byte tar: the two used longest ago go
        assert sha(olds[0]) in blobs and done["result"] in blobs
        assert sha(olds[1]) not in blobs and sha(olds[2]) not in blobs
        assert sum(p.stat().st_size for p in (tmp_path / "store" / "blobs").iterdir()) <= 12000
        # a result is kept for its client even when it alone is over the limit
        app.state.jobs.limit = 100
        app.state.jobs._trim()
        assert {p.name for p in (tmp_path / "store" / "blobs").iterdir()} == {done["result"]}
    for gate in GATES.values():
        gate.set()


def test_a_restarted_server_forgets_job_records_and_checkpoints_a_month_old(tmp_path: Path) -> None:
    import os
    import time

    from kinema.serve.jobs import KEEP_DAYS

    store = tmp_path / "store"
    with TestClient(create_app(store, TOKEN, 1, operations=TEST_OPS)) as client:
        GATES.setdefault(1, threading.Event()).set()
        job = client.post("/jobs", json={"operation": "wait", "steps": 1}, headers=AUTH).json()
        _until(client, job["id"], lambda j: j["state"] == "done")
    stale = store / "work" / ("e" * 64) / "checkpoint"
    stale.mkdir(parents=True)
    (stale / "00001.png").write_bytes(b"png")
    fresh = store / "work" / ("f" * 64)
    fresh.mkdir()
    long_ago = time.time() - (KEEP_DAYS + 1) * 86400
    for path in (store / "jobs" / f"{job['id']}.json", stale / "00001.png", stale, stale.parent):
        os.utime(path, (long_ago, long_ago))
    with TestClient(create_app(store, TOKEN, 1, operations=TEST_OPS)) as client:
        assert client.get(f"/jobs/{job['id']}", headers=AUTH).status_code == 404
    assert not stale.parent.exists() and fresh.exists()
    assert list((store / "blobs").iterdir())  # results stay: the store's limit handles them
