"""The worker's job queue: job specs run on worker threads (or Ray tasks), one job at a time
per worker, their events kept for the event streams, their states saved under the store, their
results kept by recipe hash."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kinema.app.ray_pool import stream
from kinema.app.remote_jobs import Context, InputFile, Operation, Spec, encode_preview, pack
from kinema.core.errors import CancelledError, KinemaError
from kinema.core.jobs import CancelToken, Progress, Steps
from kinema.serve.blobs import BlobStore, is_sha

FRESH = 3600.0
"""Seconds a new result is kept whatever the store's limit, for its client to fetch."""
KEEP_DAYS = 30.0
"""Days a finished job's record, or a failed job's checkpoint, is kept after it last changed."""


class Models:
    """The model names jobs may ask for: the registry's and those given to ``kinema serve
    --model NAME=DIR`` (which stand for their folder)."""

    def __init__(self, folders: Mapping[str, Path] | None = None) -> None:
        from kinema.models.registry import MODELS

        self.folders = dict(folders or {})
        self.names = set(MODELS) | set(self.folders)

    def unknown(self, spec: Spec) -> list[str]:
        return [name for name in spec.model_names() if name not in self.names]

    def resolve(self, name: str | None) -> str | Path | None:
        return None if name is None else self.folders.get(name, name)


def job_events(run: Callable[[Any, Context], Steps[Any]], spec: Spec, inputs: dict[str, Path],
               models: Models, out: Path, checkpoint: Path) -> Iterator[tuple[str, Any]]:
    """An operation's run as ``("progress", Progress)`` and ``("preview", (image, frame))``
    events, in
    this process or in a Ray task (``kinema serve --ray``): the same code either way. Closing
    it closes the run, which discards its unfinished output."""
    previews: list[Any] = []
    context = Context(inputs=lambda file: inputs[file.sha256], model=models.resolve, out=out,
                      checkpoint=checkpoint,
                      preview=lambda image, frame: previews.append((image, frame)))
    with closing(run(spec, context)) as steps:
        for event in steps:
            while previews:
                yield "preview", previews.pop(0)
            yield "progress", event
    while previews:
        yield "preview", previews.pop(0)


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
    preview: bytes | None = None
    preview_frame: int | None = None
    finished_at: float | None = None  # time.monotonic(), in this server's life
    token: CancelToken = field(default_factory=CancelToken)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def summary(self) -> dict[str, Any]:
        last = next((e for e in reversed(self.events) if "done" in e), None)
        return {"id": self.id, "operation": getattr(self.spec, "operation", None),
                "state": self.state, "recipe": self.recipe, "result": self.result,
                "error": self.error, "cached": self.cached, "progress": last}

    def saved(self) -> dict[str, Any]:
        return {**self.summary(), "spec": self.spec.model_dump(mode="json")}


class Queue:
    """Jobs run by ``workers`` threads, one job at a time each, in the order they came.
    Finished results are kept by recipe hash; a spec equal to one queued or running joins
    that job. Each job's summary is saved under ``root/jobs`` so a restarted server still
    answers for it; a job the server was killed in is failed, and its rerun resumes from the
    parts its checkpoint kept (``root/work/RECIPE``)."""

    def __init__(self, root: Path, blobs: BlobStore, operations: Mapping[str, Operation],
                 workers: int, models: Models, ray: bool = False,
                 limit: int | None = None) -> None:
        self.root = root
        self.ray = ray
        self.limit = limit
        self.blobs = blobs
        self.operations = operations
        self.models = models
        self.jobs: dict[str, ServerJob] = {}
        self.lock = threading.Lock()
        self.listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.pending: queue.Queue[str | None] = queue.Queue()
        self.results = root / "results"
        self.work = root / "work"
        self.saved = root / "jobs"
        for folder in (self.results, self.work, self.saved):
            folder.mkdir(parents=True, exist_ok=True)
        self._forget_old()
        self._load()
        self._trim()
        self.threads = [threading.Thread(target=self._worker, daemon=True, name=f"kinema-serve-{i}")
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def _forget_old(self) -> None:
        """Job records and work folders (checkpoints of failed or cancelled jobs) that have
        not changed for :data:`KEEP_DAYS` days."""
        old = time.time() - KEEP_DAYS * 86400
        for path in self.saved.glob("*.json"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < old:
                    path.unlink()
        for folder in self.work.iterdir():
            with contextlib.suppress(OSError):
                if max(p.stat().st_mtime for p in (folder, *folder.rglob("*"))) < old:
                    shutil.rmtree(folder)

    def _load(self) -> None:
        """The jobs an earlier server saved; those it did not finish are failed."""
        for path in sorted(self.saved.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                operation = self.operations[data["spec"]["operation"]]
                job = ServerJob(data["id"], operation.spec.model_validate(data["spec"]),
                                data["recipe"], data["state"], result=data.get("result"),
                                error=data.get("error"), cached=bool(data.get("cached")))
            except (OSError, ValueError, KeyError, TypeError, ValidationError):
                continue  # not a job this server can answer for
            if not job.finished:
                job.state = "failed"
                job.error = ("the server stopped while the job ran; submit it again to resume "
                             "from its finished parts")
                self._save(job)
            self.jobs[job.id] = job

    def _save(self, job: ServerJob) -> None:
        from kinema.core.atomic import atomic_write_bytes

        atomic_write_bytes(self.saved / f"{job.id}.json", json.dumps(job.saved()).encode())

    def submit(self, spec: Spec) -> ServerJob:
        recipe = spec.recipe_hash()
        with self.lock:
            for job in self.jobs.values():
                if job.recipe == recipe and not job.finished:
                    return job
            job = ServerJob(uuid.uuid4().hex, spec, recipe)
            self.jobs[job.id] = job
            self._save(job)
        self.pending.put(job.id)
        return job

    def cancel(self, job: ServerJob) -> None:
        job.token.cancel()
        with self.lock:
            if job.state == "queued":
                job.state = "cancelled"
                self._save(job)
            self._wake()

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
        return sha if is_sha(sha) and self.blobs.use(sha) else None

    def _trim(self, keep: set[str] | None = None) -> None:
        """Keep the blobs under the store's limit: the least recently used go first, never one
        of ``keep``, an input of a job queued or running nor a result made in the last
        :data:`FRESH` seconds (its client may not have fetched it yet); results whose blob went
        are forgotten."""
        if self.limit is None:
            return
        recent = time.monotonic() - FRESH
        with self.lock:
            keep = set(keep or ()) | {f.sha256 for job in self.jobs.values() if not job.finished
                                       for f in job.spec.files()}
            keep |= {job.result for job in self.jobs.values()
                     if job.result and job.finished_at is not None and job.finished_at > recent}
        removed = self.blobs.trim(self.limit, keep)
        for entry in list(self.results.iterdir()) if removed else []:
            with contextlib.suppress(OSError):
                if entry.read_text().strip() in removed:
                    entry.unlink()

    def _event(self, job: ServerJob, event: dict[str, Any]) -> None:
        with self.lock:
            job.events.append(event)
            self._wake()

    def _progress(self, job: ServerJob, event: Progress) -> None:
        self._event(job, {"done": event.done, "total": event.total, "unit": event.unit,
                          "message": event.message})

    def _preview(self, job: ServerJob, image: Any, frame: int | None) -> None:
        data = encode_preview(image)
        with self.lock:
            job.preview, job.preview_frame = data, frame
        self._event(job, {"preview": sum("preview" in e for e in job.events) + 1, "frame": frame})

    def _finish(self, job: ServerJob, state: str, result: str | None = None,
                error: str | None = None) -> None:
        with self.lock:
            job.state, job.result, job.error = state, result, error
            job.finished_at = time.monotonic()
            self._save(job)
            self._wake()

    def _worker(self) -> None:
        while (job_id := self.pending.get()) is not None:
            job = self.jobs[job_id]
            with self.lock:
                if job.state != "queued":
                    continue
                job.state = "running"
                self._save(job)
                self._wake()
            self._run(job)

    def _inputs(self, folder: Path) -> Callable[[InputFile], Path]:
        """Each input file as a link named as the client named it, to its blob."""
        def place(file: InputFile) -> Path:
            link = folder / file.sha256[:16] / file.name
            if not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.blobs.require(file.sha256))
            return link
        return place

    def _run(self, job: ServerJob) -> None:
        cached = self._cached(job.recipe)
        if cached is not None:
            job.cached = True
            self._finish(job, "done", cached)
            return
        operation = self.operations[job.spec.operation]  # type: ignore[attr-defined]
        work = self.work / job.recipe
        run_dir = work / f"run-{job.id}"
        out, checkpoint = run_dir / "out", work / "checkpoint"
        state, sha, error = "failed", None, None
        try:
            for folder in (out, checkpoint):
                folder.mkdir(parents=True, exist_ok=True)
            place = self._inputs(work / "inputs")
            inputs = {f.sha256: place(f) for f in job.spec.files()}
            args = (operation.run, job.spec, inputs, self.models, out, checkpoint)
            events = stream(job_events, *args, gpu=True) if self.ray else job_events(*args)
            with closing(events):
                job.token.check()
                for kind, value in events:
                    if kind == "preview":
                        self._preview(job, *value)
                    else:
                        self._progress(job, value)
                    job.token.check()  # as kinema.core.jobs.run: after each event
            pack(out, run_dir / "result.tar")
            sha = self.blobs.add_file(run_dir / "result.tar")
            (self.results / job.recipe).write_text(sha)
            shutil.rmtree(work, ignore_errors=True)
            state = "done"
        except CancelledError:
            state = "cancelled"
        except KinemaError as exc:
            error = str(exc)
        except Exception as exc:  # reported to the client, the worker goes on
            error = f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        self._trim({sha} if sha else set())  # before "done": a client sees the store trimmed
        self._finish(job, state, sha, error)

    def _wake(self) -> None:
        """Tell every event stream that a job changed (from any thread)."""
        for loop, wake in list(self.listeners):
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(wake.set)

    async def events(self, job: ServerJob) -> AsyncIterator[str]:
        """Server-sent events: each progress (and preview) event in order, then ``end``. A
        stream waits on the event loop, so open streams hold no threads."""
        listener = (asyncio.get_running_loop(), asyncio.Event())
        self.listeners.add(listener)
        try:
            sent = 0
            while True:
                listener[1].clear()
                with self.lock:
                    batch = job.events[sent:]
                    finished = job.finished
                for event in batch:
                    kind = "preview" if "preview" in event else "progress"
                    yield f"event: {kind}\ndata: {json.dumps(event)}\n\n"
                sent += len(batch)
                if finished:
                    yield f"event: end\ndata: {json.dumps(job.summary())}\n\n"
                    return
                if not batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(listener[1].wait(), 1.0)
        finally:
            self.listeners.discard(listener)


