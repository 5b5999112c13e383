"""Media: frame-accurate reading, atomic writing, proxies, probing and audio (PyAV)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kinema.media.audio import audio_peaks
    from kinema.media.probe import MediaInfo, probe
    from kinema.media.proxy import build_proxy, ensure_proxy
    from kinema.media.reader import VideoReader, open_video
    from kinema.media.writer import VideoWriter

_LAZY = {
    "open_video": "kinema.media.reader",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kinema.media' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
