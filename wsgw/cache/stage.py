"""A deployment's response cache as its fronts use it: one store, single flight, and what is counted.

The REST front (wsgw/rest/caching.py decides what a REST route caches) and the WebSocket message path
(wsgw/gateway/dispatch.py, for routes with a route response) share one `StageCache` per deployment, so a stage
flush empties both and both use the same store (memory or Redis). Single flight: one integration call per key at
a time, on this node and across the nodes sharing the store. The store failing never fails a call: it is
counted as a bypass and the integration answers. docs/caching.md has the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wsgw.cache.base import CachedResponse, CacheUnavailable, ResponseCache
from wsgw.config.caching import MAX_ENTRY_BYTES
from wsgw.metrics import CacheRouteMetrics, Metrics

log = logging.getLogger("wsgw.cache")

__all__ = ["Lease", "StageCache"]


@dataclass(slots=True)
class Lease:
    """The right to fill one key: the caller that holds it calls the integration; concurrent callers of the same
    key (here, and on other nodes through the store's lock) wait for its answer instead of calling too."""

    key: str
    answer: asyncio.Future[CachedResponse | None]
    locked: bool                  # the store's cross-node lock is ours (to give back)


class StageCache:
    """A deployment's store plus what is counted about it (CloudWatch's CacheHitCount / CacheMissCount, and
    wsgw's bypasses, evictions, refreshes and flushes), and single flight: one integration call per key at a
    time, on this node and across the nodes sharing the store."""

    POLL_S = (0.01, 0.1)          # how often a waiter looks for another node's answer (first, at most)

    def __init__(self, store: ResponseCache, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._evictions_seen = 0
        self._inflight: dict[str, asyncio.Future[CachedResponse | None]] = {}
        self.waiting = 0              # requests waiting for another's answer to the same key (here or elsewhere)

    async def lookup(self, counters: CacheRouteMetrics, key: str, wait_s: float
                     ) -> tuple[CachedResponse | None, str, Lease | None]:
        """(the entry or None, what happened: hit | miss | bypass, the lease to `settle` after a miss). A
        caller that finds the key being filled waits for that answer (at most `wait_s`) and counts as a hit."""
        try:
            found = await self.store.get(key)
        except CacheUnavailable:
            counters.bypasses.inc()
            return None, "bypass", None
        if found is None:
            pending = self._inflight.get(key)
            if pending is not None:         # this node is filling it: wait for that answer
                self.waiting += 1
                try:
                    found = await asyncio.wait_for(asyncio.shield(pending), wait_s)
                except TimeoutError:
                    found = None
                finally:
                    self.waiting -= 1
            else:
                lease = await self._lease(key, wait_s)
                if isinstance(lease, Lease):
                    counters.misses.inc()
                    return None, "miss", lease
                found = lease
        if found is None:
            counters.misses.inc()
            return None, "miss", None
        counters.hits.inc()
        return found, "hit", None

    async def _lease(self, key: str, wait_s: float) -> Lease | CachedResponse | None:
        """Become the filler of `key`, or wait for the node that is (its answer, or None to call ourselves)."""
        answer: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = answer
        try:
            if await self.store.try_lock(key, wait_s + 1.0):
                return Lease(key, answer, locked=True)
            found = await self._wait_for_other(key, wait_s)
        except CacheUnavailable:
            return Lease(key, answer, locked=False)
        except BaseException:
            self._settle_local(key, answer, None)
            raise
        self._settle_local(key, answer, found)
        return found if found is not None else Lease(key, answer, locked=False)

    async def _wait_for_other(self, key: str, wait_s: float) -> CachedResponse | None:
        """Another node holds the key's lock: its answer once stored; None when it gave up without one (a non-2xx
        answer, a failure) or `wait_s` passed."""
        deadline = time.monotonic() + wait_s
        pause = self.POLL_S[0]
        self.waiting += 1
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.POLL_S[1])
                found = await self.store.get(key)
                if found is not None:
                    return found
                if not await self.store.locked(key):
                    return await self.store.get(key)
            return None
        finally:
            self.waiting -= 1

    def _settle_local(self, key: str, answer: asyncio.Future[CachedResponse | None],
                      value: CachedResponse | None) -> None:
        if self._inflight.get(key) is answer:
            del self._inflight[key]
        if not answer.done():
            answer.set_result(value)

    async def settle(self, counters: CacheRouteMetrics, lease: Lease, value: CachedResponse | None,
                     ttl_seconds: int) -> None:
        """After the leaseholder's integration call: keep a cacheable answer, hand it to the waiters, give the
        lock back. `value` None: the call failed (the waiters call for themselves)."""
        kept = value if value is not None and self.cacheable(value) else None
        try:
            if kept is not None:
                await self.keep(counters, lease.key, kept, ttl_seconds)
        finally:
            self._settle_local(lease.key, lease.answer, kept)
            if lease.locked:
                with contextlib.suppress(CacheUnavailable):     # else it lapses with its TTL
                    await self.store.unlock(lease.key)

    async def through(self, counters: CacheRouteMetrics, key: str, ttl_seconds: int, wait_s: float,
                      fill: Callable[[], Awaitable[CachedResponse | None]]) -> tuple[CachedResponse | None, str]:
        """The cached answer of `key`, else `fill()`'s (kept when cacheable, handed to the waiters of the same key):
        (answer, hit | miss | bypass). `fill` answering None (nothing to keep) or raising lets waiters call."""
        found, state, lease = await self.lookup(counters, key, wait_s)
        if found is not None:
            return found, state
        value: CachedResponse | None = None
        try:
            value = await fill()
        finally:
            if lease is not None:
                await self.settle(counters, lease, value, ttl_seconds)
        if lease is None and state != "bypass" and value is not None:
            await self.keep(counters, key, value, ttl_seconds)
        return value, state

    @staticmethod
    def cacheable(value: CachedResponse) -> bool:
        """2xx, at most 1 MiB (AWS's largest cached response), and no Set-Cookie (wsgw's choice: a cookie set
        for one caller must never be replayed to the next)."""
        return (200 <= value.status < 300 and len(value.body) <= MAX_ENTRY_BYTES
                and not any(name.lower() == "set-cookie" for name, _ in value.headers))

    async def keep(self, counters: CacheRouteMetrics, key: str, value: CachedResponse, ttl_seconds: int) -> None:
        """Store a cacheable answer; a failing store is a bypass, not an error."""
        if not self.cacheable(value):
            return
        try:
            await self.store.put(key, value, ttl_seconds)
        except CacheUnavailable:
            counters.bypasses.inc()
            return
        evicted = self.store.evictions - self._evictions_seen
        if evicted > 0:
            self._evictions_seen = self.store.evictions
            self.metrics.count(self.metrics.cache_evictions, evicted)

    async def forget(self, counters: CacheRouteMetrics, key: str) -> None:
        self.metrics.count(self.metrics.cache_invalidations, result="refreshed")
        try:
            await self.store.delete(key)
        except CacheUnavailable:
            counters.bypasses.inc()

    async def flush(self) -> int:
        """FlushStageCache: every entry of the stage; CacheUnavailable when the store cannot be reached."""
        removed = await self.store.flush_stage()
        self.metrics.count(self.metrics.cache_flushes)
        log.info("response cache of stage %s flushed (%d entries)", self.store.namespace.stage, removed)
        return removed

    async def close(self) -> None:
        await self.store.close()
