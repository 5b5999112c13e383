"""Decoded-frame caches bounded in bytes, not frames: one budget shared by every reader of a
process by default, so an editor with many clips open holds at most that much."""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_CACHE_MB = 1024


class ByteLRU(Generic[V]):
    """Thread-safe least-recently-used map whose entries have a known size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for ``key`` (marking it recently used), or ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, value: V, nbytes: int) -> None:
        """Store ``value`` as most recently used; evict the least recently used to fit."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def remove_where(self, predicate: object) -> None:
        """Drop every entry whose key satisfies ``predicate(key)``."""
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:  # type: ignore[operator]
                self._bytes -= self._items.pop(key)[1]

    def sizes(self) -> list[tuple[Hashable, int]]:
        """``(key, nbytes)`` of every entry, least recently used first."""
        with self._lock:
            return [(k, size) for k, (_, size) in self._items.items()]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes


class FrameCache(Generic[V]):
    """One reader's frames, by frame index, inside a (possibly shared) :class:`ByteLRU`."""

    _tokens = itertools.count()

    def __init__(self, lru: ByteLRU[V]) -> None:
        self._lru = lru
        self._token = next(self._tokens)

    @property
    def max_bytes(self) -> int:
        """The budget of the underlying cache (shared with other readers by default)."""
        return self._lru.max_bytes

    def get(self, i: int) -> V | None:
        return self._lru.get((self._token, i))

    def put(self, i: int, value: V, nbytes: int) -> None:
        self._lru.put((self._token, i), value, nbytes)

    def __contains__(self, i: int) -> bool:
        return (self._token, i) in self._lru

    def clear(self) -> None:
        """Drop this reader's frames, leaving other readers' alone."""
        token = self._token
        self._lru.remove_where(lambda key: key[0] == token)

    def _mine(self) -> list[int]:
        return [size for (token, _), size in self._lru.sizes() if token == self._token]

    @property
    def nbytes(self) -> int:
        """Bytes this reader holds."""
        return sum(self._mine())

    def __len__(self) -> int:
        return len(self._mine())


_shared: ByteLRU | None = None
_shared_lock = threading.Lock()


def shared_cache() -> ByteLRU:
    """The process-wide frame cache: ``$KINEMA_FRAME_CACHE_MB`` MiB (default 1024)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            mb = float(os.environ.get("KINEMA_FRAME_CACHE_MB", DEFAULT_CACHE_MB))
            _shared = ByteLRU(int(mb * 2**20))
        return _shared
