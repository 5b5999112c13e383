"""Background jobs for the editor: long work on a worker thread, with progress and cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kinema.core.errors import KinemaError


@dataclass
class Job:
    """One piece of long work: ``steps`` yields ``(done, total)``; the UI reads ``progress``
    and may ``cancel``; ``on_done`` runs on the worker when it finishes without error."""

    label: str
    steps: Callable[[], Iterator[tuple[int, int]]]
    on_done: Callable[[], None] | None = None
    done: int = 0
    total: int = 0
    error: str | None = None
    finished: bool = False
    cancelled: bool = False
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Job:
        self._thread = threading.Thread(target=self._run, name=f"kinema-job-{self.label}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            steps = self.steps()
            try:
                for self.done, self.total in steps:
                    if self._stop.is_set():
                        self.cancelled = True
                        break
            finally:
                close = getattr(steps, "close", None)
                if close is not None:
                    close()  # a cancelled generator cleans up (atomic writers discard)
            if not self.cancelled and self.on_done is not None:
                self.on_done()
        except KinemaError as exc:
            self.error = str(exc)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished = True

    @property
    def progress(self) -> float:
        """Fraction done, 0..1 (0 until the total is known)."""
        return self.done / self.total if self.total else 0.0

    def cancel(self) -> None:
        """Ask the job to stop after its current step."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and scripts; never the UI thread)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished
