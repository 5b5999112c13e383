"""Project folders on disk: atomic saves with a backup, a lock against two writers, autosave.

``NAME.kinema/`` holds ``project.json`` (the document), ``project.json.bak`` (the previous
save), ``autosave.json`` (unsaved edits, written after each change), ``LOCK`` while open for
writing, and ``masks/``, ``cache/`` and ``renders/``.

An autosave left by a session that ended without saving (a crash, a kill, a scripted run
without ``save``) is never overwritten or deleted without a decision: opening the project for
writing refuses, recovers it, discards it or defers the choice (see :data:`Unsaved`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from kinema.core import atomic, locks
from kinema.core.errors import (
    InvalidArgumentError,
    OutputExistsError,
    ProjectCorruptError,
    ProjectError,
    ProjectLockedError,
)
from kinema.document.edits import History
from kinema.document.migrations import migrate
from kinema.document.model import SCHEMA_VERSION, Project

log = logging.getLogger("kinema.document")

SUFFIX = ".kinema"
DOCUMENT = "project.json"
BACKUP = "project.json.bak"
AUTOSAVE = "autosave.json"
LOCK = "LOCK"
SUBFOLDERS = ("masks", "cache", "renders")

Unsaved = Literal["refuse", "recover", "discard", "defer"]
"""What opening a project for writing does with unsaved edits an earlier session left in the
autosave: ``refuse`` to open (:class:`UnsavedEditsError`), ``recover`` them (they become the
current, still unsaved state), ``discard`` them, or ``defer`` the choice (the saved document
opens and nothing is written until :meth:`ProjectFile.recover` or :meth:`ProjectFile.discard`)."""


class UnsavedEditsError(ProjectError, FileExistsError):
    """An earlier session left unsaved edits in the autosave and nobody has decided about them."""


def project_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.kinema`` appended when missing."""
    p = Path(path)
    return p if p.suffix == SUFFIX else p.with_name(p.name + SUFFIX)


def create(path: str | os.PathLike[str], project: Project) -> Path:
    """Write a new project folder (complete or not at all) and return its path."""
    folder = project_path(path)
    if folder.exists():
        raise OutputExistsError("already exists", path=folder,
                                hint="choose another name")
    if not folder.parent.is_dir():
        raise InvalidArgumentError("parent folder does not exist", path=folder.parent)
    temp = atomic.temp_path_for(folder)
    with atomic.naming_errors(folder):
        try:
            temp.mkdir()
            for sub in SUBFOLDERS:
                (temp / sub).mkdir()
            (temp / DOCUMENT).write_text(_dump(project))
            atomic.commit(temp, folder, overwrite=False)
        except BaseException:
            atomic.discard(temp)
            raise
    return folder


def load(path: str | os.PathLike[str], *, recover: bool = False) -> Project:
    """Read a project (migrating older schemas); ``recover`` prefers unsaved autosaved edits."""
    folder = project_path(path)
    doc = _document(folder)
    source = folder / AUTOSAVE if recover and (folder / AUTOSAVE).is_file() else doc
    return _parse(source, folder)


def _document(folder: Path) -> Path:
    """``project.json`` of ``folder``, which must be a project."""
    doc = folder / DOCUMENT
    if not doc.is_file():
        raise ProjectCorruptError("is not a kinema project (no project.json)", path=folder,
                                  hint="create one with kinema new PATH --video VIDEO")
    return doc


def has_unsaved_edits(path: str | os.PathLike[str]) -> bool:
    """Whether an autosave newer than the last save is waiting (a crash left edits behind)."""
    folder = project_path(path)
    auto = folder / AUTOSAVE
    return auto.is_file() and auto.stat().st_mtime_ns >= (folder / DOCUMENT).stat().st_mtime_ns


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail now, before long work, where opening ``path`` for writing would fail later: not a
    project, open in another live kinema, or unsaved edits of an earlier session waiting."""
    folder = project_path(path)
    load(folder)
    holder = locks.live_holder(folder / LOCK)
    if holder is not None:
        raise _locked(folder, holder)
    if has_unsaved_edits(folder):
        raise _unsaved(folder)


def _unsaved(folder: Path) -> UnsavedEditsError:
    return UnsavedEditsError(
        f"has unsaved edits in {AUTOSAVE} from a session that ended without saving", path=folder,
        hint=f"kinema recover {folder} applies them, kinema recover {folder} --discard drops them")


def _parse(source: Path, folder: Path) -> Project:
    backup_hint = (f"the previous save is in {BACKUP}: copy it over {DOCUMENT} to restore it"
                   if (folder / BACKUP).is_file() else "restore it from a copy")
    try:
        data = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectCorruptError(f"{source.name} is damaged ({exc})", path=folder,
                                  hint=backup_hint) from exc
    if not isinstance(data, dict):
        raise ProjectCorruptError(f"{source.name} is not a project document", path=folder,
                                  hint=backup_hint)
    try:
        return Project.model_validate(migrate(data, SCHEMA_VERSION))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProjectCorruptError(f"{source.name} is invalid at {where}: {first['msg']}",
                                  path=folder, hint=backup_hint) from exc


def _dump(project: Project) -> str:
    return project.model_dump_json(indent=2) + "\n"


class ProjectFile:
    """A project open for writing: holds the lock; saves atomically, keeping a backup."""

    def __init__(self, path: str | os.PathLike[str], *, unsaved: Unsaved = "refuse") -> None:
        self.folder = project_path(path)
        _document(self.folder)
        self._lock: Path | None = _acquire_lock(self.folder)
        try:  # read under the lock: what another writer saved, and its autosave, are final
            self._open(load(self.folder))
            self.pending = has_unsaved_edits(self.folder)
            """An earlier session's unsaved edits wait for :meth:`recover` or :meth:`discard`."""
            if self.pending and unsaved == "refuse":
                raise _unsaved(self.folder)
            if self.pending and unsaved == "recover":
                self.recover()
            elif self.pending and unsaved == "discard":
                self.discard()
        except BaseException:
            self.close()
            raise

    def _open(self, project: Project) -> None:
        self.project = project
        self.history = History(project, on_change=lambda _: self.autosave())
        """Edits go through here: undo/redo, and an autosave after each one."""

    def recover(self) -> None:
        """Take the waiting unsaved edits as the current state; they stay unsaved (and in the
        autosave) until :meth:`save`. The history starts afresh."""
        self._require_pending()
        self._open(_parse(self.folder / AUTOSAVE, self.folder))
        self.pending = False

    def discard(self) -> list[str]:
        """Drop the waiting unsaved edits, and the mask tracks only they had (a new track of the
        same id would otherwise show their frames); returns those tracks' ids."""
        self._require_pending()
        auto = self.folder / AUTOSAVE
        try:
            lost = sorted(set(_parse(auto, self.folder).mask_tracks) - set(self.project.mask_tracks))
        except ProjectCorruptError:
            lost = []
        for track in lost:
            shutil.rmtree(self.folder / "masks" / track, ignore_errors=True)
        auto.unlink(missing_ok=True)
        self.pending = False
        return lost

    def _require_pending(self) -> None:
        if not self.pending:
            raise InvalidArgumentError("has no unsaved edits from an earlier session", path=self.folder)

    def _refuse_while_pending(self) -> None:
        if self.pending:  # writing now would overwrite the edits nobody has decided about
            raise _unsaved(self.folder)

    def save(self) -> None:
        """Write ``project.json`` atomically; the version it replaces becomes the backup."""
        self._refuse_while_pending()
        doc = self.folder / DOCUMENT
        temp = atomic.temp_path_for(doc)
        try:
            temp.write_text(_dump(self.project))
            atomic.fsync_path(temp)
            if doc.exists():
                # Link, then rename over the backup: project.json exists at every instant.
                link = atomic.temp_path_for(self.folder / BACKUP)
                os.link(doc, link)
                os.replace(link, self.folder / BACKUP)
            os.replace(temp, doc)
        except BaseException:
            atomic.discard(temp)
            raise
        (self.folder / AUTOSAVE).unlink(missing_ok=True)

    def autosave(self) -> None:
        """Write the current, unsaved state where a crash cannot lose it."""
        self._refuse_while_pending()
        atomic.atomic_write_bytes(self.folder / AUTOSAVE, _dump(self.project).encode())

    def close(self) -> None:
        """Release the lock (unsaved edits stay in the autosave, if one was written)."""
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None

    def __enter__(self) -> ProjectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acquire_lock(folder: Path) -> Path:
    return locks.acquire(folder / LOCK, lambda holder: _locked(folder, holder))


def _locked(folder: Path, holder: dict[str, object]) -> ProjectLockedError:
    return ProjectLockedError(
        f"is open in another kinema (pid {holder.get('pid')} on {holder.get('host')})",
        path=folder, hint=f"close it there, or delete {folder / LOCK} if that process is gone")
