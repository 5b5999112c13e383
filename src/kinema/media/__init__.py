"""Media: frame-accurate reading, atomic writing, proxies, probing and audio (PyAV).

``open_video`` lives here, above both ``reader`` and ``proxy``: a proxy is built by reading its
source, so the reader itself never imports the proxy module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kinema.media.audio import audio_peaks
    from kinema.media.probe import MediaInfo, probe
    from kinema.media.proxy import build_proxy, ensure_proxy
    from kinema.media.reader import VideoReader
    from kinema.media.writer import VideoWriter

_LAZY = {
    "VideoReader": "kinema.media.reader",
    "VideoWriter": "kinema.media.writer",
    "audio_peaks": "kinema.media.audio",
    "probe": "kinema.media.probe",
    "MediaInfo": "kinema.media.probe",
    "build_proxy": "kinema.media.proxy",
    "ensure_proxy": "kinema.media.proxy",
}

__all__ = [
    "MediaInfo",
    "VideoReader",
    "VideoWriter",
    "audio_peaks",
    "build_proxy",
    "ensure_proxy",
    "open_video",
    "probe",
]


def open_video(path: str | os.PathLike[str], proxy: bool = False, **options: object) -> VideoReader:
    """Open a video for frame-accurate reading.

    With ``proxy=True`` frames come from the small all-intra proxy (built if missing or stale),
    with the source's indices and timestamps; ``size`` is then the proxy's.
    """
    from kinema.media.reader import VideoReader

    if proxy:
        from kinema.media.proxy import ensure_proxy

        return VideoReader(path, decode_path=ensure_proxy(path), **options)  # type: ignore[arg-type]
    return VideoReader(path, **options)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kinema.media' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
