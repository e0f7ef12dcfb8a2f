"""The in-memory registry: one process, so every connection is in one of the process's gateways.

A process serving several stages or versions of one API runs one gateway per (stage, version), all sharing
one `MemoryHub`: a push, a lookup or a broadcast that its own gateway cannot answer is asked of the other
gateways on the hub, as the Redis registry asks other nodes. Alone (the default), a hub has one node.

Groups live here too (one process is the whole truth): membership, and the bounded history of the groups
whose pattern asks for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Any

from wsgw.group_config import History
from wsgw.membership import Membership
from wsgw.registry.base import ConnectionRecord, HistoryEntry, LocalNode, Member, MemberPage, Registry, Stamp


class GroupHistory:
    """One group's sequence and its last messages (seq, published at ms, body)."""

    __slots__ = ("entries", "top")

    def __init__(self) -> None:
        self.top = 0
        self.entries: deque[tuple[int, int, bytes]] = deque()


class MemoryHub:
    """What the gateways of one API in one process share: each other, and the group state."""

    def __init__(self) -> None:
        self.nodes: list[LocalNode] = []
        self.index: Membership[Member] = Membership()
        self.histories: dict[str, GroupHistory] = {}


class MemoryRegistry(Registry):
    """The default: the node's own socket table (and its hub's other gateways) is the whole truth."""

    name = "memory"

    def __init__(self, hub: MemoryHub | None = None) -> None:
        self.hub = hub or MemoryHub()
        self.index = self.hub.index
        self.histories = self.hub.histories
        self.node: LocalNode | None = None

    def _others(self) -> list[LocalNode]:
        return [n for n in self.hub.nodes if n is not self.node]

    async def start(self, node: LocalNode) -> None:
        self.node = node
        self.hub.nodes.append(node)

    async def stop(self) -> None:
        if self.node in self.hub.nodes:
            self.hub.nodes.remove(self.node)

    async def register(self, record: ConnectionRecord) -> None:
        return None

    async def deregister(self, connection_id: str) -> None:
        return None

    def touch(self, connection_id: str, at_ms: int) -> None:
        return None

    async def lookup(self, connection_id: str) -> ConnectionRecord | None:
        for node in self._others():
            record = node.lookup_local(connection_id)
            if record is not None:
                return record
        return None

    async def deliver(self, connection_id: str, data: bytes) -> bool:
        return any(node.deliver_local(connection_id, data) for node in self._others())

    async def disconnect(self, connection_id: str) -> bool:
        return any(node.disconnect_local(connection_id) for node in self._others())

    async def broadcast(self, data: bytes) -> int:
        return sum(node.broadcast_local(data) for node in self._others())

    async def fan_out(self, group: str, frame: bytes, exclude: str | None, stamp: Stamp) -> int:
        return sum(node.publish_local(group, frame, exclude, stamp.seq) for node in self._others())

    async def join_remote(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        for node in self._others():
            answer = await node.join_local(group, connection_id, since)
            if answer is not None:
                return answer
        return None

    async def leave_remote(self, group: str, connection_id: str) -> bool | None:
        for node in self._others():
            answer = await node.leave_local(group, connection_id)
            if answer is not None:
                return answer
        return None

    async def connections_of(self, principal_id: str) -> list[ConnectionRecord]:
        return [record for node in self._others() for record in node.local_records()
                if (record.authorizer or {}).get("principalId") == principal_id]

    # ----- groups ----------------------------------------------------------------------------------------

    async def join(self, group: str, member: Member) -> None:
        self.index.add(group, member.connection_id, member)

    async def leave(self, group: str, connection_id: str) -> bool:
        return self.index.remove(group, connection_id)

    async def leave_all(self, connection_id: str, groups: Collection[str]) -> None:
        for group in self.index.groups_of(connection_id) or groups:
            self.index.remove(group, connection_id)

    async def members(self, group: str, limit: int, token: str | None = None) -> MemberPage:
        members = list(self.index.of_group(group).values())
        start = int(token) if token and token.isdigit() else 0
        end = start + limit
        return MemberPage(len(members), members[start:end], str(end) if end < len(members) else None)

    async def groups_of(self, connection_id: str) -> list[str]:
        return self.index.groups_of(connection_id)

    async def stamp(self, group: str, data: bytes, history: History | None, now_ms: int) -> Stamp:
        if history is None:
            return Stamp(None, None)
        kept = self.histories.setdefault(group, GroupHistory())
        self._expire(kept, history, now_ms)
        kept.top += 1
        kept.entries.append((kept.top, now_ms, data))
        while len(kept.entries) > history.size:
            kept.entries.popleft()
        return Stamp(kept.top, None)

    async def history(self, group: str, since: int, history: History, now_ms: int) -> list[HistoryEntry] | None:
        kept = self.histories.get(group)
        top = 0 if kept is None else kept.top
        if since > top:
            return None                          # the client saw a sequence this history never had
        if since == top:
            return []
        assert kept is not None
        self._expire(kept, history, now_ms)
        later = [(seq, data) for seq, _, data in kept.entries if seq > since]
        if not later or later[0][0] != since + 1:
            return None                          # trimmed or expired past `since`
        return later

    @staticmethod
    def _expire(kept: GroupHistory, history: History, now_ms: int) -> None:
        oldest = now_ms - history.ttl_seconds * 1000
        while kept.entries and kept.entries[0][1] < oldest:
            kept.entries.popleft()
