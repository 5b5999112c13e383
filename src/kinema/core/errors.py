"""The kinema error hierarchy.

Every error kinema raises for bad input derives from :class:`KinemaError` and also from the
builtin it resembles, so ``except OSError`` keeps working for callers that do not know kinema.
Messages are one line: they name the file, say what is wrong and what to do next.
"""

from __future__ import annotations

import errno
import os


class KinemaError(Exception):
    """Root of every error kinema raises on purpose."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 hint: str | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = message
        self.hint = hint
        text = f"{self.path}: {message}" if self.path else message
        if hint:
            text = f"{text}; {hint}"
        super().__init__(text)

    def __reduce__(self):  # keep pickling (Ray, multiprocessing) working with keyword args
        return (_rebuild, (type(self), self.reason, self.path, self.hint))


def _rebuild(cls: type[KinemaError], reason: str, path: str | None, hint: str | None) -> KinemaError:
    return cls(reason, path=path, hint=hint)


class InvalidArgumentError(KinemaError, ValueError):
    """A caller passed a value kinema cannot use (bad range, unknown codec name, ...)."""


class MediaError(KinemaError):
    """Base for problems with a media file."""


class MediaOpenError(MediaError, OSError):
    """The file cannot be opened at all: missing, a directory, not readable."""


class UnsupportedMediaError(MediaError, ValueError):
    """The file opens but kinema cannot use it: not a video, unknown codec, absurd size."""


class CorruptMediaError(MediaError, ValueError):
    """The file is damaged: truncated, corrupt packets, no decodable frames."""


class MediaWriteError(MediaError, OSError):
    """Writing an output failed; nothing was left under the final name."""


class OutputExistsError(KinemaError, FileExistsError):
    """An output would overwrite an existing file and overwriting was not asked for."""


class MissingExtraError(KinemaError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ModelNotFoundError(KinemaError, FileNotFoundError):
    """A model's weights are not on this machine; the message names the pull command."""


class ProjectError(KinemaError):
    """Base for problems with a project folder."""


class ProjectLockedError(ProjectError, PermissionError):
    """Another kinema process has the project open for writing."""


class ProjectCorruptError(ProjectError, ValueError):
    """``project.json`` cannot be read; the backup is left untouched."""


def os_error_hint(exc: OSError) -> str:
    """What to do about a failed read or write, from its errno."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the place is not writable (or readable) by you: choose another folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the disk is full or the file too large for it: free some space or write elsewhere"
    if exc.errno == errno.ENOENT:
        return "check the path"
    return "check the path, permissions and free disk space"


def write_error(exc: OSError, path: str | os.PathLike[str]) -> MediaWriteError:
    """A system error while writing ``path``, as one line naming it (not a temporary name)."""
    return MediaWriteError(f"could not write: {exc.strerror or exc}", path=path,
                           hint=os_error_hint(exc))


class CancelledError(KinemaError):
    """Long work was cancelled by the user."""
