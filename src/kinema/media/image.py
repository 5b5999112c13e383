"""Still images (PNG, EXR) through FFmpeg's encoders, so no imaging library is needed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kinema.core.errors import InvalidArgumentError
from kinema.media.container import open_input, video_stream

_PNG_FORMATS = {(np.dtype(np.uint8), 3): "rgb24", (np.dtype(np.uint8), 4): "rgba",
                (np.dtype(np.uint16), 3): "rgb48be", (np.dtype(np.uint16), 4): "rgba64be",
                (np.dtype(np.uint8), 1): "gray", (np.dtype(np.uint16), 1): "gray16be"}


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` ``uint8``/``uint16`` image."""
    import av

    arr = image[..., None] if image.ndim == 2 else image
    fmt = _PNG_FORMATS.get((arr.dtype, arr.shape[-1]))
    if fmt is None:
        raise InvalidArgumentError(
            f"cannot write {arr.dtype} {arr.shape} as PNG (use uint8/uint16 gray, RGB or RGBA)")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr if image.ndim == 3 else arr[..., 0]),
                                       format=fmt)
    return _encode_one("png", frame, fmt)


def encode_palette_png(labels: np.ndarray, palette: np.ndarray) -> bytes:
    """An 8-bit palette PNG whose pixel values are ``labels`` (``uint8 (H, W)``) and whose
    colours are ``palette`` (``(256, 3) uint8`` RGB): the DAVIS annotation format."""
    import av

    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise InvalidArgumentError(f"labels must be uint8 (H, W), got {labels.dtype} {labels.shape}")
    argb = np.zeros((256, 4), np.uint8)
    argb[:, 0] = 255
    argb[:, 1:] = palette[:, :3]
    frame = av.VideoFrame.from_ndarray((np.ascontiguousarray(labels), argb), format="pal8")
    return _encode_one("png", frame, "pal8")


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """A mask image as ``uint8 (H, W)`` labels: a palette PNG's indices (DAVIS), else 1 where
    a grayscale or colour image is brighter than mid-grey (or opaque, when it has alpha)."""
    container = open_input(path)
    try:
        frame = next(container.decode(video_stream(container, path)))
        if frame.format.name == "pal8":
            indices = frame.to_ndarray()
            return np.ascontiguousarray(indices[0] if isinstance(indices, tuple) else indices, np.uint8)
        rgba = frame.to_ndarray(format="rgba")
    finally:
        container.close()
    if frame.format.name in ("rgba", "ya8", "rgba64be", "ya16be") and (rgba[..., 3] < 255).any():
        return (rgba[..., 3] > 127).astype(np.uint8)
    return (rgba[..., :3].mean(axis=2) > 127).astype(np.uint8)


def encode_exr(image: np.ndarray) -> bytes:
    """EXR bytes (32-bit float, zip) of a float32 linear image, or a uint8 sRGB one linearised."""
    import av

    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InvalidArgumentError(f"cannot write {image.shape} as EXR (use RGB or RGBA)")
    data = srgb_to_linear(image) if image.dtype == np.uint8 else image.astype(np.float32)
    if image.dtype == np.uint8 and image.shape[2] == 4:
        data[..., 3] = image[..., 3] / np.float32(255)
    fmt = "gbrapf32le" if image.shape[2] == 4 else "gbrpf32le"
    planes = [data[..., c] for c in ((1, 2, 0, 3) if image.shape[2] == 4 else (1, 2, 0))]
    frame = av.VideoFrame(image.shape[1], image.shape[0], fmt)
    for plane, values in zip(frame.planes, planes, strict=True):
        row = plane.line_size // 4
        buf = np.frombuffer(plane, dtype=np.float32).reshape(-1, row)
        buf[: values.shape[0], : values.shape[1]] = values
    return _encode_one("exr", frame, fmt)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB to float32 linear light (the sRGB transfer function), colour channels only."""
    c = image[..., :3].astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
    if image.shape[-1] == 4:
        return np.concatenate([lin, np.zeros_like(lin[..., :1])], axis=-1)
    return lin


def _encode_one(codec: str, frame: object, pix_fmt: str) -> bytes:
    import av

    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, pix_fmt  # type: ignore[attr-defined]
    ctx.time_base = 1
    if codec == "exr":
        ctx.options = {"compression": "zip1"}
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write ``image`` to ``path`` (``.png`` or ``.exr``), atomically."""
    from kinema.core.atomic import atomic_write_bytes

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".png":
        data = encode_png(image)
    elif suffix == ".exr":
        data = encode_exr(image)
    else:
        raise InvalidArgumentError(f"unsupported image type {suffix or '(none)'!r}; use .png or .exr",
                                   path=p)
    atomic_write_bytes(p, data)
    return p


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """float linear light to ``uint8`` sRGB (colour channels; a fourth, alpha, is scaled)."""
    c = np.clip(image[..., :3], 0, 1)
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    out = np.concatenate([srgb, np.clip(image[..., 3:], 0, 1)], axis=-1)
    return np.rint(out * 255).astype(np.uint8)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as ``uint8`` RGB or RGBA (16-bit PNGs as ``uint16``; an EXR, linear light,
    as ``uint8`` sRGB)."""
    container = open_input(path)
    try:
        stream = video_stream(container, path)
        frame = next(container.decode(stream))
        name = frame.format.name
        if name in ("gbrpf32le", "gbrapf32le", "gbrpf32be", "gbrapf32be"):
            return linear_to_srgb(frame.to_ndarray())
        if name in ("rgba", "ya8", "pal8"):
            return frame.to_ndarray(format="rgba")
        if name in ("rgba64be", "rgba64le", "ya16be"):
            return frame.to_ndarray(format="rgba64le")
        if name in ("rgb48be", "rgb48le", "gray16be"):
            return frame.to_ndarray(format="rgb48le")
        return frame.to_ndarray(format="rgb24")
    finally:
        container.close()
