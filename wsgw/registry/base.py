"""The registry interface: where connections live and how a push finds the node holding its socket.

A node keeps its own sockets in a local table (the gateway's); the registry answers for connections that
are NOT local — in the memory registry there are none, in the Redis one they live on other nodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class RegistryUnavailable(Exception):
    """The shared store cannot be reached now; callers answer 503/500 quickly instead of hanging."""


class OwnerTimeout(RegistryUnavailable):
    """The node holding the connection is alive but did not answer in time: the outcome is unknown (504)."""


@dataclass(slots=True)
class ConnectionRecord:
    """What any node can learn about a connection (the GetConnection answer, plus its owner)."""

    connection_id: str
    node_id: str        # the registry may change it: a node reaped while stalled re-joins under a new id
    connected_at_ms: int
    last_active_ms: int
    source_ip: str
    user_agent: str | None
    domain_name: str = ""                          # what a $disconnect event run on another node needs
    authorizer: dict[str, object] | None = None


class LocalNode(Protocol):
    """What a registry needs from the node it serves: reach its local sockets."""

    node_id: str

    def deliver_local(self, connection_id: str, data: bytes) -> bool:
        """Hand data to a local socket; False when it is not (or no longer) here."""
        ...

    def disconnect_local(self, connection_id: str) -> bool:
        """Close a local socket (1000), running $disconnect; False when it is not here."""
        ...

    def drop_local(self, connection_id: str) -> bool:
        """Close a local socket (1001) without running its $disconnect: another node already ran it."""
        ...

    def lookup_local(self, connection_id: str) -> ConnectionRecord | None: ...

    def broadcast_local(self, data: bytes) -> int:
        """Hand data to every local socket; how many took it."""
        ...

    def local_records(self) -> Iterable[ConnectionRecord]:
        """Every live local connection, for re-registration after the store lost them."""
        ...

    async def run_orphan_disconnect(self, record: ConnectionRecord) -> None:
        """Run $disconnect (1006) for a connection whose node died; the registry makes sure once."""
        ...


class Registry(ABC):
    """One small interface, one implementation per file (memory, redis)."""

    name: str

    @abstractmethod
    async def start(self, node: LocalNode) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def register(self, record: ConnectionRecord) -> None:
        """Make a connection reachable from every node; raise RegistryUnavailable when that cannot be done."""

    @abstractmethod
    async def deregister(self, connection_id: str) -> None: ...

    @abstractmethod
    def touch(self, connection_id: str, at_ms: int) -> None:
        """Note activity; no I/O here — implementations batch it."""

    @abstractmethod
    async def lookup(self, connection_id: str) -> ConnectionRecord | None:
        """A connection held by another node, or None."""

    @abstractmethod
    async def deliver(self, connection_id: str, data: bytes) -> bool:
        """Push to a connection held by another node; True only once that node handed it to the socket."""

    @abstractmethod
    async def disconnect(self, connection_id: str) -> bool:
        """Close a connection held by another node; False when it does not exist."""

    async def broadcast(self, data: bytes) -> int:
        """Push to every connection held by other nodes; how many sockets took it. None elsewhere: 0."""
        return 0

    def holds_lease(self, connection_id: str | None = None) -> bool:
        """This node may still act for that local socket (None: for all of them). False once its lease may have
        run out: a survivor may have reaped it (run its $disconnect), so writing to it or answering 200 would be
        a lie."""
        return True

    def health(self) -> dict[str, object]:
        return {"registry": self.name}
