"""EbSynth interchange: a shot's frames, keys and an object's masks out as the folders the
EbSynth app reads, and numbered frames made elsewhere (EbSynth's output, any image sequence)
back into a project as a layer.

EbSynth's own project file (``.ebs``) is a binary format with no published description; it
is not written (the app is pointed at the three folders instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from itertools import count, pairwise
from pathlib import Path

import numpy as np

from kinema.app.export_jobs import check_footage_size, find_track, refuse_inputs, track_footage
from kinema.app.style_keys import read_key
from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaOpenError, OutputExistsError
from kinema.core.jobs import Progress, Steps
from kinema.document import store
from kinema.document.model import Project

EBSYNTH_NAME = "{:05d}.png"
"""EbSynth's frame names: the frame number, five digits (``video/00024.png``)."""
FOLDERS = ("video", "keys", "mask")
IMPORTS = "imports"
"""The folder of a project that imported frames go to (as ProRes 4444 movies)."""

_NUMBERED = re.compile(r"^(.*?)(\d+)\.(png|jpe?g|tiff?|bmp|webp)$", re.IGNORECASE)


@dataclass(frozen=True)
class EbsynthExport:
    """What :func:`export_ebsynth` wrote: the folder, frames ``[start, end)`` and the keys."""

    output: Path
    start: int
    end: int
    keys: tuple[int, ...]


def export_ebsynth(project_path: str | os.PathLike[str], track: str,
                   keys: Mapping[int, str | os.PathLike[str]], out: str | os.PathLike[str], *,
                   start: int = 0, end: int | None = None,
                   overwrite: bool = False) -> Steps[EbsynthExport]:
    """Frames ``[start, end)`` of mask track ``track``'s footage into ``out/video``, the track's
    masks (white object on black, 8-bit gray) into ``out/mask`` and ``keys`` (images by source
    frame) into ``out/keys``, all named ``{frame:05d}.png`` by source frame. PNG keys are
    copied byte for byte; other images are written as PNG. Everything is checked before a
    frame is written, and ``out`` appears whole or not at all."""
    from kinema.core.frames import frame_range
    from kinema.document.masktrack import MaskTrackStore
    from kinema.media import open_video
    from kinema.media.image import encode_png

    folder = store.project_path(project_path)
    project = store.load(folder)
    ref = find_track(project, folder, track)
    refuse_inputs(project, folder, out)
    target = atomic.output_path(out)
    if target.suffix:
        raise InvalidArgumentError("an EbSynth export is a folder", path=target,
                                   hint="give a folder path without an extension")
    if not keys:
        raise InvalidArgumentError("no keys given", hint="give --keys KEYS/ or --keys FRAME=IMAGE")
    _check_tree_target(target, overwrite)
    if not target.parent.is_dir():
        raise InvalidArgumentError("output folder's parent does not exist", path=target.parent)
    masks = MaskTrackStore(folder / "masks" / ref.id, ref.frames, ref.width, ref.height)
    footage = track_footage(project, folder, ref)
    with open_video(footage) as reader:
        check_footage_size(ref, reader.size, footage)
        clip = min(ref.frames, len(reader))
        start, end = frame_range(clip, start, end, path=footage)
        checked = _check_keys(keys, reader.size, clip, start, end, footage)
        temp = atomic.temp_path_for(target)
        total = end - start
        with atomic.naming_errors(target):
            try:
                temp.mkdir()
                for name in FOLDERS:
                    (temp / name).mkdir()
                for frame, (path, image) in checked.items():
                    dest = temp / "keys" / EBSYNTH_NAME.format(frame)
                    if image is None:
                        shutil.copyfile(path, dest)
                    else:
                        dest.write_bytes(encode_png(image))
                empty = np.zeros((ref.height, ref.width), bool)
                for i, rgb in enumerate(reader.frames(start, end)):
                    frame = start + i
                    name = EBSYNTH_NAME.format(frame)
                    (temp / "video" / name).write_bytes(encode_png(rgb))
                    mask = masks.read(frame)
                    mask = empty if mask is None else mask
                    (temp / "mask" / name).write_bytes(
                        encode_png(np.where(mask, np.uint8(255), np.uint8(0))))
                    yield Progress(i + 1, total)
                _commit_tree(temp, target, overwrite)
            except BaseException:
                atomic.discard(temp)
                raise
    return EbsynthExport(target, start, end, tuple(sorted(checked)))


def _check_keys(keys: Mapping[int, str | os.PathLike[str]], size: tuple[int, int], frames: int,
                start: int, end: int, footage: Path) -> dict[int, tuple[Path, np.ndarray | None]]:
    """Each key checked (:func:`~kinema.app.style_keys.read_key`): its path, and its pixels
    when it is not a PNG to copy as it is."""
    checked: dict[int, tuple[Path, np.ndarray | None]] = {}
    for frame, given in sorted(keys.items()):
        image = read_key(frame, given, size=size, frames=frames, start=start, end=end, footage=footage)
        checked[frame] = (Path(given), None if Path(given).suffix.lower() == ".png" else image)
    return checked


def _check_tree_target(target: Path, overwrite: bool) -> None:
    """Refuse an existing output without ``overwrite``, and with it one holding files kinema
    did not write (they would be lost)."""
    atomic.check_can_write(target, overwrite, folder=True)
    if target.is_dir():
        foreign = sorted(set(os.listdir(target)) - set(atomic.read_manifest(target)))
        if foreign:
            raise OutputExistsError(
                f"holds {len(foreign)} file(s) kinema did not write, e.g. {foreign[0]}",
                path=target, hint="choose an empty or new folder")


def _commit_tree(temp: Path, target: Path, overwrite: bool) -> None:
    """Put the finished folder ``temp`` (with subfolders) at ``target``: one rename onto a
    new or empty folder; over an earlier export of kinema's (``overwrite``) the old folder is
    renamed aside first and deleted after."""
    for name in FOLDERS:
        atomic.fsync_path(temp / name)
    _check_tree_target(target, overwrite)
    old = None
    if target.is_dir() and any(target.iterdir()):
        old = atomic.temp_path_for(target)
        os.replace(target, old)
    try:
        os.replace(temp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    data = json.dumps({"written_by": "kinema", "files": list(FOLDERS)}, indent=1).encode()
    atomic.atomic_write_bytes(atomic.manifest_path(target), data)
    if old is not None:
        atomic.discard(old)


# -- import ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedFrames:
    """What :func:`import_frames` did: the movie made in the project, its media id, the new
    layer's id, and the timeline frames ``[start, start + frames)`` it covers."""

    movie: Path
    media_id: str
    layer_id: str
    start: int
    frames: int


def numbered_images(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The numbered images in ``folder`` (``00012.png``, ``frame_000012.png``...), in order:
    one sequence (one prefix and extension), numbers without gaps."""
    path = Path(folder)
    if not path.is_dir():
        raise MediaOpenError("frames folder not found", path=path,
                             hint="give a folder of numbered images (00012.png, ...)")
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for entry in path.iterdir():
        m = _NUMBERED.match(entry.name)
        if m and entry.is_file() and not entry.name.startswith("."):
            groups.setdefault((m.group(1), m.group(3).lower()), []).append((int(m.group(2)), entry))
    if not groups:
        raise InvalidArgumentError("holds no numbered images (00012.png, ...)", path=path,
                                   hint="give the folder EbSynth (or another tool) wrote the frames to")
    if len(groups) > 1:
        names = ", ".join(f"{p}#.{e}" for p, e in sorted(groups))
        raise InvalidArgumentError(f"holds more than one image sequence: {names}", path=path,
                                   hint="put one sequence in a folder of its own")
    (frames,) = groups.values()
    frames.sort()
    numbers = [n for n, _ in frames]
    if len(set(numbers)) != len(numbers):
        raise InvalidArgumentError("two images have the same number", path=path,
                                   hint="name each frame once")
    gaps = [a + 1 for a, b in pairwise(numbers) if b != a + 1]
    if gaps:
        raise InvalidArgumentError(f"the sequence has gaps: frame {gaps[0]} is missing", path=path,
                                   hint="give a complete run of numbered frames")
    return frames


def _placement(project: Project, folder: Path, first: int, count_: int, at: int | None,
               track: str | None) -> int:
    """The timeline frame where image number ``first`` goes: ``at``; with ``track``, where the
    timeline shows that frame of the track's footage; else the number itself."""
    from kinema.document.model import ClipItem

    tl = project.timeline
    if at is not None:
        start = at
    elif track is not None:
        ref = find_track(project, folder, track)
        start = None
        for layer in tl.video_layers:
            for item in layer.items:
                if not isinstance(item, ClipItem) or item.media_id != ref.media_id:
                    continue
                rng = item.source_range
                s0, length = rng.start_time.seconds * tl.rate, rng.duration.seconds * tl.rate
                same_rate = Fraction(project.media[ref.media_id].rate) == Fraction(tl.rate)
                if same_rate and s0 <= first and first + count_ <= s0 + length:
                    start = item.start + int(first - s0)
                    break
            if start is not None:
                break
        if start is None:
            raise InvalidArgumentError(
                f"no clip of track {ref.name!r}'s footage shows its frames {first}-"
                f"{first + count_ - 1} at the timeline's rate", path=folder,
                hint="place the frames with --at TIMELINE_FRAME")
    else:
        start = first
    if start < 0 or start + count_ > tl.duration:
        raise InvalidArgumentError(
            f"the {count_} frames would cover timeline frames {start}-{start + count_ - 1}, "
            f"outside the timeline's 0-{tl.duration - 1}", path=folder,
            hint="place them with --at TIMELINE_FRAME")
    return start


def import_frames(frames_folder: str | os.PathLike[str], project_path: str | os.PathLike[str], *,
                  at: int | None = None, track: str | None = None,
                  name: str | None = None) -> Steps[ImportedFrames]:
    """The numbered images in ``frames_folder`` as a new top layer of ``project``: written into
    ``PROJECT/imports/NAME.mov`` (ProRes 4444 at the timeline's rate, with alpha when the
    images have it), that movie added to the media pool and placed as one clip. Image number N
    goes to timeline frame N, or (``track``) where the timeline shows frame N of the track's
    footage, or the first image to ``at``."""
    from kinema.app.operation_records import pool_ref
    from kinema.document import edits
    from kinema.document.model import ClipItem, VideoLayer
    from kinema.document.timing import TimeRange
    from kinema.media.image import read_image

    folder = store.project_path(project_path)
    store.check_writable(folder)
    project = store.load(folder)
    images = numbered_images(frames_folder)
    total = len(images)
    start = _placement(project, folder, images[0][0], total, at, track)
    first = read_image(images[0][1])
    if first.dtype != np.uint8 or first.ndim != 3:
        raise InvalidArgumentError(f"is a {first.dtype} image; 8-bit RGB or RGBA is imported",
                                   path=images[0][1], hint="save the frames as 8-bit PNGs")
    size = (first.shape[1], first.shape[0])
    alpha = first.shape[2] == 4
    stem = re.sub(r"[^\w.-]+", "-", name or Path(os.path.abspath(frames_folder)).name).strip("-.")
    stem = stem or "frames"
    made_imports = not (folder / IMPORTS).exists()
    (folder / IMPORTS).mkdir(exist_ok=True)
    movie = next(p for k in count(1) if not (p := folder / IMPORTS /
                                             (f"{stem}.mov" if k == 1 else f"{stem}-{k}.mov")).exists())
    rate = project.timeline.rate
    try:
        yield from _write_movie(movie, rate, size, alpha, images, first)
    except BaseException:
        if made_imports:
            with contextlib.suppress(OSError):
                (folder / IMPORTS).rmdir()
        raise
    try:
        with store.ProjectFile(folder) as pf:
            ref = pool_ref(pf.project, folder, movie)
            taken = {layer.id for layer in pf.project.timeline.video_layers}
            layer_id = next(f"l{k}" for k in count(1) if f"l{k}" not in taken)
            tl = pf.project.timeline
            items = {i.id for layer in [*tl.video_layers, *tl.audio_tracks] for i in layer.items}
            item_id = next(f"c{k}" for k in count(1) if f"c{k}" not in items)
            layer = VideoLayer(id=layer_id, name=f"frames {stem}", items=[
                ClipItem(id=item_id, media_id=ref.id, start=start,
                         source_range=TimeRange.from_frames(0, total, rate))])
            steps = [edits.add_media(ref), edits.add_layer(layer)]

            def apply(doc: Project) -> None:
                for step in steps:
                    step.apply(doc)

            pf.history.do(edits.Edit(f"Import frames {stem}", apply))
            pf.save()
    except BaseException:
        movie.unlink(missing_ok=True)
        raise
    return ImportedFrames(movie, ref.id, layer_id, start, total)


def _write_movie(movie: Path, rate: Fraction, size: tuple[int, int], alpha: bool,
                 images: list[tuple[int, Path]], first: np.ndarray) -> Steps[None]:
    """The images, one size, 8-bit, as a ProRes 4444 movie (with alpha when ``alpha``)."""
    from kinema.media.image import read_image
    from kinema.media.writer import VideoWriter

    with VideoWriter(movie, rate, size, codec="prores4444", alpha=alpha) as writer:
        for i, (_, path) in enumerate(images):
            image = first if i == 0 else read_image(path)
            if image.dtype != np.uint8 or image.ndim != 3 or (image.shape[1], image.shape[0]) != size:
                raise InvalidArgumentError(
                    f"is {image.shape[1]}x{image.shape[0]} {image.dtype}, unlike the first frame "
                    f"({size[0]}x{size[1]} uint8)", path=path, hint="give frames of one size")
            if image.shape[2] != first.shape[2]:
                image = image[..., :3] if not alpha else np.dstack(
                    [image, np.full(image.shape[:2], 255, np.uint8)])
            writer.write(image)
            yield Progress(i + 1, len(images))
