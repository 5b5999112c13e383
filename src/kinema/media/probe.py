"""What is in a media file: container, video (exact frame count), audio."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kinema.media.container import open_input


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    profile: str | None
    pix_fmt: str | None
    bit_depth: int | None
    width: int
    height: int
    rotation: int
    fps: str
    frames: int
    duration: float
    start_time: float
    vfr: bool
    has_alpha: bool
    keyframes: int
    truncated: bool
    bad_frames: int


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float | None


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format: str
    size_bytes: int
    duration: float | None
    bit_rate: int | None
    video: VideoInfo | None
    audio: list[AudioInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Inspect ``path``; the frame count is exact (every packet is indexed, none decoded but one)."""
    import av

    from kinema.media.reader import VideoReader

    p = Path(path)
    container = open_input(p)
    try:
        audio = [
            AudioInfo(codec=s.codec_context.name, sample_rate=s.codec_context.sample_rate,
                      channels=s.codec_context.channels, layout=s.codec_context.layout.name,
                      duration=float(s.duration * s.time_base) if s.duration and s.time_base else None)
            for s in container.streams.audio
        ]
        has_video = any(not (s.disposition & av.stream.Disposition.attached_pic)
                        for s in container.streams.video)
        fmt = container.format.name
        duration = container.duration / av.time_base if container.duration else None
        bit_rate = container.bit_rate or None
        profile = container.streams.video[0].profile if has_video else None
    finally:
        container.close()
    video = None
    if has_video:
        with VideoReader(p, prefetch=False, cache_bytes=64 * 2**20, hwaccel="none") as r:
            fmt_bits = _bit_depth(r.pix_fmt)
            video = VideoInfo(codec=r.codec, profile=profile, pix_fmt=r.pix_fmt, bit_depth=fmt_bits,
                              width=r.size[0], height=r.size[1], rotation=r.rotation,
                              fps=str(r.fps), frames=len(r), duration=float(r.duration),
                              start_time=float(r.start_time), vfr=r.is_vfr, has_alpha=r.has_alpha,
                              keyframes=len(r.keyframes), truncated=r.truncated,
                              bad_frames=len(r.bad_frames))
    return MediaInfo(path=str(p), format=fmt, size_bytes=p.stat().st_size, duration=duration,
                     bit_rate=bit_rate, video=video, audio=audio)


def _bit_depth(pix_fmt: str | None) -> int | None:
    if not pix_fmt:
        return None
    import av

    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:  # hardware or exotic formats have no component table
        return None
