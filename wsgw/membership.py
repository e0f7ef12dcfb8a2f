"""Who is in which group, both ways: the one in-process index the memory registry and a node's group table share.

Pure (no I/O): group → {connection id: value} in insertion order, and connection id → its groups; empty entries
are dropped so an index of departed members holds nothing.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class Membership(Generic[V]):
    """A two-way membership index; `V` is what is kept per member (a live connection, or a presence record)."""

    __slots__ = ("members", "of")

    def __init__(self) -> None:
        self.members: dict[str, dict[str, V]] = {}
        self.of: dict[str, set[str]] = {}

    def add(self, group: str, connection_id: str, value: V, *, replace: bool = True) -> bool:
        """Enter a member; False if it was already there (its value is replaced only with `replace`)."""
        members = self.members.setdefault(group, {})
        known = connection_id in members
        if not known or replace:
            members[connection_id] = value
        self.of.setdefault(connection_id, set()).add(group)
        return not known

    def remove(self, group: str, connection_id: str) -> bool:
        """Take a member out; False if it was not there."""
        members = self.members.get(group)
        if members is None or members.pop(connection_id, None) is None:
            return False
        if not members:
            del self.members[group]
        groups = self.of.get(connection_id)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.of[connection_id]
        return True

    def groups_of(self, connection_id: str) -> list[str]:
        """The connection's groups, sorted."""
        return sorted(self.of.get(connection_id, ()))

    def of_group(self, group: str) -> dict[str, V]:
        """The group's members by connection id (empty for an unknown group; do not mutate)."""
        return self.members.get(group, {})
