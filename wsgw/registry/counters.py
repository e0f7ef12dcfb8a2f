"""Counters shared by the nodes that share a registry: token buckets and quota counts.

`MemoryCounters` keeps them in this process (one node; gone on restart). `RedisCounters` keeps them in Redis,
one key per bucket or quota period with an expiry, so every node takes from the same bucket and a quota
survives a node's restart. The bucket is refilled by Redis's own clock (`TIME` inside the script), so nodes
with skewed clocks still agree.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgw.registry.redis_link import RedisLink

# KEYS[1]: the bucket hash; ARGV: rate per second, burst. → 1 taken, 0 throttled.
_BUCKET = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'n')
local tokens = burst
if state[1] then
  local elapsed = math.max(0, now - tonumber(state[1])) / 1000000
  tokens = math.min(burst, tonumber(state[2]) + elapsed * rate)
end
local taken = 0
if tokens >= 1 then tokens = tokens - 1; taken = 1 end
redis.call('HSET', KEYS[1], 't', now, 'n', tostring(tokens))
local ttl = 60000
if rate > 0 then ttl = math.ceil((burst / rate) * 1000) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return taken
"""
# KEYS[1]: the period's counter; ARGV: limit, the period's end (epoch seconds). → the count, or -1 when spent.
_QUOTA = b"""
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return -1 end
used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return used
"""


class Counters(ABC):
    """Where buckets and quotas are counted; every method answers True when the request may go on."""

    @abstractmethod
    async def take(self, key: str, rate: float, burst: int) -> bool:
        """One token from bucket `key` (`rate` per second, at most `burst`), which starts full."""

    @abstractmethod
    async def spend(self, key: str, limit: int, period_end: int) -> bool:
        """Count one request against quota `key`, which resets at `period_end` (epoch seconds)."""


class MemoryCounters(Counters):
    """This node only; monotonic clock for buckets, wall clock for quota periods."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}          # key → (tokens, updated)
        self.quotas: dict[str, tuple[int, int]] = {}                # key → (used, period_end)

    async def take(self, key: str, rate: float, burst: int) -> bool:
        now = time.monotonic()
        tokens, updated = self.buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
        taken = tokens >= 1.0
        self.buckets[key] = (tokens - 1.0 if taken else tokens, now)
        return taken

    async def spend(self, key: str, limit: int, period_end: int) -> bool:
        used, end = self.quotas.get(key, (0, period_end))
        if end != period_end:
            used = 0
        if used >= limit:
            return False
        self.quotas[key] = (used + 1, period_end)
        return True


class RedisCounters(Counters):
    """Every node of the cluster counts in the same keys (`wsgw:{lim:<key>}`), through the registry's link."""

    def __init__(self, link: Callable[[], RedisLink], prefix: str = "wsgw") -> None:
        self.link = link              # the registry's link, made when it starts
        self.prefix = prefix

    async def take(self, key: str, rate: float, burst: int) -> bool:
        taken = await self.link().command(b"EVAL", _BUCKET, 1, f"{self.prefix}:{{lim:{key}}}", repr(rate), burst)
        return bool(taken)

    async def spend(self, key: str, limit: int, period_end: int) -> bool:
        used = await self.link().command(b"EVAL", _QUOTA, 1, f"{self.prefix}:{{lim:{key}}}:{period_end}", limit,
                                         period_end)
        return int(used) >= 0


__all__ = ["Counters", "MemoryCounters", "RedisCounters"]
