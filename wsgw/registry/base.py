"""The registry interface: where connections live and how a push finds the node holding its socket.

A node keeps its own sockets in a local table (the gateway's); the registry answers for connections that
are NOT local — in the memory registry there are none, in the Redis one they live on other nodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wsgw.group_config import History
from wsgw.registry.counters import Counters, MemoryCounters


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
    # the deployment serving it ("api/stage/version[/canary]"): a survivor runs an orphan's $disconnect on that
    # deployment's code, never on another version's; "" from nodes that did not record it
    deployment: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in one group, as presence reports it (and the node that holds its socket)."""

    connection_id: str
    node_id: str
    principal_id: str | None
    connected_at_ms: int


@dataclass(slots=True)
class MemberPage:
    """One page of a group's presence: the total count, some members, and the token for the next page."""

    count: int
    members: list[Member] = field(default_factory=list)
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class Stamp:
    """A publish as the store recorded it: its sequence number (history groups only) and the nodes that hold
    members of the group (None: the registry knows no other node, so there is nobody else to ask)."""

    seq: int | None
    nodes: list[str] | None


HistoryEntry = tuple[int, bytes]      # (seq, the published body)


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

    async def run_orphan_disconnect(self, record: ConnectionRecord, groups: Collection[str] = ()) -> None:
        """Run $disconnect (1006) for a connection whose node died; the registry makes sure once. `groups`: the
        groups the registry removed it from (the node tells their members)."""
        ...

    async def join_local(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        """Add a local connection to a group (replaying history after `since`), or hold the join while its
        $connect runs here; None when it is not here."""
        ...

    async def leave_local(self, group: str, connection_id: str) -> bool | None:
        """Take a local connection out of a group (False: it was not a member); None when it is not here."""
        ...

    def publish_local(self, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        """Hand an already-built frame to every local member of the group but `exclude`; how many took it."""
        ...

    def local_memberships(self) -> Iterable[tuple[str, Member]]:
        """Every (group, member) of this node's connections, for re-registration after the store lost them."""
        ...

    async def publish_group(self, group: str, data: bytes, exclude: str | None) -> int:
        """Publish to a group on behalf of a caller without the API's settings (a pusher); sockets reached."""
        ...


class Registry(ABC):
    """One small interface, one implementation per file (memory, redis)."""

    #: Told the round trip (seconds) of each heartbeat to a shared store; the node's metrics set it.
    roundtrip_observer: Callable[[float], None] | None = None

    name: str
    _counters: Counters

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

    # ----- groups: the shared view of membership; the node keeps its own members' sockets -------------------

    @abstractmethod
    async def join(self, group: str, member: Member) -> None:
        """Record a member held by THIS node (the node checked it is live); idempotent."""

    @abstractmethod
    async def leave(self, group: str, connection_id: str) -> bool:
        """Remove one membership; False when it was not there."""

    @abstractmethod
    async def leave_all(self, connection_id: str, groups: Collection[str]) -> None:
        """A connection of this node closed: remove it from every group at once. Never raises."""

    @abstractmethod
    async def members(self, group: str, limit: int, token: str | None = None) -> MemberPage:
        """Presence: the live members on every node, `limit` at a time (`token` from the previous page)."""

    @abstractmethod
    async def groups_of(self, connection_id: str) -> list[str]:
        """The groups a connection (of any node) is in."""

    @abstractmethod
    async def stamp(self, group: str, data: bytes, history: History | None, now_ms: int) -> Stamp:
        """Record a publish before it is fanned out: with history, append it and number it."""

    @abstractmethod
    async def history(self, group: str, since: int, history: History, now_ms: int) -> list[HistoryEntry] | None:
        """Every message published after `since`, in order; None when the history no longer reaches back."""

    async def fan_out(self, group: str, frame: bytes, exclude: str | None, stamp: Stamp) -> int:
        """Deliver to the group's members on the OTHER nodes named by the stamp; how many sockets took it."""
        return 0

    async def join_remote(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        """Join for a connection held by another node (it joins it itself); None when it does not exist."""
        return None

    async def leave_remote(self, group: str, connection_id: str) -> bool | None:
        """Leave for a connection held by another node; None when it does not exist."""
        return None

    async def connections_of(self, principal_id: str) -> list[ConnectionRecord]:
        """The connections of one principal held by OTHER nodes (the node adds its own)."""
        return []

    def health(self) -> dict[str, object]:
        return {"registry": self.name}

    def counters(self) -> Counters:
        """Where throttles and quotas that hold across nodes are counted (this node only, unless overridden)."""
        found: Counters | None = getattr(self, "_counters", None)
        if found is None:
            found = MemoryCounters()
            self._counters = found
        return found
