"""A thread-safe LRU cache of decoded frames, bounded in bytes rather than in frames."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Least-recently-used map from frame index to a value of known size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[int, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: int) -> V | None:
        """The value for ``key`` (marking it recently used), or ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: int, value: V, nbytes: int) -> None:
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

    def missing(self, keys: range) -> list[int]:
        """The keys of ``keys`` not in the cache, in order."""
        with self._lock:
            return [k for k in keys if k not in self._items]

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
