"""Project use cases: create a project from a video, check and relink its media."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from kinema.core.errors import InvalidArgumentError, UnsupportedMediaError
from kinema.core.hashing import file_sha256
from kinema.core.timebase import to_fraction
from kinema.document import store
from kinema.document.model import (
    AudioTrack,
    ClipItem,
    MaskTrackRef,
    MediaRef,
    Project,
    Timeline,
    VideoLayer,
)
from kinema.document.timing import TimeRange


def media_facts(path: Path) -> dict[str, object]:
    """What the media pool records about a file: hash, size, rate, frames, size, sound."""
    from kinema.media.probe import probe

    info = probe(path)
    if info.video is None:
        what = "holds sound only, no picture" if info.audio else "has no video stream"
        raise UnsupportedMediaError(what, path=path, hint="give a video file")
    v = info.video
    return {"sha256": file_sha256(path), "size_bytes": info.size_bytes, "rate": to_fraction(v.fps),
            "frames": v.frames, "width": v.width, "height": v.height,
            "has_audio": bool(info.audio)}


def sound_facts(path: Path) -> dict[str, object]:
    """What the media pool records about a sound-only file (music): no picture, its sample rate
    as the rate and its length in samples as the frame count."""
    from kinema.media.probe import probe

    info = probe(path)
    if not info.audio:
        raise InvalidArgumentError("has no sound", path=path, hint="give a music or sound file")
    audio = info.audio[0]
    seconds = audio.duration or info.duration or 0.0
    return {"sha256": file_sha256(path), "size_bytes": info.size_bytes,
            "rate": Fraction(audio.sample_rate), "frames": int(round(seconds * audio.sample_rate)),
            "width": 0, "height": 0, "has_audio": True}


def new_project(path: str | os.PathLike[str], video: str | os.PathLike[str]) -> Path:
    """Create ``PATH.kinema/`` whose timeline is ``video``, whole, on one layer (and its sound)."""
    folder = store.project_path(path)
    src = Path(video)
    facts = media_facts(src)
    media = MediaRef(id="m1", path=str(src.resolve()),
                     relative_path=os.path.relpath(src.resolve(), folder.resolve()), **facts)
    rate = media.rate
    clip = ClipItem(id="c1", media_id=media.id,
                    source_range=TimeRange.from_frames(0, media.frames, rate))
    audio = [AudioTrack(id="a1", name="A1", items=[clip.model_copy(update={"id": "c2"})])] \
        if media.has_audio else []
    project = Project(
        name=folder.stem,
        media={media.id: media},
        timeline=Timeline(rate=rate, width=media.width, height=media.height,
                          duration=media.frames,
                          video_layers=[VideoLayer(id="l1", name=src.stem, items=[clip])],
                          audio_tracks=audio),
    )
    return store.create(folder, project)


@dataclass(frozen=True)
class MediaStatus:
    """Where one media reference or mask track stands: ``ok``, ``missing``, ``changed`` (the
    file at its path is not the one the project was made with) or ``damaged`` (a mask track's
    data is incomplete; ``detail`` says how)."""

    id: str
    path: str
    state: str
    found_at: Path | None
    detail: str = ""


def media_status(project_path: str | os.PathLike[str], *, verify: bool = False) -> list[MediaStatus]:
    """Each media reference and whether its file is there, then (with ``verify``) each mask
    track and whether its data is whole; ``verify`` also re-hashes the media files (slow for
    long footage) instead of comparing sizes."""
    from kinema.app.evaluate import media_paths

    folder = store.project_path(project_path)
    project = store.load(folder)
    found, _ = media_paths(project, folder)
    out = []
    for ref in project.media.values():
        path = found.get(ref.id)
        if path is None:
            state = "missing"
        elif path.stat().st_size != ref.size_bytes or (verify and file_sha256(path) != ref.sha256):
            state = "changed"
        else:
            state = "ok"
        out.append(MediaStatus(ref.id, ref.path, state, path))
    if verify:
        out += [_mask_status(folder, track) for track in project.mask_tracks.values()]
    return out


def _mask_status(folder: Path, ref: MaskTrackRef) -> MediaStatus:
    from kinema.core.errors import ProjectCorruptError
    from kinema.document.masktrack import MaskTrackStore

    where = folder / "masks" / ref.id
    try:
        problems = MaskTrackStore(where, ref.frames, ref.width, ref.height).verify()
    except ProjectCorruptError as exc:
        problems = [exc.reason]
    state = "ok" if not problems else "missing" if not where.is_dir() else "damaged"
    return MediaStatus(ref.id, str(where), state, where if where.is_dir() else None,
                       "; ".join(problems))


def relink(project_path: str | os.PathLike[str], media_id: str, new_path: str | os.PathLike[str],
           *, force: bool = False) -> None:
    """Point a media reference at ``new_path``, refusing a file with other content unless
    ``force`` (then the project's record of the file is updated to the new one)."""
    from kinema.document import edits

    folder = store.project_path(project_path)
    src = Path(new_path)
    if not src.is_file():
        raise InvalidArgumentError("no such file", path=src)
    with store.ProjectFile(folder) as pf:
        ref = pf.project.media.get(media_id)
        if ref is None:
            known = ", ".join(pf.project.media)
            raise InvalidArgumentError(f"no media {media_id!r} in the project", path=folder,
                                       hint=f"media ids: {known}")
        digest = file_sha256(src)
        facts: dict[str, object] = {}
        if digest != ref.sha256:
            if not force:
                raise InvalidArgumentError(
                    f"is not the file {Path(ref.path).name} the project was made with "
                    f"(content differs)", path=src,
                    hint="pass --force to use it anyway (frame-accurate work may shift)")
            facts = media_facts(src)
        pf.history.do(edits.relink_media(media_id, str(src.resolve()),
                                         os.path.relpath(src.resolve(), folder.resolve()), **facts))
        pf.save()


def recover_unsaved(project_path: str | os.PathLike[str], *, discard: bool = False) -> list[str]:
    """Settle the unsaved edits an earlier session left in the autosave: make them the saved
    project (the one they replace becomes the backup) or, with ``discard``, drop them and the
    mask tracks only they had (returned)."""
    with store.ProjectFile(project_path, unsaved="defer") as pf:
        if discard:
            return pf.discard()
        pf.recover()
        pf.save()
    return []
