"""The worker's blob store: files named by their sha256, written whole or not at all, the least
recently used forgotten first when the store has a limit."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path

from kinema.core.errors import KinemaError

CHUNK = 1 << 20


class TooLarge(Exception):
    """An upload went over the size limit."""


class BlobStore:
    """Files named by their sha256 under ``root/blobs``; written through ``root/tmp`` and renamed
    into place only when complete and verified."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs"
        self.tmp = root / "tmp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not is_sha(sha256):  # a second guard: callers pass validated hashes only
            raise ValueError("not a sha256")
        return self.dir / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def use(self, sha256: str) -> bool:
        """Whether the blob is here, marking it used now (the store forgets the least recently
        used first)."""
        try:
            os.utime(self.path(sha256))
        except OSError:
            return False
        return True

    def require(self, sha256: str) -> Path:
        if not self.use(sha256):
            raise KinemaError(f"blob {sha256} is not on the server")
        return self.path(sha256)

    def trim(self, limit: int, keep: set[str]) -> set[str]:
        """Remove the least recently used blobs, none of ``keep``, until they weigh ``limit``
        bytes at most; the hashes removed."""
        found = []
        for path in self.dir.iterdir():
            with contextlib.suppress(OSError):
                info = path.stat()
                found.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in found)
        removed: set[str] = set()
        for _, size, path in sorted(found):
            if total <= limit:
                break
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed.add(path.name)
                total -= size
        return removed

    def temp(self) -> Path:
        return self.tmp / f"upload-{uuid.uuid4().hex}"

    def add_file(self, source: Path) -> str:
        """Move ``source`` into the store under its hash; return the hash."""
        digest = hashlib.sha256()
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
        temp = self.temp()
        shutil.copyfile(source, temp)
        os.replace(temp, self.path(sha))
        return sha


def is_sha(text: str) -> bool:
    """Whether ``text`` is a sha256 in lowercase hex."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


