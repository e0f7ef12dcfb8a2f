"""Response caches (stage caching of REST answers and WebSocket route responses): the interface, its stores,
and `open_cache` picking one; `stage.py` is what the fronts use (single flight, counting)."""

from __future__ import annotations

from wsgw.cache.base import CachedResponse, CacheNamespace, CacheUnavailable, ResponseCache
from wsgw.cache.memory import MemoryResponseCache
from wsgw.cache.redis import RedisResponseCache

#: A store name (`caching.store`) → its class.
CACHE_STORES: dict[str, type[ResponseCache]] = {"memory": MemoryResponseCache, "redis": RedisResponseCache}


def open_cache(store: str, namespace: CacheNamespace, *, max_bytes: int, redis_url: str | None) -> ResponseCache:
    """The stage's store: `auto` is Redis when the node runs on Redis (shared by every node), else memory."""
    if store == "auto":
        store = "redis" if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")) else "memory"
    return CACHE_STORES[store].open(namespace, max_bytes=max_bytes, redis_url=redis_url)


__all__ = ["CACHE_STORES", "CacheNamespace", "CacheUnavailable", "CachedResponse", "MemoryResponseCache",
           "RedisResponseCache", "ResponseCache", "open_cache"]
