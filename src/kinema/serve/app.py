"""The HTTP worker: a FastAPI app that stores content-addressed blobs (:mod:`.blobs`) and runs
job specs from an allow-list (:mod:`.jobs`), behind a bearer token.

Nothing from a request names a file: blobs are stored under their sha256 (64 hex digits, checked
before anything else), job ids are server-made hex, and a job spec is a pydantic model whose
fields are numbers, names from fixed lists, model names it knows and input files named by hash
(:mod:`kinema.app.remote_jobs`). See ``docs/serve.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import ValidationError

from kinema.app.remote_jobs import OPERATIONS, SHA256, Operation
from kinema.serve.blobs import BlobStore, TooLarge
from kinema.serve.jobs import Models, Queue, ServerJob

JOB_ID = r"^[0-9a-f]{32}$"
BlobName = Annotated[str, PathParam(pattern=SHA256)]
JobId = Annotated[str, PathParam(pattern=JOB_ID)]


def create_app(root: Path, token: str | None, max_upload_mb: int, *, workers: int = 1,
               operations: Mapping[str, Operation] | None = None,
               models: Mapping[str, Path] | None = None, ray: bool = False,
               max_store_bytes: int | None = None) -> FastAPI:
    """The worker's app, storing under ``root``. Every route wants ``Authorization: Bearer
    TOKEN`` when ``token`` is set (compared in constant time); uploads over ``max_upload_mb``
    are refused; ``operations`` (default :data:`OPERATIONS`) is the allow-list of job kinds;
    ``models`` names model folders jobs may ask for besides the registry's names; with ``ray``
    each job runs in a Ray task with a GPU of its own where the cluster has GPUs;
    ``max_store_bytes`` bounds the blobs (uploads and results), the least recently used
    forgotten first."""
    root = Path(root)
    limit = max_upload_mb * 2**20
    blobs = BlobStore(root)
    for stale in blobs.tmp.iterdir():  # uploads a killed server left half written
        stale.unlink(missing_ok=True)
    jobs = Queue(root, blobs, OPERATIONS if operations is None else operations, max(1, workers),
                 Models(models), ray, max_store_bytes)
    expected = token.encode() if token is not None else None

    async def authorized(request: Request) -> None:
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
        return Response(status_code=200 if blobs.use(sha256) else 404)

    @app.get("/blobs/{sha256:path}")
    def get_blob(sha256: BlobName) -> FileResponse:
        if not blobs.use(sha256):
            raise HTTPException(404, "no such blob")
        return FileResponse(blobs.path(sha256), media_type="application/octet-stream",
                            headers={"X-Sha256": sha256})

    @app.put("/blobs/{sha256:path}", status_code=201)
    async def put_blob(sha256: BlobName, request: Request) -> dict[str, Any]:
        if blobs.use(sha256):
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
        unknown = jobs.models.unknown(spec)
        if unknown:
            raise HTTPException(422, f"unknown model {', '.join(unknown)}; the server knows the "
                                     "registry's names and those given to kinema serve --model")
        missing = sorted({f.sha256 for f in spec.files() if not blobs.has(f.sha256)})
        if missing:
            raise HTTPException(409, {"missing_blobs": missing})
        return jobs.submit(spec).summary()

    @app.get("/jobs/{job_id}")
    def get_job(job_id: JobId) -> dict[str, Any]:
        return job_of(job_id).summary()

    @app.get("/jobs/{job_id}/events")
    async def job_events(job_id: JobId) -> StreamingResponse:
        return StreamingResponse(jobs.events(job_of(job_id)), media_type="text/event-stream")

    @app.get("/jobs/{job_id}/result")
    def job_result(job_id: JobId) -> FileResponse:
        job = job_of(job_id)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, f"the job is {job.state}")
        return get_blob(job.result)

    @app.get("/jobs/{job_id}/preview")
    def job_preview(job_id: JobId) -> Response:
        job = job_of(job_id)
        with jobs.lock:
            data, frame = job.preview, job.preview_frame
        if data is None:
            raise HTTPException(404, "no preview yet")
        headers = {"X-Frame": str(frame)} if frame is not None else {}
        return Response(data, media_type="image/png", headers=headers)

    @app.delete("/jobs/{job_id}")
    def cancel_job(job_id: JobId) -> dict[str, Any]:
        job = job_of(job_id)
        jobs.cancel(job)
        return job.summary()

    return app
