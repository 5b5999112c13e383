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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.core.jobs import Progress, Steps

CHUNK = 1 << 20
FINISHED = ("done", "failed", "cancelled")


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

    def follow(self, job_id: str) -> Steps[dict[str, Any]]:
        """The job's progress as it comes, then the finished job. A dropped connection
        re-attaches (the server sends every event again; those seen are skipped) up to
        ``reattach`` times before one error naming the server."""
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
                            if kind == "progress":
                                index += 1
                                if index > seen:
                                    seen = index
                                    yield Progress(int(data["done"]), int(data["total"]),
                                                   data.get("unit") or "", data.get("message"))
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

    def fetch(self, job_id: str, sha256: str, target: str | os.PathLike[str],
              overwrite: bool) -> None:
        """Download the job's result to ``target`` (atomically), refused unless its bytes
        have ``sha256``: nothing is written then."""
        from kinema.core.atomic import check_can_write, commit, discard, temp_path_for

        target = Path(target)
        check_can_write(target, overwrite)
        temp = temp_path_for(target)
        try:
            digest = hashlib.sha256()
            try:
                with self.client.stream("GET", f"/jobs/{job_id}/result") as r:
                    self._check(r, (200,))
                    claimed = r.headers.get("x-sha256")
                    with open(temp, "wb") as f:
                        for chunk in r.iter_bytes(CHUNK):
                            digest.update(chunk)
                            f.write(chunk)
            except self._httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            got = digest.hexdigest()
            if got != sha256 or (claimed is not None and claimed != sha256):
                raise RemoteError(f"the result from {self.url} does not match its sha256 "
                                  f"(expected {sha256}, got {got}); nothing written",
                                  path=target)
            commit(temp, target, overwrite)
        except BaseException:
            discard(temp)
            raise


@dataclass(frozen=True)
class RemoteInterpolated:
    """A remote interpolate's output: where, its rate, the record, and the job."""

    path: Path
    rate: Any
    record: Path
    job: dict[str, Any]
    uploaded: bool


def interpolate_remote(worker: RemoteWorker, src: str | os.PathLike[str],
                       dst: str | os.PathLike[str], *, factor: int = 2, backend: str = "flow",
                       cut_guard: bool = True,
                       overwrite: bool = False) -> Steps[RemoteInterpolated]:
    """``interpolate_video`` run by ``worker``: the video uploaded (unless the server has it),
    the job followed, the result checked by hash and written to ``dst``, and
    ``OUT.provenance.json`` beside it holding the recipe the server ran (its spec). Closing the
    steps before the end cancels the job on the server."""
    from kinema.app import operation_records as records
    from kinema.core.atomic import check_can_write, check_not_input, output_path
    from kinema.document.recipes import InterpolateRecipe
    from kinema.media import open_video

    if not 2 <= factor <= 16:
        raise InvalidArgumentError(f"--factor must be 2 to 16 on a remote worker, got {factor}")
    target = output_path(dst)
    check_not_input(target, [src])
    if target.suffix.lower() != ".mp4":
        raise KinemaError("a remote interpolate writes an MP4", path=target,
                          hint="name the output .mp4 (frame folders and other codecs: run locally)")
    check_can_write(target, overwrite)
    source = records.Source.of(src)
    yield Progress(0, 1, "upload")
    sha, uploaded = worker.upload(src)
    spec = {"operation": "interpolate", "video": sha, "factor": factor, "backend": backend,
            "cut_guard": cut_guard}
    job = worker.submit(spec)
    finished = False
    try:
        job = yield from worker.follow(job["id"])
        finished = True
    finally:
        if not finished:
            worker.cancel(job["id"])
    if job["state"] != "done" or not job.get("result"):
        raise RemoteError(f"the job on {worker.url} {job['state']}"
                          + (f": {job['error']}" if job.get("error") else ""))
    worker.fetch(job["id"], job["result"], target, overwrite)
    with open_video(target, prefetch=False) as reader:
        rate = reader.fps
    recipe = InterpolateRecipe(id=f"interpolate-{target.name}", backend=backend, factor=factor,
                               cut_guard=cut_guard, inputs=[source.as_input()])
    record = records.write_record(target, recipe, [source])
    return RemoteInterpolated(target, rate, record, job, uploaded)
