"""Project use cases: create a project from a video."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kinema.core.timebase import to_fraction
from kinema.document import store
from kinema.document.model import (
    AudioTrack,
    ClipItem,
    MediaRef,
    Project,
    Timeline,
    VideoLayer,
)
from kinema.document.timing import TimeRange


def file_sha256(path: Path, chunk: int = 4 * 2**20) -> str:
    """The SHA-256 of a whole file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def new_project(path: str | os.PathLike[str], video: str | os.PathLike[str]) -> Path:
    """Create ``PATH.kinema/`` whose timeline is ``video``, whole, on one layer (and its sound)."""
    from kinema.media.probe import probe

    folder = store.project_path(path)
    src = Path(video)
    info = probe(src)
    assert info.video is not None  # probe raises for files without video
    v = info.video
    rate = to_fraction(v.fps)
    media = MediaRef(id="m1", path=str(src.resolve()),
                     relative_path=os.path.relpath(src.resolve(), folder.resolve()),
                     sha256=file_sha256(src), size_bytes=info.size_bytes, rate=rate,
                     frames=v.frames, width=v.width, height=v.height, has_audio=bool(info.audio))
    clip = ClipItem(id="c1", media_id=media.id, source_range=TimeRange.from_frames(0, v.frames, rate))
    audio = [AudioTrack(id="a1", name="A1", items=[clip.model_copy(update={"id": "c2"})])] \
        if info.audio else []
    project = Project(
        name=folder.stem,
        media={media.id: media},
        timeline=Timeline(rate=rate, width=v.width, height=v.height, duration=v.frames,
                          video_layers=[VideoLayer(id="l1", name=src.stem, items=[clip])],
                          audio_tracks=audio),
    )
    return store.create(folder, project)
