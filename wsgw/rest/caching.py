"""Stage caching on the REST front (AWS REST API caching, applied to wsgw's HTTP API routes).

What a route caches is decided once (`RoutePolicy`): the stage's `caching:` with the route's override. Per
request the front asks `RestCache.lookup` after throttling, authorization, API keys and validation (a refused
caller never reaches the cache), and `RestCache.keep` after the integration answered 2xx. A client's
`Cache-Control: max-age=0` refreshes the entry only for a caller allowed `execute-api:InvalidateCache`; others
get AWS's `unauthorizedCacheControlHeaderStrategy`. The store (memory or Redis) failing never fails a request:
it is counted as a bypass and the integration answers. docs/caching.md has the rules and their sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from enum import Enum

from wsgw.cache import CachedResponse, CacheUnavailable, ResponseCache
from wsgw.config.caching import MAX_ENTRY_BYTES, KeyParameter, RouteCaching, StageCaching
from wsgw.headers import Headers
from wsgw.metrics import Metrics

log = logging.getLogger("wsgw.cache")

CACHE_HEADER = "X-Wsgw-Cache"          # hit | miss | refresh | bypass: what the cache did for this answer
INVALIDATE_ACTION = "execute-api:InvalidateCache"
#: What SUCCEED_WITH_RESPONSE_HEADER adds (AWS documents "a warning header", not its words; these are wsgw's).
IGNORED_WARNING = ('199 - "Cache-Control: max-age=0 was ignored: the caller may not invalidate the cache '
                   '(execute-api:InvalidateCache)"')


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """How one route is cached: the stage's settings with the route's override laid over them."""

    methods: frozenset[str]
    ttl_seconds: int
    key_parameters: tuple[KeyParameter, ...]
    principal_in_key: bool
    require_authorization: bool
    unauthorized_strategy: str


def route_policy(stage: StageCaching | None, route: RouteCaching | None, route_method: str) -> RoutePolicy | None:
    """None when the route is not cached: no stage cache, caching off for it, or a TTL of 0."""
    if stage is None or not stage.cluster_enabled:
        return None
    override = route or RouteCaching()
    enabled = override.caching_enabled if override.caching_enabled is not None else stage.caching_enabled
    ttl = override.ttl_seconds if override.ttl_seconds is not None else stage.ttl_seconds
    if not enabled or ttl <= 0:
        return None
    methods = set(stage.methods)
    any_method = route_method in ("ANY", "")       # ANY and $default: the stage's methods only
    if override.caching_enabled and not any_method:
        methods.add(route_method)          # a route that asks for caching is cached whatever its method
    if not any_method and route_method not in methods:
        return None
    return RoutePolicy(
        frozenset(methods), ttl, override.key_parameters, override.principal_in_key,
        override.require_authorization if override.require_authorization is not None
        else stage.require_authorization,
        override.unauthorized_strategy or stage.unauthorized_strategy)


class Invalidation(Enum):
    """What a `Cache-Control: max-age=0` does."""

    NONE = "none"            # no such header: serve from the cache
    REFRESH = "refresh"      # allowed: skip the cache, call the integration, replace the entry
    REFUSE = "refuse"        # FAIL_WITH_403
    WARN = "warn"            # SUCCEED_WITH_RESPONSE_HEADER: served as if the header were absent, plus Warning
    IGNORE = "ignore"        # SUCCEED_WITHOUT_RESPONSE_HEADER


def asks_invalidation(headers: Headers) -> bool:
    """Whether the client sent `Cache-Control: max-age=0` (any Cache-Control line, any directive position)."""
    for value in headers.get_all("cache-control"):
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            if name.strip().lower() == "max-age" and argument.strip().strip('"') == "0":
                return True
    return False


def invalidation(policy: RoutePolicy, asked: bool, allowed: bool) -> Invalidation:
    """AWS's rule: without `requireAuthorizationForCacheControl` anyone may invalidate; with it, a caller the
    authorizer allowed `execute-api:InvalidateCache` may, and everyone else gets the strategy."""
    if not asked:
        return Invalidation.NONE
    if allowed or not policy.require_authorization:
        return Invalidation.REFRESH
    return {"FAIL_WITH_403": Invalidation.REFUSE, "SUCCEED_WITH_RESPONSE_HEADER": Invalidation.WARN,
            "SUCCEED_WITHOUT_RESPONSE_HEADER": Invalidation.IGNORE}[policy.unauthorized_strategy]


@dataclass(slots=True)
class Lease:
    """The right to fill one key: the caller that holds it calls the integration; concurrent callers of the same
    key (here, and on other nodes through the store's lock) wait for its answer instead of calling too."""

    key: str
    answer: asyncio.Future[CachedResponse | None]
    locked: bool                  # the store's cross-node lock is ours (to give back)


@dataclass(slots=True)
class CacheStep:
    """What the cache did for one request: its key, hit | miss | refresh | bypass, the invalidation asked, and the
    lease when this request fills the key."""

    key: str
    state: str
    invalidation: Invalidation
    lease: Lease | None = None


class RestCache:
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

    async def lookup(self, route_key: str, key: str, wait_s: float
                     ) -> tuple[CachedResponse | None, str, Lease | None]:
        """(the entry or None, what happened: hit | miss | bypass, the lease to `settle` after a miss). A
        caller that finds the key being filled waits for that answer (at most `wait_s`) and counts as a hit."""
        counters = self.metrics.http_cache(route_key)
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

    async def settle(self, route_key: str, lease: Lease, value: CachedResponse | None, ttl_seconds: int) -> None:
        """After the leaseholder's integration call: keep a cacheable answer, hand it to the waiters, give the
        lock back. `value` None: the call failed (the waiters call for themselves)."""
        kept = value if value is not None and self.cacheable(value) else None
        try:
            if kept is not None:
                await self.keep(route_key, lease.key, kept, ttl_seconds)
        finally:
            self._settle_local(lease.key, lease.answer, kept)
            if lease.locked:
                with contextlib.suppress(CacheUnavailable):     # else it lapses with its TTL
                    await self.store.unlock(lease.key)

    @staticmethod
    def cacheable(value: CachedResponse) -> bool:
        """2xx, at most 1 MiB (AWS's largest cached response), and no Set-Cookie (wsgw's choice: a cookie set
        for one caller must never be replayed to the next)."""
        return (200 <= value.status < 300 and len(value.body) <= MAX_ENTRY_BYTES
                and not any(name.lower() == "set-cookie" for name, _ in value.headers))

    async def keep(self, route_key: str, key: str, value: CachedResponse, ttl_seconds: int) -> None:
        """Store a cacheable answer; a failing store is a bypass, not an error."""
        if not self.cacheable(value):
            return
        try:
            await self.store.put(key, value, ttl_seconds)
        except CacheUnavailable:
            self.metrics.http_cache(route_key).bypasses.inc()
            return
        evicted = self.store.evictions - self._evictions_seen
        if evicted > 0:
            self._evictions_seen = self.store.evictions
            self.metrics.count(self.metrics.cache_evictions, evicted)

    async def forget(self, route_key: str, key: str) -> None:
        self.metrics.count(self.metrics.cache_invalidations, result="refreshed")
        try:
            await self.store.delete(key)
        except CacheUnavailable:
            self.metrics.http_cache(route_key).bypasses.inc()

    async def flush(self) -> int:
        """FlushStageCache: every entry of the stage; CacheUnavailable when the store cannot be reached."""
        removed = await self.store.flush_stage()
        self.metrics.count(self.metrics.cache_flushes)
        log.info("response cache of stage %s flushed (%d entries)", self.store.namespace.stage, removed)
        return removed

    async def close(self) -> None:
        await self.store.close()
