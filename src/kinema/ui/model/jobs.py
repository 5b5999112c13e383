"""Background work the editor started (propagation, exports, the proxy), for its job list."""

from __future__ import annotations

import time
from collections.abc import Callable

from kinema.core.jobs import Job, Steps
from kinema.ui.model.session import Session

KEEP_FINISHED = 30.0
"""Seconds a finished job stays in the list after it started."""


class Jobs:
    """The running and recently finished jobs; failures become notes."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.items: list[Job] = []
        self._reported: set[int] = set()  # ids of failed jobs already noted

    def start(self, label: str, steps: Callable[[], Steps[object]],
              on_done: Callable[[], None] | None = None) -> Job[object]:
        """Run ``steps`` on a worker thread; ``on_done`` runs there when it ends without error."""
        job = Job(label, steps, on_done=on_done).start()
        self.items.append(job)
        return job

    def busy(self) -> bool:
        """Whether any job is still running."""
        return any(not job.finished for job in self.items)

    def poll(self) -> list[str]:
        """Turn newly failed jobs into notes (and return them); forget finished ones after
        :data:`KEEP_FINISHED` seconds."""
        now = time.monotonic()
        failed = []
        for job in self.items:
            if job.finished and job.error and id(job) not in self._reported:
                failed.append(f"{job.label}: {job.error}")
                self.session.note(failed[-1], error=True)
                self._reported.add(id(job))
        self.items = [j for j in self.items if not j.finished or now - j.started < KEEP_FINISHED]
        self._reported &= {id(j) for j in self.items}
        return failed

    def stop(self, timeout: float = 10) -> None:
        """Cancel every job and wait for each up to ``timeout`` seconds."""
        for job in self.items:
            job.cancel()
        for job in self.items:
            job.wait(timeout)
