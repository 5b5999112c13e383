"""Open media files with PyAV and turn FFmpeg's failures into one-line kinema errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.core.errors import CorruptMediaError, MediaOpenError, UnsupportedMediaError

if TYPE_CHECKING:
    import av.container
    import av.stream
    import av.video.stream

# Larger than 16K on a side or 8K x 8K in area is a damaged header, not footage.
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192


def check_input_path(path: str | os.PathLike[str]) -> Path:
    """Fail with :class:`MediaOpenError` unless ``path`` is an existing, readable, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise MediaOpenError("no such file", path=p, hint="check the path and spelling")
    if p.is_dir():
        raise MediaOpenError("is a directory, not a media file", path=p,
                             hint="pass a video file inside it")
    if not os.access(p, os.R_OK):
        raise MediaOpenError("permission denied", path=p, hint="make the file readable")
    if p.stat().st_size == 0:
        raise CorruptMediaError("file is empty (0 bytes)", path=p,
                                hint="re-copy or re-export it")
    return p


def open_input(path: str | os.PathLike[str], **kwargs: object) -> av.container.InputContainer:
    """Open ``path`` for reading; any FFmpeg failure becomes a kinema media error."""
    import av

    p = check_input_path(path)
    try:
        return av.open(str(p), mode="r", **kwargs)
    except av.error.InvalidDataError as exc:
        raise UnsupportedMediaError(
            "not a media file FFmpeg can read (unknown format or damaged header)", path=p,
            hint="check it is a video file; if it was copied or downloaded it may be incomplete",
        ) from exc
    except av.error.EOFError as exc:
        raise CorruptMediaError("ends before any media data (truncated or empty)", path=p,
                                hint="re-export it or copy it again") from exc
    except av.error.FFmpegError as exc:
        raise CorruptMediaError(f"cannot be opened: {_ffmpeg_reason(exc)}", path=p,
                                hint="re-export it or try another copy") from exc


def video_stream(container: av.container.InputContainer, path: str | os.PathLike[str]
                 ) -> av.video.stream.VideoStream:
    """The first real video stream (cover art is skipped), checked for a decoder and sane size."""
    import av

    streams = [s for s in container.streams.video
               if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        what = "holds audio only, no video stream" if container.streams.audio else "has no video stream"
        raise UnsupportedMediaError(what, path=path, hint="open a video file instead")
    stream = streams[0]
    ctx = stream.codec_context
    if ctx is None or stream.codec is None or not stream.codec.is_decoder:
        raise UnsupportedMediaError(
            f"video codec '{stream.codec_context.name if ctx else '?'}' has no decoder in this FFmpeg",
            path=path, hint="transcode it with a tool that reads it, e.g. to H.264")
    w, h = ctx.width, ctx.height
    if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise UnsupportedMediaError(
            f"implausible frame size {w}x{h} (max {MAX_SIDE} per side)", path=path,
            hint="the header is probably damaged; re-export the file")
    return stream


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() or type(exc).__name__


def has_audio(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a sound stream."""
    container = open_input(path)
    try:
        return bool(container.streams.audio)
    finally:
        container.close()
