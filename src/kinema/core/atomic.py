"""Atomic writes: data goes to a temporary name beside the target and is renamed when complete."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from kinema.core.errors import OutputExistsError


def temp_path_for(target: Path) -> Path:
    """A hidden temporary path in ``target``'s folder that keeps its extension (muxers read it)."""
    return target.with_name(f".{target.stem}.partial-{secrets.token_hex(4)}{target.suffix}")


def check_can_write(target: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless ``overwrite``."""
    if target.exists() and not overwrite:
        raise OutputExistsError("already exists", path=target,
                                hint="choose another name or pass --overwrite")


def fsync_path(path: Path) -> None:
    """Flush a file, or every file in a folder, to disk."""
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(temp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished ``temp`` (file or folder) onto ``target`` in one rename."""
    fsync_path(temp)
    check_can_write(target, overwrite)
    if target.is_dir() and temp.is_dir():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.replace(target, old)
        os.replace(temp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, target)


def discard(temp: Path) -> None:
    """Remove an unfinished temporary file or folder."""
    if temp.is_dir():
        shutil.rmtree(temp, ignore_errors=True)
    else:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the whole new one."""
    check_can_write(target, overwrite)
    temp = temp_path_for(target)
    try:
        temp.write_bytes(data)
        commit(temp, target, overwrite)
    except BaseException:
        discard(temp)
        raise
