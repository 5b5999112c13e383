"""Atomic writes: data goes to a temporary name beside the target and is renamed when complete.

Temporary names carry the writing process's id (``.NAME.partial-PID-XXXX.ext``), so a later
run can tell the leftovers of a killed process from the work of a live one and sweep them.
Folder outputs (image sequences) are merged into an existing folder file by file: kinema
replaces only the files its manifest (``.NAME.kinema-output.json`` beside the folder, so the
folder holds nothing but the frames) says it wrote there, never anything else in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from kinema.core.errors import InvalidArgumentError, KinemaError, OutputExistsError, write_error

_PARTIAL = re.compile(r"^\..*\.partial-(\d+)-[0-9a-f]{8}")
_swept: set[Path] = set()


def output_path(target: str | os.PathLike[str]) -> Path:
    """``target`` made absolute and normalised, so ``.`` or ``dir/`` name a real folder."""
    path = Path(os.path.abspath(target))
    if not path.name:
        raise InvalidArgumentError("is not a usable output name", path=path,
                                   hint="name a file or a folder below it")
    return path


def temp_path_for(target: Path) -> Path:
    """A hidden temporary path in ``target``'s folder that keeps its extension (muxers read it).

    The first call for a folder in this process sweeps what killed kinema processes left there.
    """
    target = output_path(target)
    sweep_stale(target.parent)
    return target.with_name(
        f".{target.stem}.partial-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporary files and folders of kinema processes that no longer run."""
    if folder in _swept:
        return []
    _swept.add(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match and not _alive(int(match.group(1))):
            discard(entry)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_can_write(target: Path, overwrite: bool, *, folder: bool = False) -> None:
    """Refuse to replace an existing output unless ``overwrite``, and never a file by a folder
    or a folder by a file. An empty folder takes a folder output without ``overwrite``."""
    target = output_path(target)
    if not target.exists():
        return
    if folder != target.is_dir():
        have, want = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
        raise OutputExistsError(f"is {have}, and this output is {want}", path=target,
                                hint="choose another output name")
    if folder and not any(target.iterdir()):
        return
    if not overwrite:
        hint = ("choose another name or pass --overwrite" if not folder else
                "choose another folder, or pass --overwrite to replace the frames kinema wrote "
                "there (other files are left alone)")
        raise OutputExistsError("already exists", path=target, hint=hint)


def check_not_input(target: str | os.PathLike[str],
                    inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse an output that is one of the inputs: writing it would destroy the source."""
    out = output_path(target)
    for source in inputs:
        if source is None:
            continue
        src = Path(source)
        same = (os.path.realpath(src) == os.path.realpath(out)
                or (src.exists() and out.exists() and os.path.samefile(src, out)))
        if same:
            raise InvalidArgumentError("is also an input of this command; writing it would destroy "
                                       "the source", path=out, hint="choose another output name")


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
    """Move a finished ``temp`` onto ``target`` in one rename. A folder is only ever moved to
    a free name (frame folders go through :func:`commit_frames`)."""
    target = output_path(target)
    fsync_path(temp)
    check_can_write(target, overwrite, folder=temp.is_dir())
    if temp.is_dir() and target.exists() and any(target.iterdir()):
        raise OutputExistsError("already exists", path=target, hint="choose another name")
    os.replace(temp, target)


def commit_frames(temp: Path, target: Path, overwrite: bool) -> None:
    """Move the files of the finished folder ``temp`` into the folder ``target``.

    A new or empty ``target`` is one rename. Into a folder kinema wrote before (with
    ``overwrite``), the files of its manifest are replaced or removed and every other file is
    left as it is; a new file whose name is taken by a file kinema did not write is refused
    before anything changes.
    """
    target = output_path(target)
    fsync_path(temp)
    check_can_write(target, overwrite, folder=True)
    new = sorted(p.name for p in temp.iterdir())
    if not target.exists() or not any(target.iterdir()):
        os.replace(temp, target)
        _write_manifest(target, new)
        return
    old = set(read_manifest(target))
    foreign = [name for name in new if name not in old and (target / name).exists()]
    if foreign:
        raise OutputExistsError(
            f"holds {len(foreign)} file(s) kinema did not write with the same names as its "
            f"output, e.g. {foreign[0]}", path=target, hint="choose an empty or new folder")
    _write_manifest(target, sorted(old | set(new)))  # a crash in between leaves all tracked
    for name in new:
        os.replace(temp / name, target / name)
    for name in sorted(old - set(new)):
        (target / name).unlink(missing_ok=True)
    _write_manifest(target, new)
    discard(temp)


def manifest_path(folder: Path) -> Path:
    """Where kinema records the files it wrote into ``folder``: a hidden file beside it."""
    return folder.with_name(f".{folder.name}.kinema-output.json")


def read_manifest(folder: Path) -> list[str]:
    """The plain file names kinema says it wrote into ``folder`` (none without a manifest)."""
    try:
        names = json.loads(manifest_path(folder).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and n not in ("", ".", "..")
            and "/" not in n and "\\" not in n]


def _write_manifest(folder: Path, names: list[str]) -> None:
    data = json.dumps({"written_by": "kinema", "files": names}, indent=1).encode()
    atomic_write_bytes(manifest_path(folder), data)


@contextlib.contextmanager
def naming_errors(target: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a system error (read-only folder, full disk) while writing ``target`` into one line
    that names ``target``, not the temporary file it happened on."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, KinemaError):
            raise
        raise write_error(exc, target) from exc


def discard(temp: Path) -> None:
    """Remove an unfinished temporary file or folder."""
    if temp.is_dir() and not temp.is_symlink():
        shutil.rmtree(temp, ignore_errors=True)
    else:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the whole new one."""
    check_can_write(target, overwrite)
    temp = temp_path_for(target)
    with naming_errors(target):
        try:
            temp.write_bytes(data)
            commit(temp, target, overwrite)
        except BaseException:
            discard(temp)
            raise
