"""The in-process response cache: least recently used entries dropped first, bounded by bytes, TTL per entry
read on the clock it is given (tests pass their own)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from wsgw.cache.base import CachedResponse, CacheNamespace, ResponseCache


class MemoryResponseCache(ResponseCache):
    """Entries of one deployment; `max_bytes` bounds the sum of `CachedResponse.size` (and key lengths)."""

    store_name = "memory"

    def __init__(self, namespace: CacheNamespace, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(namespace)
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, CachedResponse, int]] = OrderedDict()

    @classmethod
    def open(cls, namespace: CacheNamespace, *, max_bytes: int, redis_url: str | None) -> MemoryResponseCache:
        return cls(namespace, max_bytes)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value, _ = entry
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: CachedResponse, ttl_seconds: float) -> None:
        cost = value.size + len(key)
        self._drop(key)
        if cost > self.max_bytes or ttl_seconds <= 0:
            return
        while self.bytes + cost > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        self._entries[key] = (self.clock() + ttl_seconds, value, cost)
        self.bytes += cost

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def flush_stage(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        self.bytes = 0
        return count

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]
