"""The project the editor has open for writing, its footage, and the notes it shows the user."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from kinema.app.segment_jobs import ModelChoice
from kinema.core.errors import InvalidArgumentError, KinemaError
from kinema.document import store
from kinema.document.model import ClipItem, MediaRef

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass
class Note:
    """A message for the user (errors never block the window)."""

    text: str
    error: bool = False
    at: float = field(default_factory=time.monotonic)


def project_for(video: Path) -> Path:
    """Where a video's project lives: ``VIDEO.kinema`` beside it, or, when that folder cannot
    be written (a read-only share), under the user's data folder, named after the video."""
    beside = video.with_suffix(store.SUFFIX)
    if beside.exists() or os.access(video.parent, os.W_OK):
        return beside
    from platformdirs import user_data_dir

    digest = hashlib.sha1(str(video.resolve()).encode()).hexdigest()[:8]
    return Path(user_data_dir("kinema")) / "projects" / f"{video.stem}-{digest}{store.SUFFIX}"


class Session:
    """An open project (locked) and the footage of its main clip; ``backend`` and ``choice``
    say which models segment and track."""

    def __init__(self, folder: str | os.PathLike[str], *, backend: str = "classic",
                 choice: ModelChoice | None = None) -> None:
        from kinema.app.evaluate import media_paths
        from kinema.media import open_video

        self.folder = store.project_path(folder)
        self.file = store.ProjectFile(self.folder, unsaved="defer")
        self.backend, self.choice = backend, choice or ModelChoice()
        self.notes: list[Note] = []
        self.media = self._main_media()
        paths, missing = media_paths(self.file.project, self.folder)
        if self.media.id in missing:
            self.file.close()
            raise InvalidArgumentError(f"the footage is missing: {self.media.path}", path=self.folder,
                                       hint="relink it with kinema relink, then open the project again")
        self.video_path = paths[self.media.id]
        self.reader = open_video(self.video_path)
        self.fps: Fraction = self.reader.fps
        self.frames = len(self.reader)
        self.size = self.reader.size

    def _main_media(self) -> MediaRef:
        project = self.file.project
        for layer in project.timeline.video_layers:
            for item in layer.items:
                if isinstance(item, ClipItem):
                    return project.media[item.media_id]
        if not project.media:
            self.file.close()
            raise InvalidArgumentError("the project has no footage", path=self.folder)
        return next(iter(project.media.values()))

    # -- unsaved edits of an earlier session ------------------------------------------------

    @property
    def pending_autosave(self) -> bool:
        """Whether an earlier session's unsaved edits wait for a decision (nothing can be
        edited until then)."""
        return self.file.pending

    def check_writable(self) -> None:
        """Refuse an edit while an earlier session's unsaved edits wait for a decision."""
        if self.pending_autosave:
            raise store.UnsavedEditsError("an earlier session left unsaved edits", path=self.folder,
                                          hint="recover or discard them first")

    def recover(self) -> None:
        """Bring back the edits an earlier session left unsaved; they stay unsaved (and
        autosaved) until a save. The history starts afresh."""
        self.file.recover()
        self.note("recovered the unsaved edits; save to keep them")

    def discard_autosave(self) -> None:
        """Drop the edits an earlier session left unsaved, and the objects only they had."""
        dropped = self.file.discard()
        self.note("discarded the unsaved edits" + (f" and {', '.join(dropped)}" if dropped else ""))

    def save(self) -> None:
        """Write the project (mask edits are on disk already)."""
        self.check_writable()
        self.file.save()
        self.note(f"saved {self.folder.name}")

    def close(self) -> None:
        """Release the project and the footage (unsaved edits stay in the autosave)."""
        self.file.close()
        self.reader.close()

    # -- notes --------------------------------------------------------------------------------

    def note(self, text: str, *, error: bool = False) -> None:
        """Show ``text`` to the user (the last 20 notes are kept)."""
        self.notes.append(Note(text, error))
        del self.notes[:-20]

    def guard(self, action: Callable[[], _R]) -> _R | None:
        """Run a UI action; kinema errors become notes instead of exceptions."""
        try:
            return action()
        except KinemaError as exc:
            self.note(str(exc), error=True)
            return None


class _Part(Protocol):
    session: Session


_S = TypeVar("_S", bound=_Part)


def writes(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Mark a method that writes the project or its masks: refused while an earlier session's
    unsaved edits wait for :meth:`Session.recover` or :meth:`Session.discard_autosave`."""

    @functools.wraps(method)
    def checked(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.session.check_writable()
        return method(self, *args, **kwargs)

    return checked
