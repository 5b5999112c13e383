"""Proxies: small all-intra copies (about 540p) that make scrubbing instant on any source.

A proxy keeps the source's frame count and exact timestamps, so frame ``i`` of the proxy is
frame ``i`` of the source. A stamp beside it records the source's size, mtime and a hash of
its head and tail; a proxy whose stamp no longer matches is stale and gets rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

from kinema.core import atomic
from kinema.core.errors import CorruptMediaError
from kinema.core.jobs import Progress, Steps
from kinema.media.codecs import x264_params
from kinema.media.stamp import cache_name, cache_root, source_stamp

log = logging.getLogger("kinema.media")

PROXY_HEIGHT = 540
PROXY_VERSION = 1
BESIDE_DIR = ".kinema-proxies"
PROXY_SUFFIX = ".proxy.mov"


def proxy_path(source: str | os.PathLike[str], *, beside: bool = False) -> Path:
    """Where the proxy of ``source`` lives: beside it in ``.kinema-proxies/`` or in the user cache."""
    src = Path(source).resolve()
    if beside:
        return src.parent / BESIDE_DIR / f"{src.name}{PROXY_SUFFIX}"
    return cache_root("proxies") / cache_name(src, PROXY_SUFFIX)


def _stamp(source: Path) -> dict[str, object]:
    return {"version": PROXY_VERSION, **source_stamp(source)}


def _stamp_path(proxy: Path) -> Path:
    return proxy.with_name(proxy.name + ".json")


def find_proxy(source: str | os.PathLike[str]) -> Path | None:
    """A fresh proxy of ``source`` (beside it first, then the user cache), or ``None``."""
    src = Path(source)
    stamp = None
    for candidate in (proxy_path(src, beside=True), proxy_path(src)):
        if not candidate.is_file() or not _stamp_path(candidate).is_file():
            continue
        try:
            saved = json.loads(_stamp_path(candidate).read_text())
        except (OSError, ValueError):
            continue
        stamp = stamp or _stamp(src)
        if all(saved.get(k) == v for k, v in stamp.items()):
            return candidate
        log.info("%s: proxy %s is stale (source changed)", src, candidate)
    return None


def build_proxy(source: str | os.PathLike[str], *, beside: bool = False,
                height: int = PROXY_HEIGHT) -> Steps[None]:
    """Write the proxy of ``source``, yielding progress in frames; returns when committed.

    Frames are scaled to ``height`` lines (never up), rotation applied, encoded all-intra
    H.264 with the source's exact timestamps.
    """
    import av

    from kinema.media.reader import VideoReader

    src = Path(source)
    target = proxy_path(src, beside=beside)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(src)
    reader = VideoReader(src, prefetch=False, cache_bytes=0)
    temp = atomic.temp_path_for(target)
    try:
        w, h = reader.size
        ph = min(height, h) // 2 * 2 or 2
        pw = max(2, round(ph * w / h / 2) * 2)
        tb = reader.time_base
        total = len(reader)
        out = av.open(str(temp), mode="w", format="mov")
        try:
            stream = out.add_stream("libx264", rate=reader.fps)
            stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
            stream.time_base = tb
            stream.codec_context.time_base = tb
            stream.options = {"preset": "ultrafast", "crf": "20",
                              "x264-params": x264_params("keyint=1:min-keyint=1:scenecut=0:bframes=0")}
            stream.codec_context.colorspace = 1
            stream.codec_context.color_range = 1
            for i, rgb in enumerate(reader.frames(size=(pw, ph))):
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                    format="yuv420p", dst_colorspace=1, dst_color_range=1)
                vf.pts = int((reader.start_time + reader.timestamp(i)) / tb)
                vf.time_base = tb
                out.mux(stream.encode(vf))
                yield Progress(i + 1, total)
            out.mux(stream.encode(None))
        finally:
            out.close()
        atomic.commit(temp, target, overwrite=True)
        atomic.atomic_write_bytes(_stamp_path(target), json.dumps(
            {**stamp, "frames": total, "height": ph,
             "duration": str(Fraction(reader.duration))}, indent=2).encode())
    except BaseException:
        atomic.discard(temp)
        raise
    finally:
        reader.close()


def ensure_proxy(source: str | os.PathLike[str], *, beside: bool = False) -> Path:
    """The path of a fresh proxy of ``source``, building (or rebuilding) it if needed."""
    found = find_proxy(source)
    if found is not None:
        return found
    log.info("%s: building proxy", source)
    for _ in build_proxy(source, beside=beside):
        pass
    built = proxy_path(source, beside=beside)
    if not built.is_file():
        raise CorruptMediaError("proxy could not be built", path=source)
    return built
