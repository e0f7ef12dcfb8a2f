"""The in-memory registry: one process, so every connection is local and there is nothing else to find.

Groups live here too (one process is the whole truth): membership, and the bounded history of the groups
whose pattern asks for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from wsgw.group_config import History
from wsgw.membership import Membership
from wsgw.registry.base import ConnectionRecord, HistoryEntry, LocalNode, Member, MemberPage, Registry, Stamp


class GroupHistory:
    """One group's sequence and its last messages (seq, published at ms, body)."""

    __slots__ = ("entries", "top")

    def __init__(self) -> None:
        self.top = 0
        self.entries: deque[tuple[int, int, bytes]] = deque()


class MemoryRegistry(Registry):
    """The default: the node's own socket table is the whole truth."""

    name = "memory"

    def __init__(self) -> None:
        self.index: Membership[Member] = Membership()
        self.histories: dict[str, GroupHistory] = {}

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
