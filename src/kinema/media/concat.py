"""Join rendered parts into one output without re-encoding the picture.

Chunked renders write each run of frames as its own file with the same codec and settings;
joining copies their packets one after another (timestamps shifted by the frames before), so a
render resumed after a crash yields the same file as one that never stopped. Audio for the whole
output is encoded while joining.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError, MediaWriteError
from kinema.media.audio import SamplesMux
from kinema.media.container import open_input

FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def part_suffix(target: Path, codec: str) -> str:
    """The container for a part of ``target``: Matroska drops decode timestamps of B-frame
    streams when read back, so H.264/H.265 parts of a Matroska output are written as MP4."""
    suffix = target.suffix.lower()
    return ".mp4" if suffix == ".mkv" and codec in ("h264", "h265") else suffix


def join_movies(parts: Sequence[Path], target: str | os.PathLike[str], fps: Fraction, *,
                audio_samples: np.ndarray | None = None, audio_rate: int = 48000,
                audio_encoder: str = "aac", metadata: dict[str, str] | None = None,
                overwrite: bool = False) -> Path:
    """Copy the video packets of ``parts`` (in order) into ``target``, with optional audio."""
    import av

    out_path = Path(target)
    if not parts:
        raise InvalidArgumentError("nothing to join", path=out_path)
    atomic.check_can_write(out_path, overwrite)
    temp = atomic.temp_path_for(out_path)
    fmt = FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise InvalidArgumentError(f"cannot join into '{out_path.suffix}' files", path=out_path,
                                   hint=f"use {', '.join(FORMATS)}")
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    try:
        with av.open(str(temp), mode="w", format=fmt, options=options) as output:
            for key, value in (metadata or {}).items():
                output.metadata[key] = value
            first = open_input(parts[0])
            template = first.streams.video[0]
            video = output.add_stream_from_template(template)
            for key, value in template.metadata.items():
                if key.lower() == "alpha_mode":  # VP9 alpha rides in side data; readers look here
                    video.metadata[key] = value
            first.close()
            audio = (SamplesMux(output, audio_samples, audio_rate, audio_encoder)
                     if audio_samples is not None else None)
            frames = 0
            for part in parts:
                frames += _copy_video(part, output, video, frames, fps, audio)
            if audio is not None:
                audio.finish(Fraction(frames) / fps)
        atomic.commit(temp, out_path, overwrite)
    except Exception as exc:
        atomic.discard(temp)
        if isinstance(exc, (InvalidArgumentError, FileExistsError)):
            raise
        raise MediaWriteError(f"could not join the rendered parts: {exc}", path=out_path,
                              hint="check free disk space, then render again with --resume") from exc
    return out_path


def _copy_video(part: Path, output: object, video: object, before: int, fps: Fraction,
                audio: SamplesMux | None) -> int:
    """Mux ``part``'s video packets shifted by ``before`` frames; returns its frame count."""
    container = open_input(part)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        shift = int(round(Fraction(before) / fps / tb))
        count = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is not None:
                packet.pts += shift
            if packet.dts is not None:
                packet.dts += shift
                if audio is not None:
                    audio.mux_until(packet.dts * tb)
            packet.stream = video
            output.mux(packet)  # type: ignore[attr-defined]
            count += 1
    finally:
        container.close()
    return count


def join_sequences(parts: Sequence[Path], target: str | os.PathLike[str], *,
                   overwrite: bool = False) -> Path:
    """Move the frames of image-sequence folders ``parts`` into one folder, numbered on."""
    from kinema.media.writer import SEQUENCE_NAME

    out_path = Path(target)
    atomic.check_can_write(out_path, overwrite, folder=True)
    temp = atomic.temp_path_for(out_path)
    temp.mkdir()
    try:
        n = 0
        for part in parts:
            for frame in sorted(part.iterdir()):
                name = temp / (SEQUENCE_NAME.format(n) + frame.suffix)
                try:
                    os.link(frame, name)  # the parts stay whole until the join has finished
                except OSError:  # file systems without hard links (exFAT, some network shares)
                    shutil.copy2(frame, name)
                n += 1
        atomic.commit_frames(temp, out_path, overwrite)
    except BaseException:
        atomic.discard(temp)
        raise
    return out_path
