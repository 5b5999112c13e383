"""Content hashes of files, streamed so that large media and weights never sit in memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def file_sha256(path: str | os.PathLike[str], chunk: int = 4 * 2**20) -> str:
    """The SHA-256 of a whole file."""
    return files_sha256([path], chunk)


def files_sha256(paths: Iterable[str | os.PathLike[str]], chunk: int = 4 * 2**20) -> str:
    """One SHA-256 over several files' bytes, in the order given (a model's weight shards)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()
