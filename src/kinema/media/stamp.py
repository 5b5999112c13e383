"""Where derived files live, and the stamp that tells whether they still match their source."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root(kind: str) -> Path:
    """``$KINEMA_CACHE_DIR/kind`` if set, else the user cache folder's ``kind`` subfolder."""
    root = os.environ.get("KINEMA_CACHE_DIR")
    if root:
        return Path(root) / kind
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kinema")) / kind


def cache_name(source: Path, suffix: str) -> str:
    """A file name for something derived from ``source``: its stem and a hash of its full path."""
    src = source.resolve()
    return f"{src.stem}-{hashlib.sha1(str(src).encode()).hexdigest()[:12]}{suffix}"


def source_stamp(source: Path) -> dict[str, object]:
    """Path, size, mtime and a hash of the first and last MiB: cheap, and it changes when the
    file does (a re-export under the same name, a copy over it, an append)."""
    st = source.stat()
    h = hashlib.sha256()
    with open(source, "rb") as f:
        h.update(f.read(2**20))
        if st.st_size > 2**21:
            f.seek(-(2**20), os.SEEK_END)
            h.update(f.read(2**20))
    return {"source": str(source.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256_head_tail": h.hexdigest()}
