"""kinema: an open-source AI video editor for artists."""

from importlib.metadata import PackageNotFoundError, version

from kinema.core.errors import (
    CorruptMediaError,
    InvalidArgumentError,
    KinemaError,
    MediaOpenError,
    UnsupportedMediaError,
)

try:
    __version__ = version("kinema")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

__all__ = [
    "CorruptMediaError",
    "InvalidArgumentError",
    "KinemaError",
    "MediaOpenError",
    "UnsupportedMediaError",
    "__version__",
]
