"""Frames, time, masks and errors: numpy and the standard library only."""

from kinema.core.errors import (
    CancelledError,
    CorruptMediaError,
    InvalidArgumentError,
    KinemaError,
    MediaError,
    MediaOpenError,
    MediaWriteError,
    MissingExtraError,
    OutputExistsError,
    ProjectCorruptError,
    ProjectError,
    ProjectLockedError,
    UnsupportedMediaError,
)

__all__ = [
    "CancelledError",
    "CorruptMediaError",
    "InvalidArgumentError",
    "KinemaError",
    "MediaError",
    "MediaOpenError",
    "MediaWriteError",
    "MissingExtraError",
    "OutputExistsError",
    "ProjectCorruptError",
    "ProjectError",
    "ProjectLockedError",
    "UnsupportedMediaError",
]
