"""The delivery and compositing codecs kinema writes, and how each is set up in FFmpeg."""

from __future__ import annotations

import functools
import platform
import re
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


X264_CPU_AVX512 = 1 << 16
"""x264's ``X264_CPU_AVX512`` flag (x264.h)."""


def x264_params(params: str | None = None) -> str | None:
    """``x264-params`` for a reproducible libx264 encode: ``params`` with AVX-512 switched off.

    x264's AVX-512 code reads heap memory it never wrote, and what it finds there changes the
    stream (frame costs in the lookahead, so QPs and every frame after). In a process whose
    other threads (decoders, swscale) churn the heap, the same frames then encode to different
    bytes from run to run; ``MALLOC_PERTURB_=7`` against ``=165`` shows it in one process. Its
    AVX2 and older code paths do not, so the detected CPU flags are passed back without
    AVX-512 (``asm=N``). A ``params`` that sets ``asm`` itself is kept as given; where x264's
    flags cannot be read (no x86, library not found) ``params`` is returned unchanged.
    """
    if params and re.search(r"(^|:)asm=", params):
        return params
    flags = _x264_cpu_flags()
    if flags is None or not flags & X264_CPU_AVX512:
        return params
    asm = f"asm={flags & ~X264_CPU_AVX512}"
    return f"{params}:{asm}" if params else asm


@functools.cache
def _x264_cpu_flags() -> int | None:
    """The CPU flags the libx264 that PyAV loaded detects here (``x264_cpu_detect``)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i386", "i686"):
        return None  # AVX-512 is x86 only
    import ctypes

    for path in _x264_library_paths():
        try:
            detect = ctypes.CDLL(path).x264_cpu_detect
        except (OSError, AttributeError):
            continue
        detect.restype = ctypes.c_uint32
        detect.argtypes = []
        return int(detect())
    return None


def _x264_library_paths() -> list[str]:
    """Where the libx264 in use may be: mapped into this process (PyAV's libavcodec links
    it), else bundled beside the ``av`` package (wheels), else the system's."""
    import ctypes.util

    import av  # loads libavcodec, and with it libx264

    found: list[str] = []
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            name = line.split()[-1]
            if "libx264" in Path(name).name and name not in found:
                found.append(name)
    package = Path(av.__file__).parent
    for folder in (package.parent / "av.libs", package / ".dylibs"):
        found += [str(p) for p in sorted(folder.glob("*x264*")) if str(p) not in found]
    system = ctypes.util.find_library("x264")
    if system:
        found.append(system)
    return found
