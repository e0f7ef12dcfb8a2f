"""Registries by URL scheme; adding one is a new module and one entry here."""

from __future__ import annotations

from wsgw.registry.base import ConnectionRecord, LocalNode, OwnerTimeout, Registry, RegistryUnavailable
from wsgw.registry.memory import MemoryRegistry


def open_registry(url: str | None) -> Registry:
    """`None` → memory; `redis://` / `rediss://` / `unix://` → Redis."""
    if not url:
        return MemoryRegistry()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from wsgw.registry.redis import RedisRegistry

        registry: Registry = RedisRegistry(url)
        return registry
    raise ValueError(f"--redis: '{url}' is not a redis:// URL")


__all__ = ["ConnectionRecord", "LocalNode", "MemoryRegistry", "OwnerTimeout", "Registry", "RegistryUnavailable",
           "open_registry"]
