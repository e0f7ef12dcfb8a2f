"""The in-memory registry: one process, so every connection is local and there is nothing else to find."""

from __future__ import annotations

from wsgw.registry.base import ConnectionRecord, LocalNode, Registry


class MemoryRegistry(Registry):
    """The default: the node's own socket table is the whole truth."""

    name = "memory"

    async def start(self, node: LocalNode) -> None:
        self.node = node

    async def stop(self) -> None:
        return None

    async def register(self, record: ConnectionRecord) -> None:
        return None

    async def deregister(self, connection_id: str) -> None:
        return None

    def touch(self, connection_id: str, at_ms: int) -> None:
        return None

    async def lookup(self, connection_id: str) -> ConnectionRecord | None:
        return None

    async def deliver(self, connection_id: str, data: bytes) -> bool:
        return False

    async def disconnect(self, connection_id: str) -> bool:
        return False
