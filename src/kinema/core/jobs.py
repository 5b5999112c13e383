"""Long work, one way: a generator of :class:`Progress` events, stopped by a :class:`CancelToken`.

Every use case in ``kinema.app`` that takes more than a moment is a generator (:data:`Steps`):
it yields a :class:`Progress` after each unit of work (a frame, a batch) and returns its result.
It never sees a cancel token: whoever drives it does. :func:`run` drives one to the end on the
caller's thread, :class:`Job` on a worker thread; both check the token after every event and,
when it is set, close the generator where it is paused, so its ``with`` blocks unwind as on any
error (writers discard their partial output) and :class:`CancelledError` is raised. A frame
being worked on when ``cancel()`` comes is the last one. An event marked ``checkpoint`` says
that the work done so far is saved: a rerun (``render --resume``, indexing again) keeps it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Generic, TypeVar

from kinema.core.errors import CancelledError, KinemaError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` ``unit`` (0 while the total is unknown), with an optional line
    for the user (``message``); ``checkpoint`` when everything done so far is saved."""

    done: int
    total: int
    unit: str = "frames"
    message: str | None = None
    checkpoint: bool = False

    @property
    def fraction(self) -> float:
        """Done, from 0 to 1 (0 until the total is known)."""
        return self.done / self.total if self.total else 0.0


Steps = Generator[Progress, None, T]
"""A use case's work: yields :class:`Progress` after each unit, returns the result."""


def mapped(steps: Steps[T], change: Callable[[Progress], Progress]) -> Steps[T]:
    """``steps`` with each event passed through ``change`` (renumbered as part of larger work,
    a message dropped), and the same result; closing this closes ``steps`` where it waits."""
    with closing(steps):
        while True:
            try:
                event = next(steps)
            except StopIteration as done:
                return done.value
            yield change(event)


Emit = Callable[[str, object], None]
"""How work on a worker thread hands an event (a kind and a value) to :func:`threaded`."""


def threaded(work: Callable[[Emit], None], name: str = "kinema-work") -> Iterator[tuple[str, object]]:
    """The events ``work(emit)`` emits on a worker thread, as they come, for blocking work
    (a model call with a per-step callback) inside a use case's generator. An error in the
    work is raised here. Closing this iterator (a cancel, an error here) makes the work's
    next ``emit`` raise :class:`CancelledError`, and waits for the thread to end."""
    events: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                events.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def emit(kind: str, value: object) -> None:
        if not put(kind, value):
            raise CancelledError("cancelled")

    def run() -> None:
        try:
            work(emit)
            put("done", None)
        except BaseException as exc:  # handed to the consumer, which raises it
            put("error", exc)

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    try:
        while (event := events.get())[0] != "done":
            if event[0] == "error":
                raise event[1]  # type: ignore[misc]
            yield event
    finally:
        stop.set()
        thread.join()


class CancelToken:
    """A thread-safe request to stop: any thread may :meth:`cancel`; the driver of the work
    calls :meth:`check` between units."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next event."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if cancelling was asked for."""
        if self._event.is_set():
            raise CancelledError("cancelled")


def run(steps: Steps[T], cancel: CancelToken | None = None,
        on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive ``steps`` to the end and return its result, handing each event to ``on_progress``.
    A cancel (checked after every event) closes ``steps`` where it is paused, which discards
    its unfinished output, and raises :class:`CancelledError`."""
    with closing(steps):
        while True:
            try:
                event = next(steps)
            except StopIteration as end:
                return end.value
            if on_progress is not None:
                on_progress(event)
            if cancel is not None:
                cancel.check()


class Job(Generic[T]):
    """A use case run on a worker thread (``steps`` is called there) for a surface to watch:
    its latest :attr:`progress`, then :attr:`result` or :attr:`error`; :meth:`cancel` stops it
    at its next event. ``on_done`` runs on the worker after a success."""

    def __init__(self, label: str, steps: Callable[[], Steps[T]],
                 on_done: Callable[[], None] | None = None) -> None:
        self.label = label
        self.steps = steps
        self.on_done = on_done
        self.progress: Progress | None = None
        self.kept = 0  # units done at the last checkpoint: what a rerun keeps
        self.result: T | None = None
        self.error: str | None = None
        self.cancelled = False
        self.finished = False
        self.started = time.monotonic()
        self._token = CancelToken()
        self._thread: threading.Thread | None = None

    def start(self) -> Job[T]:
        """Begin the work on its own (daemon) thread."""
        self._thread = threading.Thread(target=self._run, name=f"kinema-job-{self.label}", daemon=True)
        self._thread.start()
        return self

    def _see(self, event: Progress) -> None:
        self.progress = event
        if event.checkpoint:
            self.kept = event.done

    def _run(self) -> None:
        try:
            self.result = run(self.steps(), self._token, self._see)
            if self.on_done is not None:
                self.on_done()
        except CancelledError:
            self.cancelled = True
        except KinemaError as exc:
            self.error = str(exc)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished = True

    @property
    def fraction(self) -> float:
        """Done, from 0 to 1 (1 once finished)."""
        if self.finished:
            return 1.0
        return self.progress.fraction if self.progress is not None else 0.0

    @property
    def state(self) -> str:
        """One line for a job list: ``12/120 frames``, ``done``, ``failed``, or ``cancelled``
        (with what a rerun keeps)."""
        if self.error:
            return "failed"
        if self.cancelled:
            unit = self.progress.unit if self.progress is not None else ""
            return f"cancelled, {self.kept} {unit} kept" if self.kept else "cancelled"
        if self.finished:
            return "done"
        if self.progress is None:
            return "starting"
        return f"{self.progress.done}/{self.progress.total} {self.progress.unit}"

    def cancel(self) -> None:
        """Ask the job to stop at its next event (the unit in progress is its last)."""
        self._token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and scripts; never the UI thread); True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished
