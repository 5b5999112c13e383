"""The client of ``kinema serve``: send a use case to a worker on another machine.

:class:`RemoteWorker` speaks the worker's HTTP API (``docs/serve.md``): blobs uploaded by their
sha256 (skipped when the server has them), a job spec posted, its server-sent events followed as
:class:`~kinema.core.jobs.Progress` (re-attaching a bounded number of times when the connection
drops), the result fetched, checked against its sha256 and written atomically. A job whose steps
are closed before the end (a cancel, Ctrl-C) is cancelled on the server (``DELETE``).

httpx (the ``serve`` extra) is imported only when a worker is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinema.app.remote_jobs import InputFile, Spec, name_of, read_preview, unpack
from kinema.core.errors import KinemaError
from kinema.core.jobs import Progress, Steps

CHUNK = 1 << 20
FINISHED = ("done", "failed", "cancelled")
Preview = Callable[[np.ndarray, "int | None"], None]
"""Sees a job's preview: the picture and the source frame it shows (``None``: none in
particular)."""


class RemoteError(KinemaError):
    """The worker could not be reached, refused the request, or sent something wrong."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class RemoteWorker:
    """A ``kinema serve`` worker at ``url``, reached with bearer ``token`` (or none)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 reattach: int = 3, reattach_wait: float = 1.0) -> None:
        from kinema.core.extras import require

        httpx = require("httpx", "serve", feature="--remote")
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise RemoteError(f"{url!r} is not an http:// or https:// URL",
                              hint="e.g. --remote http://127.0.0.1:8765")
        self.reattach = reattach
        self.reattach_wait = reattach_wait
        self.sent: list[str] = []  # the blobs this worker uploaded (not those the server had)
        self._httpx = httpx
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers,
                                   timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- requests ----

    def _request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        try:
            r = self.client.request(method, path, **kw)
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._check(r, ok)
        return r

    def _unreachable(self, exc: Exception) -> RemoteError:
        return RemoteError(f"cannot reach the kinema server at {self.url} "
                           f"({type(exc).__name__}: {exc or 'no answer'})",
                           hint="is `kinema serve` running there?")

    def _check(self, r: Any, ok: tuple[int, ...]) -> None:
        if r.status_code in ok:
            return
        if r.status_code == 401:
            raise RemoteError(f"the kinema server at {self.url} refused the token (401)",
                              hint="set KINEMA_TOKEN or --token-file to the server's token")
        try:
            detail = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        raise RemoteError(f"the kinema server at {self.url} answered {r.status_code} to "
                          f"{r.request.method} {r.request.url.path}"
                          + (f": {detail}" if detail else ""))

    # ---- blobs ----

    def has_blob(self, sha256: str) -> bool:
        return self._request("HEAD", f"/blobs/{sha256}", ok=(200, 404)).status_code == 200

    def upload(self, path: str | os.PathLike[str]) -> tuple[str, bool]:
        """Put ``path`` on the server under its sha256; ``(sha256, uploaded)``, ``uploaded``
        false when the server had it already (asked with ``HEAD``)."""
        path = Path(path)
        sha = _sha256(path)
        if self.has_blob(sha):
            return sha, False

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        size = path.stat().st_size
        self._request("PUT", f"/blobs/{sha}", ok=(200, 201), content=chunks(),
                      headers={"Content-Length": str(size)})
        self.sent.append(sha)
        return sha, True

    # ---- jobs ----

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Post a job spec; the job (``id``, ``state``, ...)."""
        return self._request("POST", "/jobs", ok=(202,), json=spec).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> None:
        """Ask the server to cancel; a server that cannot be reached is left alone."""
        with contextlib.suppress(self._httpx.TransportError):
            self.client.delete(f"/jobs/{job_id}", timeout=5.0)

    def follow(self, job_id: str, on_preview: Preview | None = None) -> Steps[dict[str, Any]]:
        """The job's progress as it comes, then the finished job; each new preview fetched
        for ``on_preview``. A dropped connection re-attaches (the server sends every event
        again; those seen are skipped) up to ``reattach`` times before one error naming the
        server."""
        seen, drops = 0, 0
        while True:
            try:
                index = 0
                kind = None
                timeout = self._httpx.Timeout(30.0, read=None)
                with self.client.stream("GET", f"/jobs/{job_id}/events", timeout=timeout) as r:
                    self._check(r, (200,))
                    for line in r.iter_lines():
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:"):
                            data = json.loads(line[5:])
                            if kind == "end":
                                return data
                            if kind not in ("progress", "preview"):
                                continue
                            index += 1
                            if index <= seen:
                                continue
                            seen = index
                            if kind == "progress":
                                yield Progress(int(data["done"]), int(data["total"]),
                                               data.get("unit") or "", data.get("message"))
                            elif on_preview is not None and \
                                    (found := self.preview(job_id)) is not None:
                                on_preview(read_preview(found[0]), found[1])
                # the stream ended without "end": treat it as a drop
                raise self._httpx.RemoteProtocolError("the event stream ended early")
            except self._httpx.TransportError as exc:
                drops += 1
                if drops > self.reattach:
                    raise RemoteError(f"lost the kinema server at {self.url} while following job "
                                      f"{job_id} ({drops} tries; {type(exc).__name__}: {exc})",
                                      hint="the job may still be running there") from None
                time.sleep(self.reattach_wait)
                try:
                    job = self.job(job_id)
                except RemoteError:
                    continue
                if job["state"] in FINISHED:
                    return job

    def download(self, job_id: str, sha256: str, target: Path) -> None:
        """The job's result into the new file ``target``, refused unless its bytes have
        ``sha256`` (``target`` is removed then)."""
        digest = hashlib.sha256()
        try:
            with self.client.stream("GET", f"/jobs/{job_id}/result") as r:
                self._check(r, (200,))
                claimed = r.headers.get("x-sha256")
                with open(target, "xb") as f:
                    for chunk in r.iter_bytes(CHUNK):
                        digest.update(chunk)
                        f.write(chunk)
        except self._httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        got = digest.hexdigest()
        if got != sha256 or (claimed is not None and claimed != sha256):
            target.unlink(missing_ok=True)
            raise RemoteError(f"the result from {self.url} does not match its sha256 "
                              f"(expected {sha256}, got {got}); nothing written")

    def preview(self, job_id: str) -> tuple[bytes, int | None] | None:
        """The job's latest preview PNG and the source frame it shows, or ``None``."""
        r = self._request("GET", f"/jobs/{job_id}/preview", ok=(200, 404))
        if r.status_code != 200:
            return None
        frame = r.headers.get("x-frame")
        return r.content, int(frame) if frame is not None and frame.isdigit() else None

    def send(self, path: str | os.PathLike[str]) -> InputFile:
        """``path`` uploaded (unless the server has it) as a job's input file."""
        sha, _ = self.upload(path)
        return InputFile(sha256=sha, name=name_of(path))


@dataclass(frozen=True)
class RemoteResult:
    """A remote job's output: where it went, its record, and the finished job."""

    path: Path
    record: Path | None
    job: dict[str, Any]


def run_remote(worker: RemoteWorker, spec: Spec, target: str | os.PathLike[str], *,
               overwrite: bool = False, sources: Mapping[str, Path] | None = None,
               on_preview: Preview | None = None) -> Steps[RemoteResult]:
    """Run ``spec`` on ``worker`` (its input files already sent) and put its output at
    ``target``: the job followed as progress (``on_preview(image, frame)`` sees each preview),
    the result checked by hash and unpacked beside ``target``, then the output (a file, or a
    folder's files) and its ``.provenance.json`` moved into place. The record names the local files
    of ``sources`` (sha256 -> path) and the server and job. Closing the steps early cancels
    the job on the server; nothing is left behind when anything fails."""
    from kinema.app.operation_records import record_path
    from kinema.core import atomic

    target = atomic.output_path(target)
    output = spec.output()
    temp = atomic.temp_path_for(target.with_suffix(".remote"))
    with atomic.naming_errors(target):
        temp.mkdir()
    try:
        job = worker.submit(spec.model_dump(mode="json"))
        finished = False
        try:
            job = yield from worker.follow(job["id"], on_preview)
            finished = True
        finally:
            if not finished:
                worker.cancel(job["id"])
        if job["state"] != "done" or not job.get("result"):
            raise RemoteError(f"the {spec.operation} job on {worker.url} {job['state']}"
                              + (f": {job['error']}" if job.get("error") else ""))
        worker.download(job["id"], job["result"], temp / "result.tar")
        unpack(temp / "result.tar", temp / "out")
        made = temp / "out" / output
        if not made.exists():
            raise RemoteError(f"the result from {worker.url} holds no {output}")
        record = _record(temp / "out", made, target, dict(sources or {}), worker, job)
        if made.is_dir():
            atomic.check_can_write(target, overwrite, folder=True)
            with atomic.naming_errors(target):
                atomic.commit_frames(made, target, overwrite)
        else:
            atomic.check_can_write(target, overwrite)
            atomic.commit(made, target, overwrite)
        kept = None
        if record is not None:
            kept = record_path(target)
            atomic.commit(record, kept, True)
    finally:
        atomic.discard(temp)
    return RemoteResult(target, kept, job)


def _record(out: Path, made: Path, target: Path, sources: dict[str, Path], worker: RemoteWorker,
            job: dict[str, Any]) -> Path | None:
    """The server's record of ``made`` rewritten for here: the output and the sources' paths
    those of this machine, and where it ran; ``None`` when the server wrote none."""
    record = out / (made.name + ".provenance.json")
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    data["output"] = str(target)
    for operation in data.get("operations", []):  # ids are made from the output's name
        if str(operation.get("id", "")).endswith(f"-{made.name}"):
            operation["id"] = operation["id"][:-len(made.name)] + target.name
    for source in data.get("sources", []):
        here = sources.get(source.get("sha256"))
        if here is not None:
            source["path"] = str(Path(os.path.abspath(here)))
    data["remote"] = {"server": worker.url, "job": job["id"], "recipe": job["recipe"]}
    record.write_text(json.dumps(data, indent=2) + "\n")
    return record
