"""kinema serve under load on loopback (issue 17): status latency while the queue works, and
20 queued tiny jobs against the same work run directly.

Usage::

    .venv/bin/python benchmarks/bench_serve.py [--requests 200] [--clients 8] [--jobs 20]
                                               [--rounds 3] [--job-rounds 5]

Everything runs in this process: each server is uvicorn in a thread on 127.0.0.1 and a free
port, the clients are httpx (one ``Client`` per thread, keep-alive), so the clients, the event
loop and the job worker share one interpreter (and its GIL), as they would not on a real box.

**Status latency.** ``--requests`` GETs, once one after the other from one client and once
spread over ``--clients`` threads started together, against, interleaved round by round (the
order rotated each round):

- ``bare FastAPI`` (baseline): a trivial sync route (``GET /ping`` returning a small dict) of a
  bare FastAPI app on uvicorn, no token, the kinema queue empty;
- ``kinema idle``: ``GET /jobs/{id}`` of a finished job, with the bearer token, queue empty;
- ``kinema under load``: ``GET /jobs/{id}`` of the running job while the worker (``--workers
  1``) interpolates (``flow``, x4, 96 frames of 160x120, three distinct jobs queued per round);
  the round checks that a job was still running at its end, then cancels the rest.

Latency per request (send to body read), p50/p95/p99/max in ms over all rounds, requests/s,
and the full (generation 2) garbage collections of the process during the row's sets (they stop
every thread: a row's max is often one); ratios of under load to the bare app and to idle.

**Queued jobs.** ``--jobs`` tiny clips (8 frames of 64x48, each its own bytes so no recipe is
cached) are uploaded, then ``--jobs`` threads started together each POST an ``interpolate``
spec (``blend``, x2, cut guard on) and follow its events (SSE) to ``end``. Per job: submit to
done, submit to the first event (the queue wait, near enough), first event to done (the run);
total wall (first submit to last end) and jobs/s. Also, on other clips, the same jobs posted one
after the other with nobody following (the last polled every 5 ms): the server's cost without
the followers' threads. Baseline in the same round, the order rotated: the same interpolations
run one after the other in-process with ``kinema.app.restore_jobs.interpolate_video`` (no
server). Each followed result is checked: done, not cached, and its MP4 bit for bit the direct
run's output. Ratio: server wall / direct wall, medians over the rounds.

One warm-up request set and one warm-up job (both ways) come first and are not counted. Every
wait has a timeout; the servers are shut down and the temporary store removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import socket
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line

TOKEN = "bench-serve-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 30.0  # seconds: any single request, SSE stream gap, or wait for a job state


# ---- servers ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on uvicorn in a daemon thread on 127.0.0.1; its URL; shut down on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    end = time.monotonic() + TIMEOUT
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise SystemExit("a server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():
            print(f"warning: the server on port {port} did not stop in 15 s", file=sys.stderr)


def bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    def ping() -> dict[str, Any]:  # sync, like kinema's GET /jobs/{id}: both run in the threadpool
        return {"ok": True}

    return app


# ---- clips and jobs -----------------------------------------------------------------------------

def write_clip(path: Path, frames: int, size: tuple[int, int], seed: int) -> Path:
    """Blocky noise with a bright bar moving right: each seed gives other bytes."""
    from kinema.media.writer import VideoWriter

    w, h = size
    rng = np.random.default_rng(seed)
    with VideoWriter(path, 8, (w, h)) as writer:
        for k in range(frames):
            frame = (rng.random((h // 4, w // 4, 3)) * 60 + 40).astype(np.uint8)
            frame = frame.repeat(4, 0).repeat(4, 1)
            x = (4 * k) % max(1, w - 16)
            frame[h // 3: 2 * h // 3, x: x + 16] = 230
            writer.write(frame)
    return path


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interpolate_spec(sha: str, **fields: Any) -> dict[str, Any]:
    """An ``interpolate`` job spec on the blob ``sha``: the video named by its hash alone, or
    by ``{"sha256", "name"}`` where the server's spec (``kinema.app.remote_jobs``) wants that."""
    from pydantic import BaseModel

    from kinema.app.remote_jobs import OPERATIONS

    kind = OPERATIONS["interpolate"].spec.model_fields["video"].annotation
    named = isinstance(kind, type) and issubclass(kind, BaseModel)
    return {"operation": "interpolate", "video": {"sha256": sha, "name": "clip.mp4"} if named else sha,
            **fields}


def result_video_sha(client: Any, url: str, job_id: str) -> str:
    """The sha256 of a done job's video: the result blob itself, or the MP4 inside it where the
    server sends its output folder back as a tar."""
    r = client.get(f"{url}/jobs/{job_id}/result", headers=AUTH)
    r.raise_for_status()
    data = r.content
    if data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(".mp4"))
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
    return hashlib.sha256(data).hexdigest()


def upload(client: Any, url: str, path: Path) -> str:
    sha = sha_of(path)
    r = client.put(f"{url}/blobs/{sha}", content=path.read_bytes(), headers=AUTH)
    r.raise_for_status()
    return sha


def submit(client: Any, url: str, spec: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"{url}/jobs", json=spec, headers=AUTH)
    r.raise_for_status()
    return r.json()


def wait_for(client: Any, url: str, job_id: str, test: Callable[[dict[str, Any]], bool],
             seconds: float = TIMEOUT) -> dict[str, Any]:
    end = time.monotonic() + seconds
    while True:
        job = client.get(f"{url}/jobs/{job_id}", headers=AUTH).json()
        if test(job):
            return job
        if time.monotonic() > end:
            raise SystemExit(f"job {job_id} stuck in {job['state']} after {seconds:.0f} s")
        time.sleep(0.01)


def follow(client: Any, url: str, spec: dict[str, Any], start: threading.Barrier,
           out: dict[str, Any]) -> None:
    """POST ``spec`` once ``start`` opens, then read its events to ``end``; times into ``out``."""
    try:
        start.wait(timeout=TIMEOUT)
        out["submit"] = time.perf_counter()
        job = submit(client, url, spec)
        with client.stream("GET", f"{url}/jobs/{job['id']}/events", headers=AUTH) as r:
            r.raise_for_status()
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event != "end" and "first" not in out:
                        out["first"] = time.perf_counter()
                elif line.startswith("data: ") and event == "end":
                    out["end"] = time.perf_counter()
                    out["job"] = json.loads(line[6:])
                    return
        out["error"] = "the event stream closed before its end event"
    except Exception as exc:  # reported in the table's check, the other threads go on
        out["error"] = f"{type(exc).__name__}: {exc}"


# ---- measurements -------------------------------------------------------------------------------

def latencies(url: str, path: str, headers: dict[str, str], n: int,
              clients: int) -> tuple[list[float], float]:
    """Seconds of each of ``n`` GETs, from one client in turn or from ``clients`` threads
    started together; and the wall-clock seconds of the whole set."""
    import httpx

    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients)

    def client_loop(i: int) -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            client.get(url + path, headers=headers)  # connect before the barrier
            start.wait(timeout=TIMEOUT)
            for _ in range(per[i]):
                t0 = time.perf_counter()
                r = client.get(url + path, headers=headers)
                results[i].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:80]}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT * 2)
    if any(t.is_alive() for t in threads) or errors:
        raise SystemExit(f"status requests failed: {errors[:3] or 'a client thread hung'}")
    times = [x for r in results for x in r]
    # the set's wall: first send to last answer (the clients' connecting before the barrier
    # excluded); sequential sets add up, concurrent ones overlap
    return times, max(sum(r) for r in results)


@contextmanager
def full_collections() -> Iterator[list[float]]:
    """The milliseconds of each full (generation 2) garbage collection of this process while
    the block runs: it stops every thread, server and clients alike."""
    pauses: list[float] = []
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(watch)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(watch)


def pct(values: list[float]) -> tuple[float, float, float, float]:
    ms = np.asarray(values) * 1000
    return (float(np.percentile(ms, 50)), float(np.percentile(ms, 95)),
            float(np.percentile(ms, 99)), float(ms.max()))


def status_phase(args: argparse.Namespace, work: Path, lines: list[str]) -> None:
    import httpx

    from kinema.serve.app import create_app

    clips = [write_clip(work / f"load{k}.mp4", 96, (160, 120), 900 + k) for k in range(4)]
    probe_clip = write_clip(work / "probe.mp4", 8, (64, 48), 899)
    samples: dict[tuple[str, str], list[float]] = {}
    walls: dict[tuple[str, str], float] = {}
    gcs: dict[tuple[str, str], list[float]] = {}
    busy_at_end: list[bool] = []
    with serving(bare_app()) as bare, serving(create_app(work / "store-status", TOKEN, 64)) as url, \
            httpx.Client(timeout=TIMEOUT) as client:
        shas = [upload(client, url, c) for c in clips]
        probe = submit(client, url, interpolate_spec(upload(client, url, probe_clip),
                                                     factor=2, backend="blend"))
        wait_for(client, url, probe["id"], lambda j: j["state"] == "done")
        counter = iter(range(10**6))

        def load_round(n: int, clients: int) -> tuple[list[float], float]:
            jobs = []
            for _ in range(3):
                k = next(counter)
                jobs.append(submit(client, url, interpolate_spec(
                    shas[k % len(shas)], factor=4 + k // len(shas), backend="flow")))
            wait_for(client, url, jobs[0]["id"], lambda j: j["state"] == "running")
            got = latencies(url, f"/jobs/{jobs[0]['id']}", AUTH, n, clients)
            states = [client.get(f"{url}/jobs/{j['id']}", headers=AUTH).json()["state"] for j in jobs]
            busy_at_end.append("running" in states)
            for j in jobs:
                client.delete(f"{url}/jobs/{j['id']}", headers=AUTH)
            for j in jobs:
                wait_for(client, url, j["id"], lambda s: s["state"] in ("done", "cancelled", "failed"))
            return got

        targets: dict[str, Callable[[int, int], tuple[list[float], float]]] = {
            "bare FastAPI": lambda n, c: latencies(bare, "/ping", {}, n, c),
            "kinema idle": lambda n, c: latencies(url, f"/jobs/{probe['id']}", AUTH, n, c),
            "kinema under load": load_round,
        }
        for run_target in targets.values():  # warm-up, not counted
            run_target(20, 1)
            run_target(args.clients * 2, args.clients)
        busy_at_end.clear()
        names = list(targets)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[:r % 3]:
                for mode, clients in (("sequential", 1), (f"{args.clients} clients", args.clients)):
                    with full_collections() as pauses:
                        times, wall = targets[name](args.requests, clients)
                    samples.setdefault((name, mode), []).extend(times)
                    walls[(name, mode)] = walls.get((name, mode), 0.0) + wall
                    gcs.setdefault((name, mode), []).extend(pauses)

    n = args.requests * args.rounds
    lines += [f"### Status latency: {args.requests} GETs x {args.rounds} rounds per row "
              f"(n = {n}), ms", "",
              "| target | clients | p50 | p95 | p99 | max | requests/s | full GCs, ms |",
              "|---|---|--:|--:|--:|--:|--:|--:|"]
    for (name, mode), values in samples.items():
        p50, p95, p99, top = pct(values)
        pauses = " ".join(f"{x:.0f}" for x in gcs[(name, mode)]) or "none"
        lines.append(f"| {name} | {mode} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {top:.2f} | "
                     f"{len(values) / walls[(name, mode)]:.0f} | {pauses} |")
    lines += ["", "| ratio | clients | p50 | p95 | p99 |", "|---|---|--:|--:|--:|"]
    for base in ("bare FastAPI", "kinema idle"):
        for mode in ("sequential", f"{args.clients} clients"):
            a, b = pct(samples[("kinema under load", mode)]), pct(samples[(base, mode)])
            lines.append(f"| under load / {base} | {mode} | {a[0] / b[0]:.2f} | "
                         f"{a[1] / b[1]:.2f} | {a[2] / b[2]:.2f} |")
    lines += ["", f"A job still running when each under-load set ended: "
                  f"{sum(busy_at_end)}/{len(busy_at_end)} sets.", ""]


def jobs_phase(args: argparse.Namespace, work: Path, lines: list[str]) -> None:
    import httpx

    from kinema.app.restore_jobs import interpolate_video
    from kinema.core.jobs import run
    from kinema.serve.app import create_app

    def spec(sha: str) -> dict[str, Any]:
        return interpolate_spec(sha, factor=2, backend="blend", cut_guard=True)

    def direct(clips: list[Path], folder: Path) -> tuple[list[float], float, list[str]]:
        folder.mkdir()
        each, outs = [], []
        start = time.perf_counter()
        for k, clip in enumerate(clips):
            t0 = time.perf_counter()
            out = folder / f"{k}.mp4"
            run(interpolate_video(clip, out, factor=2, backend="blend", cut_guard=True))
            each.append(time.perf_counter() - t0)
            outs.append(sha_of(out))
        return each, time.perf_counter() - start, outs

    def served(url: str, shas: list[str]) -> list[dict[str, Any]]:
        start = threading.Barrier(len(shas))
        outs: list[dict[str, Any]] = [{} for _ in shas]
        clients = [httpx.Client(timeout=TIMEOUT) for _ in shas]
        try:
            threads = [threading.Thread(target=follow, args=(c, url, spec(s), start, o))
                       for c, s, o in zip(clients, shas, outs, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=TIMEOUT * 2)
        finally:
            for c in clients:
                c.close()
        return outs

    def unfollowed(url: str, client: Any, shas: list[str]) -> tuple[float, list[str]]:
        """Submit one after the other, nobody following; poll the last (FIFO: done last)."""
        t0 = time.perf_counter()
        jobs = [submit(client, url, spec(s)) for s in shas]
        end = time.monotonic() + TIMEOUT
        while client.get(f"{url}/jobs/{jobs[-1]['id']}", headers=AUTH).json()["state"] not in (
                "done", "failed", "cancelled") and time.monotonic() < end:
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        states = [client.get(f"{url}/jobs/{j['id']}", headers=AUTH).json() for j in jobs]
        return wall, [str(j) for j in states if j["state"] != "done" or j["cached"]]

    methods = ("direct", "server, SSE followers", "server, nobody following")
    walls: dict[str, list[float]] = {m: [] for m in methods}
    followed: list[dict[str, Any]] = []
    direct_each: list[float] = []
    checks: list[str] = []
    with serving(create_app(work / "store-jobs", TOKEN, 64)) as url, \
            httpx.Client(timeout=TIMEOUT) as client:
        warm = write_clip(work / "warm.mp4", 8, (64, 48), 1)
        direct([warm], work / "warm-direct")
        served(url, [upload(client, url, warm)])
        for r in range(args.job_rounds):
            # the direct run and the followed jobs read the same clips; the unfollowed ones
            # their own (equal bytes would be answered from the recipe cache)
            clips = [write_clip(work / f"r{r}-{k}.mp4", 8, (64, 48), 10_000 * (r + 1) + k)
                     for k in range(args.jobs)]
            others = [write_clip(work / f"r{r}-u{k}.mp4", 8, (64, 48), 10_000 * (r + 1) + 5000 + k)
                      for k in range(args.jobs)]
            shas = [upload(client, url, c) for c in clips]
            other_shas = [upload(client, url, c) for c in others]
            for which in methods[r % 3:] + methods[:r % 3]:
                if which == "direct":
                    each, wall, direct_shas = direct(clips, work / f"direct-{r}")
                    direct_each += each
                elif which == "server, SSE followers":
                    outs = served(url, shas)
                    followed += [o for o in outs if "end" in o]
                    wall = max(o.get("end", 0.0) for o in outs) - min(o["submit"] for o in outs)
                else:
                    wall, unfollowed_bad = unfollowed(url, client, other_shas)
                walls[which].append(wall)
            bad = [o.get("error") or o["job"] for o in outs
                   if "error" in o or o["job"]["state"] != "done" or o["job"]["cached"]]
            same = sum("job" in o and o["job"]["state"] == "done"
                       and result_video_sha(client, url, o["job"]["id"]) == d
                       for o, d in zip(outs, direct_shas, strict=True))
            checks.append(f"round {r + 1}: followed {args.jobs - len(bad)}/{args.jobs} done and "
                          f"not cached, {same}/{args.jobs} results bit for bit the direct run's; "
                          f"unfollowed {args.jobs - len(unfollowed_bad)}/{args.jobs} done")
            if bad or unfollowed_bad:
                checks.append(f"  failures: {(bad + unfollowed_bad)[:3]}")

    to_done = [o["end"] - o["submit"] for o in followed]
    wait = [o.get("first", o["end"]) - o["submit"] for o in followed]
    running = [o["end"] - o.get("first", o["end"]) for o in followed]
    n = args.jobs
    lines += [f"### {n} queued tiny jobs (blend x2, 8 frames of 64x48, workers 1), "
              f"{args.job_rounds} rounds", "",
              "| per job (SSE followers) | median | p95 | max |", "|---|--:|--:|--:|"]
    for label, values in (("server: submit to done, ms", to_done),
                          ("server: submit to first event (queue wait), ms", wait),
                          ("server: first event to done (run), ms", running),
                          ("direct: one interpolation, ms", direct_each)):
        ms = np.asarray(values) * 1000
        lines.append(f"| {label} | {np.median(ms):.1f} | {np.percentile(ms, 95):.1f} | "
                     f"{ms.max():.1f} |")
    lines += ["", f"| {n} jobs | wall s, median | per round | jobs/s | / direct |",
              "|---|--:|---|--:|--:|"]
    base = float(np.median(walls["direct"]))
    for which in methods:
        w = float(np.median(walls[which]))
        lines.append(f"| {which} | {w:.3f} | {' '.join(f'{x:.2f}' for x in walls[which])} | "
                     f"{n / w:.1f} | **{w / base:.2f}** |")
    lines += ["", *checks, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job-rounds", type=int, default=5)
    parser.add_argument("--only", choices=("status", "jobs"))
    args = parser.parse_args()
    import importlib.metadata as meta

    versions = " | ".join(f"{p} {meta.version(p)}" for p in ("fastapi", "uvicorn", "httpx", "h11"))
    lines = [f"Machine: {machine_line()} | {versions}", ""]
    print(lines[0], flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        if args.only != "jobs":
            status_phase(args, Path(tmp), lines)
        if args.only != "status":
            jobs_phase(args, Path(tmp), lines)
    lines.append(f"Whole benchmark: {time.perf_counter() - start:.1f} s.")
    print("\n".join(lines[1:]))


if __name__ == "__main__":
    main()
