"""A lock file that says one kinema process writes a folder (a project, a channel's state).

The lock holds the writer's pid and host. A lock left by a process of this host that no longer
runs is stale and taken over (with a warning); any other is the caller's error to raise.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kinema")

Holder = dict[str, object]


def holder(lock: Path) -> Holder | None:
    """Who holds ``lock`` (its pid and host), or ``None`` when it is absent or unreadable."""
    try:
        data = json.loads(lock.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def is_stale(found: Holder) -> bool:
    """A lock from this host whose process no longer runs."""
    if found.get("host") != socket.gethostname():
        return False
    pid = found.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def live_holder(lock: Path) -> Holder | None:
    """The live process holding ``lock``, or ``None`` when it is free or stale."""
    found = holder(lock)
    return found if found is not None and not is_stale(found) else None


def acquire(lock: Path, locked: Callable[[Holder], Exception]) -> Path:
    """Take ``lock`` for this process (a stale one is taken over); ``locked(holder)`` is the
    error raised when a live process holds it. Release it by deleting the file."""
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = holder(lock)
            if found is not None and not is_stale(found):
                raise locked(found) from None
            log.warning("%s: taking over a stale lock left by pid %s", lock.parent,
                        found.get("pid") if found else "?")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise locked({"pid": "?", "host": "?"})
