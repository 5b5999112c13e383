"""A forward decoder over one stream that can jump to a keyframe; the reader's only way to decode."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.media.container import open_input, video_stream
from kinema.media.index import FrameIndex

if TYPE_CHECKING:
    import av

log = logging.getLogger("kinema.media")


class Decoder:
    """Decodes frames in presentation order from a keyframe on, tagging each with its index.

    ``last`` is the index of the last frame produced (``-1`` before any), so a caller can tell
    whether continuing forward is cheaper than seeking. A ``draft`` decoder skips the
    deblocking (loop) filter: about a tenth less work for H.264, pictures a little blockier,
    fine for analysis but never for display or export.
    """

    def __init__(self, path: Path, index: FrameIndex, *, hwaccel: object | None = None,
                 draft: bool = False) -> None:
        self.path = path
        self.index = index
        kwargs = {"hwaccel": hwaccel} if hwaccel is not None else {}
        self.container = open_input(path, **kwargs)
        self.stream = video_stream(self.container, path)
        self.stream.thread_type = "AUTO"
        self._ctx = alpha_decoder(self.stream)
        if draft:  # read when the codec opens, at the first packet
            (self._ctx or self.stream.codec_context).options = {"skip_loop_filter": "all"}
        self.last = -1
        self.skip_before: int | None = None
        """Frames before this index may be left undecoded when no other frame needs them."""
        self._skipping = False
        self._frames: Iterator[tuple[int, av.VideoFrame]] | None = None

    def seek(self, frame_index: int) -> None:
        """Position the demuxer at the keyframe ``frame_index`` (or before it)."""
        pts = int(self.index.pts[frame_index])
        if frame_index == 0:
            self.container.seek(0, backward=True, stream=self.stream, any_frame=False)
        else:
            self.container.seek(pts, backward=True, stream=self.stream)
        if self._ctx is not None:
            self._ctx.flush_buffers()
        self.skip_before = None
        self.last = frame_index - 1
        self._frames = self._decode()

    def next(self) -> tuple[int, av.VideoFrame] | None:
        """The next decoded frame as ``(index, frame)``, or ``None`` at the end of the stream."""
        if self._frames is None:
            self.seek(0)
        assert self._frames is not None
        item = next(self._frames, None)
        if item is not None:
            self.last = item[0]
        else:
            self.last = len(self.index)
        return item

    def _decode(self) -> Iterator[tuple[int, av.VideoFrame]]:
        import av

        for packet in self.container.demux(self.stream):
            self._set_skipping(packet.pts)
            try:
                if self._ctx is None:
                    frames = packet.decode()
                else:
                    frames = self._ctx.decode(packet if packet.size else None)
            except av.error.FFmpegError as exc:
                # A corrupt packet: skip it. Its frame goes missing; the reader reports it.
                log.debug("%s: decode error at pts %s: %s", self.path, packet.pts, exc)
                continue
            for frame in frames:
                i = self.index.index_of_pts(frame.pts)
                if i is not None:
                    yield i, frame

    def _set_skipping(self, pts: int | None) -> None:
        """Skip non-reference frames (nothing is predicted from them) before ``skip_before``:
        every frame that is decoded comes out bit for bit the same."""
        i = self.index.index_of_pts(pts)
        skip = self.skip_before is not None and i is not None and i < self.skip_before
        if skip != self._skipping:
            (self._ctx or self.stream.codec_context).skip_frame = "NONREF" if skip else "DEFAULT"
            self._skipping = skip

    def close(self) -> None:
        self._frames = None
        self.container.close()


def alpha_decoder(stream: av.video.stream.VideoStream) -> av.CodecContext | None:
    """libvpx's VP9 decoder for VP9 with alpha: FFmpeg's native one drops the alpha plane."""
    import av

    meta = {k.lower(): v for k, v in stream.metadata.items()}
    if stream.codec_context.name == "vp9" and meta.get("alpha_mode") == "1":
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        ctx.thread_type = "AUTO"
        return ctx
    return None


def has_alpha(pix_fmt: str) -> bool:
    """Whether a pixel format carries an alpha channel."""
    return pix_fmt.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya")) or pix_fmt == "pal8"
