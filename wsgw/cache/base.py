"""The response cache interface: one store of a deployment's (API, stage, version) cached REST answers.

A store never decides what is cached (wsgw/rest/caching.py does); it keeps opaque keys and `CachedResponse`s
for a TTL, bounded by bytes, and answers `CacheUnavailable` when it cannot be reached, so the caller serves the
request uncached instead of failing it. Backends: `memory.py` (this process, LRU by bytes), `redis.py` (shared
by every node). `CACHE_STORES` in `__init__.py` maps a store name to its class.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass

import orjson

__all__ = ["CacheNamespace", "CacheUnavailable", "CachedResponse", "ResponseCache"]


class CacheUnavailable(Exception):
    """The store could not answer (Redis down, timed out): serve the request as if nothing were cached."""


@dataclass(frozen=True, slots=True)
class CacheNamespace:
    """Whose entries these are: caches of different APIs, stages and versions never see each other's keys."""

    api: str
    stage: str
    version: str

    @property
    def stage_prefix(self) -> str:
        """What every version of one stage shares (a stage flush removes them all)."""
        return f"{self.api}:{self.stage}:"

    @property
    def prefix(self) -> str:
        return f"{self.stage_prefix}{self.version}:"


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """An integration's answer as kept: status, header lines, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def size(self) -> int:
        """What the entry costs against the store's byte bound (body, headers and a fixed overhead)."""
        return len(self.body) + sum(len(k) + len(v) + 4 for k, v in self.headers) + 64

    def encode(self) -> bytes:
        return orjson.dumps({"s": self.status, "h": [list(pair) for pair in self.headers],
                             "b": base64.b64encode(self.body).decode("ascii")})

    @classmethod
    def decode(cls, raw: bytes) -> CachedResponse | None:
        """The stored entry, or None for bytes that are not one (a foreign or damaged value is a miss)."""
        try:
            data = orjson.loads(raw)
            headers = tuple((str(k), str(v)) for k, v in data["h"])
            return cls(int(data["s"]), headers, base64.b64decode(data["b"], validate=True))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
            return None


class ResponseCache(ABC):
    """One deployment's cached answers. Keys are short opaque strings (wsgw/cache/keys.py hashes them)."""

    store_name: str = ""

    def __init__(self, namespace: CacheNamespace) -> None:
        self.namespace = namespace
        self.evictions = 0            # entries dropped to stay within the byte bound (memory only)

    @classmethod
    @abstractmethod
    def open(cls, namespace: CacheNamespace, *, max_bytes: int, redis_url: str | None) -> ResponseCache:
        """Make the store for a deployment (no I/O: a connection, if any, is opened at first use);
        ValueError naming what is missing."""

    @abstractmethod
    async def get(self, key: str) -> CachedResponse | None:
        """The live entry, or None; CacheUnavailable when the store cannot answer."""

    @abstractmethod
    async def put(self, key: str, value: CachedResponse, ttl_seconds: float) -> None:
        """Keep `value` for `ttl_seconds`; CacheUnavailable when the store cannot take it."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget one entry (an authorized `Cache-Control: max-age=0` refreshes it)."""

    @abstractmethod
    async def flush_stage(self) -> int:
        """Forget every entry of this stage (every version, as AWS's FlushStageCache); how many were removed."""

    async def try_lock(self, key: str, ttl_seconds: float) -> bool:
        """Claim the right to fill `key` (so that nodes sharing the store call the integration once per key);
        False when another holder has it. A store only one process sees needs none: True."""
        return True

    async def unlock(self, key: str) -> None:
        """Give up a claim `try_lock` granted (it also lapses after its TTL)."""
        return None

    async def locked(self, key: str) -> bool:
        """Whether someone holds the claim on `key`."""
        return False

    async def close(self) -> None:
        return None
