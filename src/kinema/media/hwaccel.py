"""Choose hardware decoding (NVDEC through CUDA, VideoToolbox) when it is present; never require it."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("kinema.media")

ENV_VAR = "KINEMA_HWACCEL"
OFF = {"", "none", "off", "0", "no", "false", "software", "cpu"}

# Codecs and pixel formats the common hardware decoders handle; anything else decodes in software.
HW_CODECS = {
    "cuda": {"h264", "hevc", "vp9", "av1", "mpeg2video", "vp8", "mpeg4"},
    "videotoolbox": {"h264", "hevc", "prores", "vp9", "mpeg2video", "mpeg4"},
}
HW_PIX_FMTS = {"yuv420p", "yuvj420p", "nv12", "yuv420p10le", "p010le"}
PLATFORM_ORDER = {"darwin": ("videotoolbox",), "linux": ("cuda",), "win32": ("cuda",)}
MIN_PIXELS = 1280 * 720  # below this, copying frames back from the GPU costs more than it saves


def choose_hwaccel(
    codec: str,
    pix_fmt: str | None,
    width: int,
    height: int,
    *,
    preference: str | None = None,
    platform: str = sys.platform,
    available: Sequence[str] | None = None,
    works: Callable[[str, str], bool] | None = None,
) -> str | None:
    """The hardware device type to decode ``codec`` with, or ``None`` for software.

    ``preference`` (default: ``$KINEMA_HWACCEL``) is ``auto``, ``none`` or a device type.
    ``available`` lists device types compiled into FFmpeg; ``works(device, codec)`` checks a
    device can actually be created on this machine. Both default to asking PyAV.
    """
    pref = (preference if preference is not None else os.environ.get(ENV_VAR, "auto")).strip().lower()
    if pref in OFF:
        return None
    if available is None:
        available = _compiled_devices()
    works = works or _device_works
    if pref != "auto":
        if pref in available and works(pref, codec):
            return pref
        log.warning("hardware decoder %r is not usable here; decoding in software", pref)
        return None
    if width * height < MIN_PIXELS or (pix_fmt or "") not in HW_PIX_FMTS:
        return None
    for device in PLATFORM_ORDER.get(platform, ()):
        if device in available and codec in HW_CODECS.get(device, ()) and works(device, codec):
            return device
    return None


def make_hwaccel(device: str | None) -> object | None:
    """A PyAV ``HWAccel`` for ``device`` that falls back to software, or ``None``."""
    if device is None:
        return None
    from av.codec.hwaccel import HWAccel

    return HWAccel(device_type=device, allow_software_fallback=True)


@functools.cache
def _compiled_devices() -> tuple[str, ...]:
    try:
        from av.codec.hwaccel import hwdevices_available

        return tuple(hwdevices_available())
    except Exception:  # an FFmpeg built without hwaccel support
        return ()


@functools.cache
def _device_works(device: str, codec: str) -> bool:
    try:
        import av
        from av.codec.hwaccel import HWAccel

        HWAccel(device_type=device).create(av.codec.Codec(codec, "r"))
        return True
    except Exception as exc:  # no driver, no GPU, no permission: all mean software
        log.debug("hardware decoder %s unavailable: %s", device, exc)
        return False
