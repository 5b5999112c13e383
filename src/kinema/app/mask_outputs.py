"""Where tracked masks go: a label-map ``.npz``, DAVIS-style palette PNGs, or a ProRes matte.

Each writer takes one ``uint8`` label map per frame (0 background, k = object k), in frame
order, and is atomic: the output appears under its name only when complete. The ``.npz``
is streamed (its ``masks`` array is written a frame at a time into the zip), so long videos
never sit in memory. :class:`InOrder` puts frames that come in another order (tracked
backwards) in that order, and :class:`LabelSpool` keeps label maps on disk until needed.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from kinema.core import atomic
from kinema.core.errors import InvalidArgumentError


# DAVIS's palette: object k gets the k-th colour of the PASCAL VOC colour map.
def davis_palette() -> np.ndarray:
    """The 256-entry PASCAL VOC / DAVIS palette, ``(256, 3) uint8``."""
    palette = np.zeros((256, 3), np.uint8)
    for k in range(256):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[k] = (r, g, b)
    return palette


class LabelWriter(Protocol):
    def write(self, labels: np.ndarray) -> None: ...
    def close(self) -> Path: ...
    def abort(self) -> None: ...


class NpzLabels:
    """``OUT.npz`` with ``masks``: ``uint8 (N, H, W)``, written frame by frame."""

    def __init__(self, path: Path, frames: int, size: tuple[int, int], overwrite: bool) -> None:
        atomic.check_can_write(path, overwrite)
        self.path, self.frames, self.overwrite = path, frames, overwrite
        w, h = size
        self._temp = atomic.temp_path_for(path)
        with atomic.naming_errors(path):
            self._zip = zipfile.ZipFile(self._temp, "w", compression=zipfile.ZIP_DEFLATED,
                                        allowZip64=True)
            self._entry = self._zip.open("masks.npy", "w", force_zip64=True)
            header = {"descr": "|u1", "fortran_order": False, "shape": (frames, h, w)}
            np.lib.format.write_array_header_1_0(self._entry, header)
        self._written = 0

    def write(self, labels: np.ndarray) -> None:
        with atomic.naming_errors(self.path):
            self._entry.write(np.ascontiguousarray(labels, np.uint8).tobytes())
        self._written += 1

    def close(self) -> Path:
        if self._written != self.frames:
            self.abort()
            raise InvalidArgumentError(f"{self._written} of {self.frames} frames were written",
                                       path=self.path)
        with atomic.naming_errors(self.path):
            self._entry.close()
            self._zip.close()
            atomic.commit(self._temp, self.path, self.overwrite)
        return self.path

    def abort(self) -> None:
        try:
            self._entry.close()
            self._zip.close()
        except (OSError, ValueError):
            pass
        atomic.discard(self._temp)


class PaletteSequence:
    """A folder of palette PNGs ``00000.png ...`` (DAVIS layout: pixel value = object id)."""

    def __init__(self, path: Path, overwrite: bool) -> None:
        atomic.check_can_write(path, overwrite, folder=True)
        self.path, self.overwrite = path, overwrite
        self._temp = atomic.temp_path_for(path)
        with atomic.naming_errors(path):
            self._temp.mkdir()
        self._palette = davis_palette()
        self._n = 0

    def write(self, labels: np.ndarray) -> None:
        from kinema.media.image import encode_palette_png

        with atomic.naming_errors(self.path):
            (self._temp / f"{self._n:05d}.png").write_bytes(encode_palette_png(labels, self._palette))
        self._n += 1

    def close(self) -> Path:
        with atomic.naming_errors(self.path):
            atomic.commit_frames(self._temp, self.path, self.overwrite)
        return self.path

    def abort(self) -> None:
        atomic.discard(self._temp)


class MatteMovie:
    """``OUT.mov``: ProRes 4444 whose picture and alpha are white where any object is."""

    def __init__(self, path: Path, fps: Fraction, size: tuple[int, int], overwrite: bool) -> None:
        from kinema.media.writer import VideoWriter

        self._writer = VideoWriter(path, fps, size, codec="prores4444", alpha=True,
                                   overwrite=overwrite)

    def write(self, labels: np.ndarray) -> None:
        level = np.where(labels > 0, np.uint8(255), np.uint8(0))
        self._writer.write(np.repeat(level[..., None], 4, axis=2))

    def close(self) -> Path:
        return self._writer.close()

    def abort(self) -> None:
        self._writer.abort()


class LabelSpool:
    """Label maps of a ``frames``-frame video kept on disk until they are read back, in any
    order: each zlib-compressed into one temporary file, so memory holds only their places."""

    def __init__(self, frames: int, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._file = tempfile.TemporaryFile(prefix="kinema-labels-")  # noqa: SIM115 (closed in close)
        self._places = np.full((frames, 2), -1, np.int64)  # offset and length of each frame
        self._seen = np.zeros(256, bool)

    def put(self, index: int, labels: np.ndarray) -> None:
        """Keep frame ``index``'s label map (a later one for the same frame replaces it)."""
        data = zlib.compress(np.ascontiguousarray(labels, np.uint8).tobytes(), 1)
        self._places[index] = (self._file.seek(0, os.SEEK_END), len(data))
        self._file.write(data)
        self._seen |= np.bincount(labels.ravel(), minlength=256).astype(bool)

    def __contains__(self, index: int) -> bool:
        return bool(self._places[index, 1] >= 0)

    def __getitem__(self, index: int) -> np.ndarray:
        offset, length = (int(v) for v in self._places[index])
        if length < 0:
            raise KeyError(index)
        self._file.seek(offset)
        return np.frombuffer(zlib.decompress(self._file.read(length)), np.uint8).reshape(self.shape)

    def frames(self) -> list[int]:
        """The frames held, in order."""
        return np.flatnonzero(self._places[:, 1] >= 0).tolist()

    def object_ids(self) -> set[int]:
        """Every object id that some frame held shows."""
        return {int(k) for k in np.flatnonzero(self._seen[1:]) + 1}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LabelSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InOrder:
    """Frames given as ``(index, labels)`` in tracking order, written to ``writer`` in frame
    order ``0 .. frames - 1``, blank where none was given. Frames tracked forwards go straight
    through; tracked ``backwards``, they wait in a :class:`LabelSpool` until :meth:`close`."""

    def __init__(self, writer: LabelWriter, frames: int, shape: tuple[int, int], *,
                 backwards: bool) -> None:
        self.writer, self.frames, self.shape = writer, frames, shape
        self._spool = LabelSpool(frames, shape) if backwards else None
        self._next = 0  # the next frame the writer takes

    def put(self, index: int, labels: np.ndarray) -> None:
        if self._spool is not None:
            self._spool.put(index, labels)
            return
        self._write_until(index)
        self.writer.write(labels)
        self._next = index + 1

    def close(self) -> Path:
        """Write the remaining frames and close the writer."""
        self._write_until(self.frames)
        self._drop_spool()
        return self.writer.close()

    def abort(self) -> None:
        self._drop_spool()
        self.writer.abort()

    def _write_until(self, stop: int) -> None:
        """Frames ``_next .. stop - 1``: from the spool, blank where it has none."""
        blank = np.zeros(self.shape, np.uint8)
        for index in range(self._next, stop):
            if self._spool is not None and index in self._spool:
                self.writer.write(self._spool[index])
            else:
                self.writer.write(blank)
        self._next = max(self._next, stop)

    def _drop_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()


def open_labels(out: str | os.PathLike[str], frames: int, size: tuple[int, int], fps: Fraction,
                overwrite: bool) -> LabelWriter:
    """The writer for ``out``: ``.npz``, ``.mov``, or a folder (no extension) of PNGs."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return NpzLabels(path, frames, size, overwrite)
    if suffix == ".mov":
        return MatteMovie(path, fps, size, overwrite)
    if suffix == "":
        return PaletteSequence(path, overwrite)
    raise InvalidArgumentError(f"cannot write masks as '{suffix}'", path=path,
                               hint="use OUT.npz (label map), OUT.mov (ProRes matte) or a folder (PNGs)")
