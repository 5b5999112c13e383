"""The HTTP worker: a FastAPI app that stores content-addressed blobs and runs job specs from an
allow-list on worker threads, one job at a time per worker, behind a bearer token.

Nothing from a request names a file: blobs are stored under their sha256 (64 hex digits, checked
before anything else), job ids are server-made hex, and a job spec is a pydantic model whose
fields are numbers, names from a fixed list and blob hashes. See ``docs/serve.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kinema.core.errors import CancelledError, KinemaError
from kinema.core.jobs import CancelToken, Progress, Steps, run

SHA256 = r"^[0-9a-f]{64}$"
JOB_ID = r"^[0-9a-f]{32}$"
Sha256 = Annotated[str, Field(pattern=SHA256)]
CHUNK = 1 << 20
BlobName = Annotated[str, PathParam(pattern=SHA256)]
JobId = Annotated[str, PathParam(pattern=JOB_ID)]


# ---- job specs ----------------------------------------------------------------------------------

class Spec(BaseModel):
    """A job spec: an operation and its parameters; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def blob_refs(self) -> list[str]:
        """The blobs the job reads (each must be on the server before it is queued)."""
        return []


class InterpolateSpec(Spec):
    """``app.restore_jobs.interpolate_video`` on an uploaded video: ``factor`` times its rate."""

    operation: Literal["interpolate"] = "interpolate"
    video: Sha256
    factor: int = Field(2, ge=2, le=16)
    backend: Literal["flow", "rife", "blend"] = "flow"
    cut_guard: bool = True

    def blob_refs(self) -> list[str]:
        return [self.video]


@dataclass(frozen=True)
class Operation:
    """An allowed operation: its spec model and ``run(spec, blobs, workdir)``, the work's steps
    returning the result file (inside ``workdir``)."""

    spec: type[Spec]
    run: Callable[[Any, BlobStore, Path], Steps[Path]]


def _interpolate(spec: InterpolateSpec, blobs: BlobStore, workdir: Path) -> Steps[Path]:
    from kinema.app.restore_jobs import interpolate_video

    target = workdir / "result.mp4"
    yield from interpolate_video(blobs.require(spec.video), target, factor=spec.factor,
                                 backend=spec.backend, cut_guard=spec.cut_guard)
    return target


OPERATIONS: dict[str, Operation] = {
    "interpolate": Operation(InterpolateSpec, _interpolate),
}


def recipe_hash(spec: Spec) -> str:
    """The sha256 of a spec's canonical JSON: equal specs on equal blobs give equal results."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---- blobs --------------------------------------------------------------------------------------

class TooLarge(Exception):
    pass


class BlobStore:
    """Files named by their sha256 under ``root/blobs``; written through ``root/tmp`` and renamed
    into place only when complete and verified."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs"
        self.tmp = root / "tmp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _is_sha(sha256):  # a second guard: callers pass validated hashes only
            raise ValueError("not a sha256")
        return self.dir / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def require(self, sha256: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise KinemaError(f"blob {sha256} is not on the server")
        return path

    def temp(self) -> Path:
        return self.tmp / f"upload-{uuid.uuid4().hex}"

    def add_file(self, source: Path) -> str:
        """Move ``source`` into the store under its hash; return the hash."""
        digest = hashlib.sha256()
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
        temp = self.temp()
        shutil.copyfile(source, temp)
        os.replace(temp, self.path(sha))
        return sha


def _is_sha(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


# ---- jobs ---------------------------------------------------------------------------------------

@dataclass
class ServerJob:
    id: str
    spec: Spec
    recipe: str
    state: str = "queued"  # queued, running, done, failed, cancelled
    events: list[dict[str, Any]] = field(default_factory=list)
    result: str | None = None
    error: str | None = None
    cached: bool = False
    token: CancelToken = field(default_factory=CancelToken)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def summary(self) -> dict[str, Any]:
        last = self.events[-1] if self.events else None
        return {"id": self.id, "operation": getattr(self.spec, "operation", None),
                "state": self.state, "recipe": self.recipe, "result": self.result,
                "error": self.error, "cached": self.cached, "progress": last}


class Queue:
    """Jobs run by ``workers`` threads, one job at a time each, in the order they came;
    finished results kept by recipe hash."""

    def __init__(self, root: Path, blobs: BlobStore, operations: Mapping[str, Operation],
                 workers: int) -> None:
        self.root = root
        self.blobs = blobs
        self.operations = operations
        self.jobs: dict[str, ServerJob] = {}
        self.changed = threading.Condition()
        self.pending: queue.Queue[str | None] = queue.Queue()
        self.results = root / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self.work = root / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads = [threading.Thread(target=self._worker, daemon=True, name=f"kinema-serve-{i}")
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, spec: Spec) -> ServerJob:
        job = ServerJob(uuid.uuid4().hex, spec, recipe_hash(spec))
        with self.changed:
            self.jobs[job.id] = job
        self.pending.put(job.id)
        return job

    def cancel(self, job: ServerJob) -> None:
        job.token.cancel()
        with self.changed:
            if job.state == "queued":
                job.state = "cancelled"
            self.changed.notify_all()

    def close(self) -> None:
        for job in list(self.jobs.values()):
            job.token.cancel()
        for _ in self.threads:
            self.pending.put(None)

    def _cached(self, recipe: str) -> str | None:
        try:
            sha = (self.results / recipe).read_text().strip()
        except OSError:
            return None
        return sha if _is_sha(sha) and self.blobs.has(sha) else None

    def _event(self, job: ServerJob, event: Progress) -> None:
        with self.changed:
            job.events.append({"done": event.done, "total": event.total, "unit": event.unit,
                               "message": event.message})
            self.changed.notify_all()

    def _finish(self, job: ServerJob, state: str, result: str | None = None,
                error: str | None = None) -> None:
        with self.changed:
            job.state, job.result, job.error = state, result, error
            self.changed.notify_all()

    def _worker(self) -> None:
        while (job_id := self.pending.get()) is not None:
            job = self.jobs[job_id]
            with self.changed:
                if job.state != "queued":
                    continue
                job.state = "running"
                self.changed.notify_all()
            self._run(job)

    def _run(self, job: ServerJob) -> None:
        cached = self._cached(job.recipe)
        if cached is not None:
            job.cached = True
            self._finish(job, "done", cached)
            return
        operation = self.operations[job.spec.operation]  # type: ignore[attr-defined]
        workdir = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=self.work))
        try:
            path = run(operation.run(job.spec, self.blobs, workdir), job.token,
                       lambda event: self._event(job, event))
            sha = self.blobs.add_file(path)
            (self.results / job.recipe).write_text(sha)
            self._finish(job, "done", sha)
        except CancelledError:
            self._finish(job, "cancelled")
        except KinemaError as exc:
            self._finish(job, "failed", error=str(exc))
        except Exception as exc:  # reported to the client, the worker goes on
            self._finish(job, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def events(self, job: ServerJob) -> Iterator[str]:
        """Server-sent events: each progress event in order, then ``end`` with the job."""
        sent = 0
        while True:
            with self.changed:
                while sent >= len(job.events) and not job.finished:
                    self.changed.wait(timeout=1.0)
                batch = job.events[sent:]
                finished = job.finished
            for event in batch:
                yield f"event: progress\ndata: {json.dumps(event)}\n\n"
            sent += len(batch)
            if finished and sent >= len(job.events):
                yield f"event: end\ndata: {json.dumps(job.summary())}\n\n"
                return


# ---- the app ------------------------------------------------------------------------------------

def create_app(root: Path, token: str | None, max_upload_mb: int, *, workers: int = 1,
               operations: Mapping[str, Operation] | None = None) -> FastAPI:
    """The worker's app, storing under ``root``. Every route wants ``Authorization: Bearer
    TOKEN`` when ``token`` is set (compared in constant time); uploads over ``max_upload_mb``
    are refused; ``operations`` (default :data:`OPERATIONS`) is the allow-list of job kinds."""
    root = Path(root)
    limit = max_upload_mb * 2**20
    blobs = BlobStore(root)
    for stale in blobs.tmp.iterdir():  # uploads a killed server left half written
        stale.unlink(missing_ok=True)
    jobs = Queue(root, blobs, OPERATIONS if operations is None else operations, max(1, workers))
    expected = token.encode() if token is not None else None

    def authorized(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(401, "a valid bearer token is needed",
                                headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()

    app = FastAPI(title="kinema serve", dependencies=[Depends(authorized)], lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.jobs = jobs
    app.state.blobs = blobs

    def job_of(job_id: str) -> ServerJob:
        job = jobs.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    @app.head("/blobs/{sha256:path}")
    def has_blob(sha256: BlobName) -> Response:
        return Response(status_code=200 if blobs.has(sha256) else 404)

    @app.get("/blobs/{sha256:path}")
    def get_blob(sha256: BlobName) -> FileResponse:
        if not blobs.has(sha256):
            raise HTTPException(404, "no such blob")
        return FileResponse(blobs.path(sha256), media_type="application/octet-stream",
                            headers={"X-Sha256": sha256})

    @app.put("/blobs/{sha256:path}", status_code=201)
    async def put_blob(sha256: BlobName, request: Request) -> dict[str, Any]:
        if blobs.has(sha256):
            return {"sha256": sha256, "stored": False}
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"uploads are limited to {max_upload_mb} MB")
        temp = blobs.temp()
        digest, size = hashlib.sha256(), 0
        try:
            with open(temp, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != sha256:
                raise HTTPException(400, "the bytes do not match their sha256")
            os.replace(temp, blobs.path(sha256))
        except TooLarge:
            raise HTTPException(413, f"uploads are limited to {max_upload_mb} MB") from None
        finally:
            temp.unlink(missing_ok=True)
        return {"sha256": sha256, "stored": True, "size": size}

    @app.post("/jobs", status_code=202)
    async def post_job(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(422, "the job spec is not JSON") from None
        name = body.get("operation") if isinstance(body, dict) else None
        operation = jobs.operations.get(name) if isinstance(name, str) else None
        if operation is None:
            raise HTTPException(422, f"unknown operation; one of: {', '.join(sorted(jobs.operations))}")
        try:
            spec = operation.spec.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, json.loads(exc.json(include_url=False, include_input=False))) from None
        missing = [sha for sha in spec.blob_refs() if not blobs.has(sha)]
        if missing:
            raise HTTPException(409, {"missing_blobs": missing})
        return jobs.submit(spec).summary()

    @app.get("/jobs/{job_id}")
    def get_job(job_id: JobId) -> dict[str, Any]:
        return job_of(job_id).summary()

    @app.get("/jobs/{job_id}/events")
    def job_events(job_id: JobId) -> StreamingResponse:
        return StreamingResponse(jobs.events(job_of(job_id)), media_type="text/event-stream")

    @app.get("/jobs/{job_id}/result")
    def job_result(job_id: JobId) -> FileResponse:
        job = job_of(job_id)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, f"the job is {job.state}")
        return get_blob(job.result)

    @app.delete("/jobs/{job_id}")
    def cancel_job(job_id: JobId) -> dict[str, Any]:
        job = job_of(job_id)
        jobs.cancel(job)
        return job.summary()

    return app
