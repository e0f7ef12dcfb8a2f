"""The response cache on Redis: one entry per key with its TTL set in Redis (`SET key value PX ttl`), shared by
every node of the cluster, keyed apart per API, stage and version:
`<key_prefix>:cache:<api>:<stage>:<version>:<hash>`.

Redis is an accelerator here, never a dependency: a command that fails or takes longer than `timeout_s` raises
`CacheUnavailable` (the request is served uncached and counted as a bypass), and for `retry_after_s` after a
failure the store answers `CacheUnavailable` at once instead of letting every request wait on a dead server.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from wsgw.cache.base import CachedResponse, CacheNamespace, CacheUnavailable, ResponseCache
from wsgw.registry.redis_wire import RedisOptions, redacted

log = logging.getLogger("wsgw.cache")
T = TypeVar("T")
_GLOB = re.compile(r"([*?\[\]\\])")
#: Delete a lock only if it is still ours (a lapsed lock may have been taken by another node since).
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"


class RedisResponseCache(ResponseCache):
    """Entries in Redis under the registry URL's key prefix; the connection is opened at first use."""

    store_name = "redis"

    def __init__(self, namespace: CacheNamespace, url: str, *, timeout_s: float = 1.0,
                 retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(namespace)
        options = RedisOptions.from_url(url)
        self.url = options.url
        self.base = f"{options.key_prefix}:cache:"
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._down_until = 0.0
        self._client: aioredis.Redis | None = None
        self._token = uuid.uuid4().hex          # whose locks are whose

    @classmethod
    def open(cls, namespace: CacheNamespace, *, max_bytes: int, redis_url: str | None) -> RedisResponseCache:
        if not redis_url:
            raise ValueError("store redis needs the node to run with --redis URL (or use store: memory)")
        return cls(namespace, redis_url)

    def key(self, key: str) -> str:
        return f"{self.base}{self.namespace.prefix}{key}"

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.from_url(self.url, socket_timeout=self.timeout_s,
                                             socket_connect_timeout=self.timeout_s,
                                             retry=Retry(NoBackoff(), 0), health_check_interval=0)
        return self._client

    async def _run(self, what: str, call: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        if self.clock() < self._down_until:
            raise CacheUnavailable("the cache's Redis failed moments ago; retrying shortly")
        try:
            return await asyncio.wait_for(call(self._redis()), self.timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.clock() >= self._down_until:
                log.warning("response cache: Redis %s failed (%s: %s); requests are served uncached for %.1f s",
                            redacted(self.url), what, exc.__class__.__name__, self.retry_after_s)
            self._down_until = self.clock() + self.retry_after_s
            raise CacheUnavailable(f"{what}: {exc}") from exc

    async def get(self, key: str) -> CachedResponse | None:
        raw = await self._run("GET", lambda r: r.get(self.key(key)))
        return CachedResponse.decode(raw) if isinstance(raw, bytes) else None

    async def put(self, key: str, value: CachedResponse, ttl_seconds: float) -> None:
        ttl_ms = int(ttl_seconds * 1000)
        if ttl_ms <= 0:
            return
        await self._run("SET", lambda r: r.set(self.key(key), value.encode(), px=ttl_ms))

    async def delete(self, key: str) -> None:
        await self._run("DEL", lambda r: r.delete(self.key(key)))

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        return bool(await self._run("SET NX", lambda r: r.set(self.key(key) + ":lock", self._token, nx=True,
                                                             px=ttl_ms)))

    async def unlock(self, key: str) -> None:
        await self._run("unlock", lambda r: r.eval(_UNLOCK, 1, self.key(key) + ":lock", self._token))

    async def locked(self, key: str) -> bool:
        return bool(await self._run("EXISTS", lambda r: r.exists(self.key(key) + ":lock")))

    async def flush_stage(self) -> int:
        pattern = _GLOB.sub(r"\\\1", f"{self.base}{self.namespace.stage_prefix}") + "*"

        async def flush(r: aioredis.Redis) -> int:
            removed = 0
            batch: list[bytes] = []
            async for name in r.scan_iter(match=pattern, count=500):
                batch.append(name)
                if len(batch) >= 500:
                    removed += int(await r.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(await r.unlink(*batch))
            return removed

        self._down_until = 0.0          # an operator's flush is worth a fresh attempt
        return await self._run_long("flush", flush)

    async def _run_long(self, what: str, call: Callable[[aioredis.Redis], Awaitable[int]]) -> int:
        """A flush may scan many keys: no overall deadline, each command still bounded by the socket timeout."""
        try:
            return await call(self._redis())
        except (RedisError, OSError, TimeoutError) as exc:
            raise CacheUnavailable(f"{what}: {exc}") from exc

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
