"""Console output for the CLI: one-line errors, warnings from the library, progress bars."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bars

from kinema.core.errors import InvalidArgumentError, KinemaError, os_error_hint
from kinema.core.jobs import Progress, Steps, run

T = TypeVar("T")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every writer on the way out
    deletes its unfinished temporary files."""


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind the program as Ctrl-C does (Python's default ends it on the spot)."""
    import signal

    def _raise(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, _raise)


class _WarningHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]warning:[/] {escape(record.getMessage())}", markup=True)


def setup_logging(verbose: bool = False) -> None:
    """Route the library's log messages to stderr as ``warning: ...`` lines."""
    logger = logging.getLogger("kinema")
    logger.handlers[:] = [_WarningHandler()]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def show_progress(steps: Steps[T], label: str) -> T:
    """Run a use case to its end and return its result, with a bar, rate and time left when on
    a TTY; the messages it had for the user follow, even when it fails or is interrupted."""
    messages: list[str] = []
    try:
        if not err.is_terminal:
            return run(steps, on_progress=lambda event: _keep(event, messages))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
        with Bars(*columns, console=err, transient=True) as bars:
            task = bars.add_task(label, total=None, rate="")
            start, first = time.monotonic(), None

            def show(event: Progress) -> None:
                nonlocal first
                _keep(event, messages)
                first = event.done if first is None else first  # a resumed job starts part done
                elapsed = time.monotonic() - start
                rate = f"{(event.done - first) / elapsed:6.1f} {event.unit}/s" if elapsed > 0.2 else ""
                bars.update(task, completed=event.done, total=event.total, rate=rate)

            return run(steps, on_progress=show)
    finally:
        for line in messages:
            out.print(escape(line))


def _keep(event: Progress, messages: list[str]) -> None:
    if event.message is not None:
        messages.append(event.message)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn kinema errors into one ``error:`` line and a non-zero exit (2 for bad arguments,
    130 for Ctrl-C), never a traceback."""
    try:
        yield
    except InvalidArgumentError as exc:
        fail(str(exc), code=2)
    except KinemaError as exc:
        fail(str(exc))
    except OSError as exc:  # the system said no: a read-only folder, a full disk, ...
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}; {os_error_hint(exc)}")
    except Terminated:
        fail("terminated", code=143)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
