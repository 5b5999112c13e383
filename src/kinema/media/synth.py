"""Synthetic clips with known ground truth: each frame carries its own index in its pixels.

Used by the tests, the benchmarks and bug reports: a frame decoded from any file written
here says which frame it is, so a reader's answer can be checked exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from kinema.core.frames import Frame
from kinema.media.codecs import x264_params

BITS = 16


def _cell(w: int, h: int) -> int:
    return max(6, min(w, h) // 14)


def pattern_frame(i: int, width: int, height: int, *, moving: bool = True) -> Frame:
    """An RGB frame with ``i`` encoded as 16 black/white cells in its top-left corner.

    The rest is a moving gradient with a sliding bar, so encoders predict across frames, and
    a red block in the top-right corner marks which way is up.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    shift = i * 4 if moving else 0
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = ((xx + shift) * 255 // max(1, width)) % 256
    img[..., 1] = ((yy + shift // 2) * 255 // max(1, height)) % 256
    img[..., 2] = 96
    bar = (shift * 3) % max(1, width)
    img[:, bar: bar + max(2, width // 20), :] = (230, 230, 40)
    c = _cell(width, height)
    img[: c * 2, width - c * 2:, :] = (220, 30, 30)
    for b in range(BITS):
        row, col = divmod(b, 4)
        img[row * c:(row + 1) * c, col * c:(col + 1) * c, :] = 255 if (i >> b) & 1 else 0
    return img


def decode_index(frame: np.ndarray) -> int:
    """Read back the index :func:`pattern_frame` encoded (cells are sampled at their centres)."""
    h, w = frame.shape[:2]
    c = _cell(w, h)
    value = 0
    lum = frame[: 4 * c, : 4 * c, :3].astype(np.int32).mean(axis=2)
    for b in range(BITS):
        row, col = divmod(b, 4)
        m = c // 4
        patch = lum[row * c + m:(row + 1) * c - m, col * c + m:(col + 1) * c - m]
        if patch.mean() > 128:
            value |= 1 << b
    return value


def write_clip(
    path: str | os.PathLike[str],
    n: int,
    size: tuple[int, int] = (320, 240),
    fps: Fraction | int = 25,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int = 12,
    bframes: int = 2,
    open_gop: bool = False,
    rotation: int = 0,
    times: Sequence[Fraction] | None = None,
    start: Fraction = Fraction(0),
    time_base: Fraction | None = None,
    audio: np.ndarray | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write an ``n``-frame clip of :func:`pattern_frame` pictures.

    ``size`` is the display size; with ``rotation`` (degrees counter-clockwise, FFmpeg's
    convention) the stored frames are turned the other way and tagged, so a player that
    honours the tag shows the upright pattern. ``times`` gives per-frame seconds (variable
    frame rate); ``start`` offsets the first timestamp; ``audio`` (mono float32 samples at
    48 kHz, see :func:`tone`) adds a soundtrack that starts with the first frame.
    """
    import av

    path = Path(path)
    fps = Fraction(fps)
    w, h = size
    k = round(rotation / 90) % 4
    sw, sh = (h, w) if k % 2 else (w, h)
    out = av.open(str(path), mode="w")
    try:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = sw, sh, pix_fmt
        tb = time_base or (Fraction(1, 1000) if times is not None else 1 / fps)
        stream.codec_context.time_base = tb
        stream.time_base = tb
        opts = {}
        if codec in ("libx264", "libx265"):
            keyint = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
            if codec == "libx264":
                opts = {"preset": "veryfast",
                        "x264-params": x264_params(keyint + (":open-gop=1" if open_gop else ""))}
            else:
                opts = {"preset": "ultrafast", "x265-params": keyint + ":log-level=error"
                        + (":open-gop=1" if open_gop else ":open-gop=0")}
        elif codec in ("libvpx-vp9", "libvpx"):
            opts = {"g": str(gop), "deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
        else:
            opts = {"g": str(gop)}
        stream.options = {**opts, **(options or {})}
        if k:
            stream.set_display_rotation(90 * k)
        audio_stream = None
        if audio is not None:
            audio_stream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        offset = int(round(start / tb))
        for i in range(n):
            img = np.ascontiguousarray(np.rot90(pattern_frame(i, w, h), -k)) if k else pattern_frame(i, w, h)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            frame.pts = offset + (int(round(times[i] / tb)) if times is not None else int(i / fps / tb))
            frame.time_base = tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            _write_audio(out, audio_stream, audio, offset * tb)
    finally:
        out.close()
    return path


AUDIO_RATE = 48000


def tone(hz: float, seconds: float, *, click_at: float | None = None) -> np.ndarray:
    """A sine at half scale (mono, 48 kHz); ``click_at`` puts a full-scale 1 ms click there."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    samples = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    if click_at is not None:
        at = int(click_at * AUDIO_RATE)
        samples[at: at + AUDIO_RATE // 1000] = 1.0
    return samples


def _write_audio(out: object, stream: object, samples: np.ndarray, start: Fraction) -> None:
    import av

    size = 1024
    first = int(start * AUDIO_RATE)
    for pos in range(0, len(samples), size):
        chunk = np.ascontiguousarray(samples[pos:pos + size][None, :].astype(np.float32))
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, first + pos, Fraction(1, AUDIO_RATE)
        out.mux(stream.encode(frame))  # type: ignore[attr-defined]
    out.mux(stream.encode(None))  # type: ignore[attr-defined]
