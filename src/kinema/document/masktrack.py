"""Mask tracks on disk: one object's mask per frame, compressed in chunks of frames.

``masks/<track>/`` holds ``chunk_NNNNNN.npz`` files of ``CHUNK`` frames each (bit-packed,
zlib-compressed) and ``states.u8``, one byte a frame: empty, a user keyframe (the frame holds a
prompt), or propagated. Editing one frame rewrites one chunk and the state file, atomically.
"""

from __future__ import annotations

import io
import threading
from enum import IntEnum
from pathlib import Path

import numpy as np

from kinema.core.atomic import atomic_write_bytes
from kinema.core.errors import InvalidArgumentError, ProjectCorruptError
from kinema.core.frames import Mask, check_mask

CHUNK = 32
_RESTORE = "restore the project's masks folder from a copy, or track the object again"


class FrameState(IntEnum):
    EMPTY = 0
    KEYFRAME = 1
    PROPAGATED = 2


class MaskTrackStore:
    """Random access to one track's masks; safe to share between threads.

    A track the project lists must have its folder: opening one whose folder is gone is an
    error (a blank matte would be silently wrong) unless ``create`` asks for a new track.
    """

    def __init__(self, folder: str | Path, frames: int, width: int, height: int, *,
                 create: bool = False) -> None:
        if frames < 1 or width < 1 or height < 1:
            raise InvalidArgumentError(f"a mask track needs frames and a size, got "
                                       f"{frames} frames of {width}x{height}")
        self.folder = Path(folder)
        self.frames, self.width, self.height = frames, width, height
        if not self.folder.is_dir():
            if not create:
                raise ProjectCorruptError(f"the folder of mask track {self.folder.name} is missing",
                                          path=self.folder, hint=_RESTORE)
            self.folder.mkdir(parents=True)
        states = self.folder / "states.u8"
        if states.is_file():
            self._states = np.frombuffer(states.read_bytes(), np.uint8).copy()
            if len(self._states) != frames:
                raise ProjectCorruptError(
                    f"mask track has {len(self._states)} frames, the project says {frames}",
                    path=self.folder, hint=_RESTORE)
        elif any(self.folder.glob("chunk_*.npz")):
            raise ProjectCorruptError("mask track has masks but no states.u8", path=self.folder,
                                      hint=_RESTORE)
        else:
            self._states = np.zeros(frames, np.uint8)
        self._lock = threading.Lock()
        self._chunk_cache: tuple[int, np.ndarray] | None = None

    # -- reading ----------------------------------------------------------------------

    def read(self, i: int) -> Mask | None:
        """Frame ``i``'s mask, or ``None`` where the track has none."""
        self._check_index(i)
        with self._lock:
            if self._states[i] == FrameState.EMPTY:
                return None
            packed = self._chunk(i // CHUNK)[i % CHUNK]
        return np.unpackbits(packed, count=self.width * self.height).reshape(
            self.height, self.width).astype(bool)

    def state(self, i: int) -> FrameState:
        self._check_index(i)
        return FrameState(int(self._states[i]))

    def states(self) -> np.ndarray:
        """Every frame's :class:`FrameState` as ``uint8`` (for the timeline's mask lanes)."""
        with self._lock:
            return self._states.copy()

    def keyframes(self) -> list[int]:
        """Frames that hold a user prompt."""
        return np.flatnonzero(self.states() == FrameState.KEYFRAME).tolist()

    # -- writing ----------------------------------------------------------------------

    def write(self, i: int, mask: np.ndarray, state: FrameState = FrameState.PROPAGATED) -> None:
        """Store frame ``i``'s mask; only its chunk is rewritten."""
        self.write_many(i, [mask], state)

    def write_many(self, start: int, masks: list[np.ndarray] | np.ndarray,
                   state: FrameState = FrameState.PROPAGATED) -> None:
        """Store consecutive masks from ``start``, one rewrite per chunk touched."""
        if state == FrameState.EMPTY:
            raise InvalidArgumentError("use clear() to remove masks")
        checked = [self._check_mask(m) for m in masks]
        self._check_index(start)
        self._check_index(start + len(checked) - 1)
        with self._lock:
            i = start
            while i < start + len(checked):
                c = i // CHUNK
                end = min((c + 1) * CHUNK, start + len(checked))
                chunk = self._chunk(c).copy()
                for j in range(i, end):
                    chunk[j % CHUNK] = np.packbits(checked[j - start])
                self._write_chunk(c, chunk)
                self._states[i:end] = state
                i = end
            self._write_states()

    def clear(self, start: int, stop: int | None = None) -> None:
        """Remove the masks of frames ``[start, stop)`` (default: just ``start``)."""
        stop = start + 1 if stop is None else stop
        self._check_index(start)
        self._check_index(stop - 1)
        with self._lock:
            self._states[start:stop] = FrameState.EMPTY
            self._write_states()

    # -- storage ----------------------------------------------------------------------

    def _chunk_path(self, c: int) -> Path:
        return self.folder / f"chunk_{c:06d}.npz"

    def _chunk(self, c: int) -> np.ndarray:
        if self._chunk_cache is not None and self._chunk_cache[0] == c:
            return self._chunk_cache[1]
        path = self._chunk_path(c)
        size = (self.width * self.height + 7) // 8
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    chunk = data["bits"]
            except (OSError, ValueError, KeyError) as exc:
                raise ProjectCorruptError(f"mask track {self.folder.name}: {path.name} is damaged",
                                          path=self.folder, hint=_RESTORE) from exc
            if chunk.shape != (CHUNK, size):
                raise ProjectCorruptError(
                    f"mask track {self.folder.name}: {path.name} has the wrong size",
                    path=self.folder, hint=_RESTORE)
        else:
            self._check_unused(c)
            chunk = np.zeros((CHUNK, size), np.uint8)
        self._chunk_cache = (c, chunk)
        return chunk

    def _check_unused(self, c: int) -> None:
        """A chunk file may be absent only where none of its frames holds a mask."""
        held = np.flatnonzero(self._states[c * CHUNK:(c + 1) * CHUNK] != FrameState.EMPTY)
        if len(held):
            first, last = c * CHUNK + held[0], c * CHUNK + held[-1]
            raise ProjectCorruptError(
                f"mask track {self.folder.name}: the data of frames {first}-{last} is missing "
                f"({self._chunk_path(c).name})", path=self.folder, hint=_RESTORE)

    def verify(self) -> list[str]:
        """What is wrong with the track on disk (missing or damaged chunks); empty when whole."""
        problems = []
        for c in range((self.frames + CHUNK - 1) // CHUNK):
            try:
                with self._lock:
                    self._chunk_cache = None
                    self._chunk(c)
            except ProjectCorruptError as exc:
                problems.append(exc.reason)
        return problems

    def _write_chunk(self, c: int, chunk: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, bits=chunk)
        atomic_write_bytes(self._chunk_path(c), buf.getvalue())
        self._chunk_cache = (c, chunk)

    def _write_states(self) -> None:
        atomic_write_bytes(self.folder / "states.u8", self._states.tobytes())

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.frames:
            raise IndexError(f"frame {i} out of range for mask track {self.folder.name} "
                             f"({self.frames} frames)")

    def _check_mask(self, mask: np.ndarray) -> Mask:
        m = check_mask(mask)
        if m.shape != (self.height, self.width):
            raise InvalidArgumentError(f"mask is {m.shape[1]}x{m.shape[0]}, the track is "
                                       f"{self.width}x{self.height}")
        return m
