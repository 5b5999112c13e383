"""The client of kinema serve: `kinema interpolate --remote URL` against a real server on
127.0.0.1 (uvicorn in a thread) gives the local run's bytes; progress in order; a wrong token,
a server that is not there and a result that does not match its hash are one error line each."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import free_port, serve_in_thread
from kinema.cli.main import app

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

TOKEN = "client-test-token-0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    store = tmp_path / "store"
    with serve_in_thread(store, TOKEN) as url:
        yield url, store


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    from kinema.media.writer import VideoWriter

    src = tmp_path / "clip.mp4"
    rng = np.random.default_rng(5)
    with VideoWriter(src, 8, (64, 48)) as w:
        for k in range(8):
            frame = (rng.random((12, 16, 3)) * 60 + 40).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            frame[16:32, 4 * k:4 * k + 16] = 230
            w.write(frame)
    return src


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def invoke(args: list[str], **env: str):
    return CliRunner().invoke(app, args, env={"KINEMA_REMOTE": None, "KINEMA_TOKEN": None, **env})


def test_remote_interpolate_equals_local_and_writes_the_record(server, clip: Path,
                                                               tmp_path: Path) -> None:
    url, _ = server
    remote, local = tmp_path / "remote.mp4", tmp_path / "local.mp4"
    r = invoke(["interpolate", str(clip), "-o", str(remote), "--factor", "2", "--backend", "blend",
                "--remote", url], KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "16" in r.output
    r = invoke(["interpolate", str(clip), "-o", str(local), "--factor", "2", "--backend", "blend"])
    assert r.exit_code == 0, r.output
    assert sha(remote) == sha(local)
    records = [json.loads(Path(f"{p}.provenance.json").read_text()) for p in (remote, local)]
    assert records[0].pop("remote")["server"] == url
    for record in records:
        for op in record["operations"]:
            op.pop("created")
            assert op.pop("id") == f"interpolate-{Path(record['output']).name}"
        for volatile in ("created", "output"):
            record.pop(volatile)
    assert records[0] == records[1]
    # KINEMA_REMOTE works as --remote, a token file as KINEMA_TOKEN; the blob is not sent again
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    again = tmp_path / "again.mp4"
    r = invoke(["interpolate", str(clip), "-o", str(again), "--factor", "2", "--backend", "blend",
                "--token-file", str(token_file)], KINEMA_REMOTE=url)
    assert r.exit_code == 0, r.output
    assert sha(again) == sha(local)


def test_progress_in_order_and_the_upload_skipped_the_second_time(server, clip: Path,
                                                                  tmp_path: Path) -> None:
    from kinema.app.remote import RemoteWorker
    from kinema.app.remote_calls import interpolate_remote
    from kinema.core.jobs import run

    url, store = server
    events = []
    with RemoteWorker(url, TOKEN) as worker:
        run(interpolate_remote(worker, clip, tmp_path / "a.mp4", factor=2,
                                       backend="blend"), on_progress=events.append)
        second = run(interpolate_remote(worker, clip, tmp_path / "b.mp4", factor=2,
                                        backend="blend"))
    assert worker.sent == [sha(clip)]  # uploaded once
    assert (store / "blobs" / sha(clip)).is_file()
    work = [e for e in events if e.unit == "frames"]
    assert work and [e.done for e in work] == sorted(e.done for e in work)
    assert work[-1].done == work[-1].total
    assert second.job["cached"] and sha(tmp_path / "a.mp4") == sha(tmp_path / "b.mp4")


def test_a_wrong_token_or_no_server_is_one_error_line(server, clip: Path, tmp_path: Path) -> None:
    url, store = server
    out = tmp_path / "out.mp4"
    for remote, token in ((url, "wrong-token-0123456789"), (url, ""),
                          (f"http://127.0.0.1:{free_port()}", TOKEN)):
        r = invoke(["interpolate", str(clip), "-o", str(out), "--factor", "2", "--remote", remote],
                   KINEMA_TOKEN=token)
        assert r.exit_code != 0 and r.output.startswith("error:"), r.output
        assert len(error_lines(r.output)) == 1, r.output
        assert remote in r.output
        assert not out.exists()
    assert not (store / "blobs").exists() or not list((store / "blobs").iterdir())
    r = invoke(["interpolate", str(clip), "-o", str(out), "--fps", "30", "--remote", url])
    assert r.exit_code == 2 and "--fps" in r.output and len(error_lines(r.output)) == 1
    for factor in ([], ["--factor", "1"], ["--factor", "32"]):
        r = invoke(["interpolate", str(clip), "-o", str(out), *factor, "--remote", url],
                   KINEMA_TOKEN=TOKEN)
        assert r.exit_code == 2 and "--factor" in r.output and len(error_lines(r.output)) == 1
    assert not out.exists()


def test_a_result_that_does_not_match_its_hash_is_refused(server, clip: Path,
                                                          tmp_path: Path) -> None:
    from kinema.app.remote import RemoteWorker
    from kinema.app.remote_calls import interpolate_remote
    from kinema.core.jobs import run

    url, store = server
    with RemoteWorker(url, TOKEN) as worker:
        done = run(interpolate_remote(worker, clip, tmp_path / "a.mp4", factor=2, backend="blend"))
    blob = store / "blobs" / done.job["result"]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # the server's copy goes bad: same size, other bytes
    blob.write_bytes(bytes(data))
    out = tmp_path / "bad.mp4"
    r = invoke(["interpolate", str(clip), "-o", str(out), "--factor", "2", "--backend", "blend",
                "--remote", url], KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 1 and "does not match its sha256" in r.output, r.output
    assert len(error_lines(r.output)) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("bad", ".bad"))) == []


def test_closing_the_steps_cancels_the_job_and_a_drop_reattaches(tmp_path: Path) -> None:
    from kinema.app.remote import RemoteError, RemoteWorker

    httpx = pytest.importorskip("httpx")
    calls: list[tuple[str, str]] = []
    state = {"drops": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.url.path.endswith("/events"):
            if state["drops"] < 2:
                state["drops"] += 1
                raise httpx.ReadError("dropped", request=request)
            body = ('event: progress\ndata: {"done": 1, "total": 2, "unit": "frames", '
                    '"message": null}\n\nevent: progress\ndata: {"done": 2, "total": 2, '
                    '"unit": "frames", "message": null}\n\nevent: end\ndata: {"state": "done"}\n\n')
            return httpx.Response(200, text=body)
        if request.method == "GET":
            return httpx.Response(200, json={"id": "a" * 32, "state": "running"})
        return httpx.Response(200, json={})

    worker = RemoteWorker("http://gpu.invalid:8765", TOKEN, reattach=2, reattach_wait=0)
    worker.client = httpx.Client(base_url=worker.url, transport=httpx.MockTransport(handler))
    steps = worker.follow("a" * 32)
    seen = []
    try:
        while True:
            seen.append(next(steps).done)
    except StopIteration as end:
        assert end.value == {"state": "done"}
    assert seen == [1, 2] and state["drops"] == 2
    state["drops"] = -10  # more drops than allowed: one error naming the server
    with pytest.raises(RemoteError, match="gpu.invalid"):
        list(worker.follow("a" * 32))


def test_closing_a_remote_job_before_its_end_cancels_it_on_the_server(clip: Path,
                                                                     tmp_path: Path) -> None:
    from kinema.app.remote import RemoteWorker
    from kinema.app.remote_calls import interpolate_remote

    httpx = pytest.importorskip("httpx")
    calls: list[tuple[str, str]] = []
    job_id = "b" * 32

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.method == "HEAD":
            return httpx.Response(200)
        if request.method == "POST":
            return httpx.Response(202, json={"id": job_id, "state": "queued"})
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text='event: progress\ndata: {"done": 1, "total": 9, '
                                  '"unit": "frames", "message": null}\n\n')
        return httpx.Response(200, json={"id": job_id, "state": "cancelled"})

    worker = RemoteWorker("http://gpu.invalid:8765", TOKEN, reattach=0)
    worker.client = httpx.Client(base_url=worker.url, transport=httpx.MockTransport(handler))
    steps = interpolate_remote(worker, clip, tmp_path / "out.mp4", factor=2, backend="blend")
    assert next(steps).unit == "upload"
    assert next(steps).done == 1
    steps.close()  # Ctrl-C, or the editor's cancel
    assert calls[-1] == ("DELETE", f"/jobs/{job_id}")
    assert not (tmp_path / "out.mp4").exists()


def test_without_httpx_the_error_names_the_serve_extra(clip: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "httpx", None)  # import httpx raises ImportError
    r = invoke(["interpolate", str(clip), "-o", str(tmp_path / "o.mp4"), "--factor", "2", "--remote",
                "http://127.0.0.1:1"], KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 1 and "kinema[serve]" in r.output, r.output
    assert len(error_lines(r.output)) == 1


def test_a_result_naming_paths_outside_its_folder_is_refused(tmp_path: Path) -> None:
    """The client unpacks a result only inside its own folder: a tar (from a server gone bad)
    naming ../, an absolute path or a link is one error and writes nothing."""
    import io
    import tarfile

    from kinema.app.remote_jobs import pack, unpack
    from kinema.core.errors import KinemaError

    good = tmp_path / "good"
    (good / "keys").mkdir(parents=True)
    (good / "keys" / "00001.png").write_bytes(b"png")
    (good / "keys.provenance.json").write_text("{}")
    pack(good, tmp_path / "good.tar")
    pack(good, tmp_path / "again.tar")
    assert (tmp_path / "good.tar").read_bytes() == (tmp_path / "again.tar").read_bytes()
    assert unpack(tmp_path / "good.tar", tmp_path / "out") == [
        tmp_path / "out" / "keys", tmp_path / "out" / "keys.provenance.json"]
    for name, kind in (("../evil.txt", tarfile.REGTYPE), (str(tmp_path / "abs.txt"), tarfile.REGTYPE),
                       ("a/../../x.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        archive = tmp_path / "bad.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, 1 if kind == tarfile.REGTYPE else 0, "/etc/passwd"
            tar.addfile(info, io.BytesIO(b"x") if kind == tarfile.REGTYPE else None)
        with pytest.raises(KinemaError, match="not a plain file"):
            unpack(archive, tmp_path / "bad")
        assert not (tmp_path / "bad").exists() and not (tmp_path / "evil.txt").exists()
        assert not (tmp_path / "abs.txt").exists()


def test_a_missing_input_is_one_error_line_naming_it(server, tmp_path: Path) -> None:
    url, store = server
    missing, out = tmp_path / "nowhere.png", tmp_path / "big.png"
    r = invoke(["upscale", str(missing), "-o", str(out), "--scale", "2", "--model", "lanczos",
                "--remote", url], KINEMA_TOKEN=TOKEN)
    assert r.exit_code == 2 and error_lines(r.output) == [f"error: {missing}: no such file"], r.output
    assert not out.exists() and not list((store / "blobs").iterdir())
