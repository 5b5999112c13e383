"""Exports for compositing elsewhere: a mask track as a matte, or the subject cut out over
transparency, frame for frame with the track's footage."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kinema.app.evaluate import media_paths
from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaOpenError
from kinema.core.jobs import Progress, Steps
from kinema.document import store
from kinema.document.masktrack import MaskTrackStore
from kinema.document.model import MaskTrackRef, Project
from kinema.render.mattes import matte_from_mask


def find_track(project: Project, folder: Path, name: str) -> MaskTrackRef:
    """The mask track of ``project`` (in ``folder``) with id or name ``name``; one error
    naming the tracks there if none is."""
    ref = project.mask_tracks.get(name) or next(
        (t for t in project.mask_tracks.values() if t.name == name), None)
    if ref is None:
        known = ", ".join(f"{t.id} ({t.name})" for t in project.mask_tracks.values()) or "none yet"
        raise InvalidArgumentError(f"no mask track {name!r}", path=folder,
                                   hint=f"tracks in this project: {known}")
    return ref


def open_track(project: Project, folder: Path, name: str) -> tuple[MaskTrackRef, MaskTrackStore]:
    """Mask track ``name`` (:func:`find_track`) and its masks."""
    ref = find_track(project, folder, name)
    return ref, MaskTrackStore(folder / "masks" / ref.id, ref.frames, ref.width, ref.height)


def check_footage_size(ref: MaskTrackRef, size: tuple[int, int], footage: Path) -> None:
    """Track ``ref``'s masks are the size of its ``footage`` (``size``), or one error."""
    if tuple(size) != (ref.width, ref.height):
        raise InvalidArgumentError(
            f"track {ref.name!r} is {ref.width}x{ref.height} but its footage is {size[0]}x{size[1]}",
            path=footage, hint="relink the footage the track was made on")


def refuse_inputs(project: Project, folder: Path, out: str | os.PathLike[str]) -> None:
    """An export never writes over the project or the footage it reads."""
    atomic.check_not_input(out, [folder, folder / store.DOCUMENT,
                                 *media_paths(project, folder)[0].values()])


def _mattes(track: MaskTrackStore, grow: float, feather: float, invert: bool,
            guides: Iterator[np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """Float mattes in [0, 1], one per frame of the track (empty frames are all zero). With
    ``guides`` (the footage's frames) the edge is softened along the picture (guided filter:
    hair, motion blur) instead of feathered."""
    from kinema.vision.maskops import soft_matte

    empty = np.zeros((track.height, track.width), bool)
    for i in range(track.frames):
        mask = track.read(i)
        mask = empty if mask is None else mask
        if guides is None:
            yield matte_from_mask(mask, grow=grow, feather=feather, invert=invert)
            continue
        grown = matte_from_mask(mask, grow=grow) > 0.5
        matte = soft_matte(next(guides), grown, radius=max(2, int(round(feather)) or 8))
        yield 1.0 - matte if invert else matte


def track_footage(project: Project, folder: Path, ref: MaskTrackRef) -> Path:
    """Where the footage a track was made on is now (or a one-line error to relink it)."""
    paths, missing = media_paths(project, folder)
    if ref.media_id in missing:
        raise MediaOpenError(f"footage of track {ref.name!r} is missing: "
                             f"{project.media[ref.media_id].path}", path=folder,
                             hint="relink it (kinema relink) or put the file back")
    return paths[ref.media_id]


def export_matte(project_path: str | os.PathLike[str], track_id: str,
                 out: str | os.PathLike[str], *, depth: int = 8, grow: float = 0.0,
                 feather: float = 0.0, invert: bool = False, soft: bool = False,
                 overwrite: bool = False) -> Steps[None]:
    """Write a mask track as a matte: a folder gets a grayscale PNG sequence (8 or 16 bits), a
    ``.mov`` ProRes 4444 whose picture and alpha both carry the matte (luma or alpha matte).
    ``soft`` softens the edge along the footage (``feather`` is then the filter's radius)."""
    from kinema.media.writer import VideoWriter

    folder = store.project_path(project_path)
    project = store.load(folder)
    ref, track = open_track(project, folder, track_id)
    refuse_inputs(project, folder, out)
    target = Path(out)
    if depth not in (8, 16):
        raise InvalidArgumentError(f"matte depth must be 8 or 16, got {depth}")
    if target.suffix and target.suffix.lower() != ".mov":
        raise InvalidArgumentError("mattes are written as a PNG folder or a .mov", path=target,
                                   hint="give a folder path, or a name ending in .mov")
    with contextlib.ExitStack() as stack:
        guides = None
        if soft:
            from kinema.media import open_video

            reader = stack.enter_context(open_video(track_footage(project, folder, ref)))
            guides = iter(reader.frames(0, ref.frames))
        mattes = _mattes(track, grow, feather, invert, guides)
        if not target.suffix:
            yield from _png_sequence(target, mattes, ref.frames, depth, overwrite)
            return
        with VideoWriter(target, project.media[ref.media_id].rate, (ref.width, ref.height),
                         codec="prores4444", alpha=True, overwrite=overwrite) as writer:
            for i, matte in enumerate(mattes):
                level = np.round(matte * 255).astype(np.uint8)
                writer.write(np.repeat(level[..., None], 4, axis=2))
                yield Progress(i + 1, ref.frames)


def _png_sequence(target: Path, mattes: Iterator[np.ndarray], total: int, depth: int,
                  overwrite: bool) -> Steps[None]:
    from kinema.media.image import encode_png
    from kinema.media.writer import SEQUENCE_NAME

    atomic.check_can_write(target, overwrite, folder=True)
    if not target.parent.is_dir():
        raise InvalidArgumentError("output folder's parent does not exist", path=target.parent)
    temp = atomic.temp_path_for(target)
    scale, dtype = (255, np.uint8) if depth == 8 else (65535, np.uint16)
    with atomic.naming_errors(target):
        try:
            temp.mkdir()
            for i, matte in enumerate(mattes):
                image = np.round(matte * scale).astype(dtype)
                (temp / f"{SEQUENCE_NAME.format(i)}.png").write_bytes(encode_png(image))
                yield Progress(i + 1, total)
            atomic.commit_frames(temp, target, overwrite)
        except BaseException:
            atomic.discard(temp)
            raise


def export_cutout(project_path: str | os.PathLike[str], track_id: str,
                  out: str | os.PathLike[str], *, codec: str | None = None, grow: float = 0.0,
                  feather: float = 0.0, soft: bool = False,
                  overwrite: bool = False) -> Steps[None]:
    """Write the track's footage with the matte as alpha (straight), transparent elsewhere:
    ProRes 4444 ``.mov``, VP9 ``.webm``, or a PNG/EXR sequence folder. ``soft`` softens the
    edge along the picture (hair, motion blur)."""
    from kinema.media import open_video
    from kinema.media.writer import VideoWriter

    folder = store.project_path(project_path)
    project = store.load(folder)
    ref, track = open_track(project, folder, track_id)
    refuse_inputs(project, folder, out)
    footage = track_footage(project, folder, ref)
    with open_video(footage) as reader, open_video(footage) as guide:
        check_footage_size(ref, reader.size, footage)
        count = min(ref.frames, len(reader))
        guides = iter(guide.frames(0, count)) if soft else None
        with VideoWriter(out, reader.fps, reader.size, codec=codec, alpha=True,
                         overwrite=overwrite) as writer:
            for i, (matte, rgb) in enumerate(zip(_mattes(track, grow, feather, False, guides),
                                                 reader.frames(0, count), strict=False)):
                alpha = np.round(matte * 255).astype(np.uint8)
                rgba = np.dstack([np.where(alpha[..., None] > 0, rgb, 0), alpha])
                writer.write(rgba)
                yield Progress(i + 1, count)


def export_preview(project_path: str | os.PathLike[str], track_ids: list[str] | None,
                   out: str | os.PathLike[str], *, overwrite: bool = False) -> Steps[None]:
    """The footage of the tracks' media with each track's mask tinted in its colour and
    outlined (H.264 ``.mp4``): a quick look at how well the masks hold."""
    import cv2

    from kinema.media import open_video
    from kinema.media.writer import VideoWriter

    folder = store.project_path(project_path)
    project = store.load(folder)
    ids = track_ids or list(project.mask_tracks)
    if not ids:
        raise InvalidArgumentError("the project has no mask tracks yet", path=folder,
                                   hint="make one with kinema track VIDEO ... --project")
    tracks = [open_track(project, folder, track_id) for track_id in ids]
    refuse_inputs(project, folder, out)
    media_ids = {ref.media_id for ref, _ in tracks}
    if len(media_ids) != 1:
        raise InvalidArgumentError("the tracks are on different footage", path=folder,
                                   hint="preview the tracks of one clip at a time")
    paths, missing = media_paths(project, folder)
    (media_id,) = media_ids
    if media_id in missing:
        raise MediaOpenError(f"footage is missing: {project.media[media_id].path}", path=folder,
                             hint="relink it (kinema relink) or put the file back")
    with open_video(paths[media_id]) as reader:
        count = min(len(reader), min(ref.frames for ref, _ in tracks))
        size = reader.size
        even = (size[0] - size[0] % 2, size[1] - size[1] % 2)  # H.264 wants even sizes
        with VideoWriter(out, reader.fps, even, codec="h264", overwrite=overwrite) as writer:
            for i, frame in enumerate(reader.frames(0, count)):
                shown = frame.copy()
                for ref, masks in tracks:
                    mask = masks.read(i)
                    if mask is None or not mask.any():
                        continue
                    colour = np.array(ref.color, np.float32)
                    shown[mask] = (shown[mask] * 0.55 + colour * 0.45).astype(np.uint8)
                    edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT,
                                            np.ones((3, 3), np.uint8)).astype(bool)
                    shown[edge] = ref.color
                writer.write(np.ascontiguousarray(shown[:even[1], :even[0]]))
                yield Progress(i + 1, count)
