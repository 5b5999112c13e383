"""The delivery and compositing codecs kinema writes, and how each is set up in FFmpeg."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kinema.core.errors import InvalidArgumentError


@dataclass(frozen=True)
class CodecSpec:
    """How to write one codec: encoder, pixel formats with and without alpha, containers."""

    name: str
    encoder: str
    pix_fmt: str
    alpha_pix_fmt: str | None
    containers: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    audio_encoder: str = "aac"
    description: str = ""
    even_size: bool = False
    image_sequence: bool = False


CODECS: dict[str, CodecSpec] = {
    spec.name: spec
    for spec in [
        CodecSpec("h264", "libx264", "yuv420p", None, (".mp4", ".mov", ".mkv"),
                  {"crf": "18", "preset": "medium", "movflags": "+faststart"},
                  description="H.264 for delivery: plays everywhere", even_size=True),
        CodecSpec("h265", "libx265", "yuv420p", None, (".mp4", ".mov", ".mkv"),
                  {"crf": "20", "preset": "medium", "x265-params": "log-level=error"},
                  description="H.265/HEVC for delivery: smaller files", even_size=True),
        CodecSpec("prores4444", "prores_ks", "yuv444p10le", "yuva444p10le", (".mov",),
                  {"profile": "4", "vendor": "apl0", "qscale": "4"},
                  description="ProRes 4444 with alpha for After Effects, Resolve, Premiere"),
        CodecSpec("prores", "prores_ks", "yuv422p10le", None, (".mov",),
                  {"profile": "3", "vendor": "apl0"}, description="ProRes 422 HQ for editing",
                  even_size=True),
        CodecSpec("vp9", "libvpx-vp9", "yuv420p", "yuva420p", (".webm", ".mkv"),
                  {"crf": "24", "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"},
                  audio_encoder="libopus", description="VP9 with alpha for the web"),
        CodecSpec("png", "png", "rgb24", "rgba", ("",), image_sequence=True,
                  description="PNG sequence (8-bit RGB or RGBA), one file per frame"),
        CodecSpec("exr", "exr", "gbrpf32le", "gbrapf32le", ("",), image_sequence=True,
                  description="OpenEXR sequence (32-bit float, linear), one file per frame"),
    ]
}


def codec_for(path: Path, codec: str | None, alpha: bool) -> CodecSpec:
    """The codec to write ``path`` with: ``codec`` if given, else the extension's default."""
    suffix = path.suffix.lower()
    if codec is None:
        defaults = {".mp4": "h264", ".mkv": "h264", ".webm": "vp9", "": "png",
                    ".mov": "prores4444" if alpha else "h264"}
        codec = defaults.get(suffix)
        if codec is None:
            raise InvalidArgumentError(
                f"no default codec for '{suffix}' files", path=path,
                hint="use .mp4, .mov, .webm, .mkv, or a folder for an image sequence")
    spec = CODECS.get(codec.lower())
    if spec is None:
        raise InvalidArgumentError(f"unknown codec {codec!r}",
                                   hint=f"choose one of: {', '.join(CODECS)}")
    if alpha and spec.alpha_pix_fmt is None:
        raise InvalidArgumentError(f"{spec.name} cannot carry alpha", path=path,
                                   hint="use prores4444 (.mov), vp9 (.webm), png or exr")
    if spec.image_sequence:
        if suffix:
            raise InvalidArgumentError(f"{spec.name} sequences are written into a folder",
                                       path=path, hint="give a folder path without extension")
    elif suffix not in spec.containers:
        raise InvalidArgumentError(f"{spec.name} cannot be written into '{suffix or 'no extension'}'",
                                   path=path, hint=f"use {' or '.join(spec.containers)}")
    return spec
