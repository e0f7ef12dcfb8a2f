"""Groups on one node: which local connections are in which group, and the operations (join, leave, publish,
presence) wherever the connection or the members are.

The registry holds the shared view (who is a member, on which node, the history); this node keeps its own
members' sockets so that a publish reaching it is one encoded frame written to each of them. A join is always
carried out by the node holding the connection (it knows the socket is live), so no closed connection can be
added after it left all its groups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.gateway.connection import Connection
from wsgw.gateway.inspect import Watcher, group_event
from wsgw.gateway.local import LocalTable, encode_frame
from wsgw.group_config import GroupPolicy, GroupsConfig
from wsgw.membership import Membership
from wsgw.metrics import Metrics
from wsgw.registry import Registry
from wsgw.registry.base import Member, MemberPage

log = logging.getLogger("wsgw.gateway")

Buffered = tuple[int | None, bytes]     # (seq, encoded frame) held while a member's history is replayed


def envelope(group: str, seq: int | None, data: bytes) -> bytes:
    """`{"group", "seq", "data"}`: data embedded as JSON when it is JSON, else as a string."""
    try:
        value: Any = orjson.Fragment(data) if data and _is_json(data) else data.decode("utf-8")
    except UnicodeDecodeError:
        value = data.decode("utf-8", "replace")
    return orjson.dumps({"group": group, "seq": seq, "data": value})


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def member_of(conn: Connection, node_id: str) -> Member:
    authorizer = conn.info.authorizer or {}
    principal = authorizer.get("principalId")
    return Member(conn.info.connection_id, node_id, principal if isinstance(principal, str) else None,
                  conn.info.connected_at_ms)


class GroupTable:
    """This node's members: group → its local connections (insertion order), connection → its groups; and the
    members whose history is being replayed (live frames are held back for them until it is done)."""

    def __init__(self) -> None:
        self.index: Membership[Connection] = Membership()
        self.members = self.index.members          # group → its local connections (read by deliver)
        self.buffering: dict[tuple[str, str], list[Buffered]] = {}
        self.floors: dict[tuple[str, str], int] = {}     # replayed up to: a later live copy of these is a duplicate

    def add(self, group: str, conn: Connection) -> bool:
        return self.index.add(group, conn.id, conn, replace=False)

    def remove(self, group: str, connection_id: str) -> bool:
        if not self.index.remove(group, connection_id):
            return False
        self.floors.pop((group, connection_id), None)
        return True

    def remove_all(self, connection_id: str) -> list[str]:
        groups = self.index.groups_of(connection_id)
        for group in groups:
            self.remove(group, connection_id)
        return groups

    def deliver(self, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        """The frame (already encoded) to every local member but `exclude`; how many took it."""
        members = self.members.get(group)
        if not members:
            return 0
        sent = 0
        special = bool(self.buffering or self.floors)
        for connection_id, conn in members.items():
            if connection_id == exclude:
                continue
            if special:
                key = (group, connection_id)
                held = self.buffering.get(key)
                if held is not None:
                    held.append((seq, frame))
                    sent += 1
                    continue
                if seq is not None and seq <= self.floors.get(key, 0):
                    continue
            if conn.sink.send_encoded(frame):
                sent += 1
        return sent

    def memberships(self) -> Iterable[tuple[str, Connection]]:
        return [(group, conn) for group, members in self.members.items() for conn in members.values()]


class Groups:
    """The group operations of one node (the @groups paths, the pushers and relay routes all come here)."""

    def __init__(self, config: GroupsConfig, registry: Registry, local: LocalTable, metrics: Metrics,
                 epoch_ms: Callable[[], int], track: Callable[[asyncio.Task[None]], None]) -> None:
        self.config = config
        self.registry = registry
        self.local = local
        self.metrics = metrics
        self.epoch_ms = epoch_ms
        self.track = track
        self.table = GroupTable()
        # (event "join"/"leave", connection, group, reason, since) → call the $join/$leave route (set by Gateway)
        self.taps: dict[str, list[Watcher]] = {}      # group → inspectors tailing it (wsgw/gateway/inspect.py)
        self.member_route: Callable[[str, ConnectionInfo, str, str, int | None], None] | None = None

    def is_member(self, group: str, connection_id: str) -> bool:
        """A local connection's membership (relay routes: membership is the authorization)."""
        return group in self.table.index.of.get(connection_id, ())

    def local_groups_of(self, connection_id: str) -> list[str]:
        """The groups a local connection is in, sorted (the inspector's listing)."""
        return self.table.index.groups_of(connection_id)

    def local_counts(self) -> list[tuple[str, int]]:
        """Every group with members on this node and how many, by name (the inspector's listing)."""
        return sorted((group, len(members)) for group, members in self.table.members.items())

    def policy(self, group: str) -> GroupPolicy:
        return self.config.policy_for(group)

    # ----- join / leave, from wherever the request arrived ----------------------------------------------

    async def join(self, group: str, connection_id: str, since: int | None = None) -> dict[str, Any] | None:
        """Join a connection of any node; None when it does not exist. A join during the connection's $connect
        is held and takes effect as it opens, whichever node or worker the request reached (join_here)."""
        here = await self.join_here(group, connection_id, since)
        if here is not None:
            return here
        return await self.registry.join_remote(group, connection_id, since)

    async def join_here(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        """A join for a connection of this node: open (joined now) or still in its $connect (held until it
        opens); None when this node does not hold it."""
        if connection_id in self.local:
            return await self.join_local(group, connection_id, since)
        pending = self.local.connecting.get(connection_id)
        if pending is not None:
            pending.append((group, since))
            return {"joined": True, "pending": True}
        return None

    async def leave(self, group: str, connection_id: str) -> bool | None:
        """Leave for a connection of any node → whether it was a member; None when it does not exist."""
        here = await self.leave_here(group, connection_id)
        if here is not None:
            return here
        return await self.registry.leave_remote(group, connection_id)

    async def leave_here(self, group: str, connection_id: str) -> bool | None:
        """Leave for a connection of this node, open or in its $connect (a held join is dropped); None when this
        node does not hold it."""
        if connection_id in self.local:
            return await self.leave_local(group, connection_id)
        pending = self.local.connecting.get(connection_id)
        if pending is not None:
            before = len(pending)
            pending[:] = [(g, s) for g, s in pending if g != group]
            return len(pending) < before
        return None

    async def join_local(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        conn = self.local.get(connection_id)
        if conn is None:
            return None
        policy = self.policy(group)
        member = member_of(conn, self.local.node_id)
        if since is None:
            if self.table.add(group, conn):
                await self.registry.join(group, member)
                self._joined(group, policy, member, conn.info, None)
            return {"joined": True}
        if policy.history is None:
            if self.table.add(group, conn):
                await self.registry.join(group, member)
                self._joined(group, policy, member, conn.info, since)
            return self._recovered(conn, group, None)
        return await self._join_recovering(conn, group, policy, member, since)

    async def _join_recovering(self, conn: Connection, group: str, policy: GroupPolicy, member: Member,
                               since: int) -> dict[str, Any]:
        """Join, then replay what was published after `since` before any live frame, without duplicates.

        Live frames are held from the moment the local table has the member; the registry join comes before the
        history read, so a message either is in what the read returns or reaches this node live (the store
        numbers a message and reads its nodes in one step)."""
        self.table.buffering[(group, conn.id)] = []
        return await self._recover(conn, group, policy, member, since, self.table.add(group, conn))

    async def _recover(self, conn: Connection, group: str, policy: GroupPolicy, member: Member, since: int,
                       added: bool) -> dict[str, Any]:
        """The rest of a recovering join, once the member is in the table with its live frames held."""
        assert policy.history is not None
        key = (group, conn.id)
        try:
            if added:
                await self.registry.join(group, member)
            entries = await self.registry.history(group, since, policy.history, self.epoch_ms())
        except BaseException:
            for _, frame in self.table.buffering.pop(key, []):
                conn.sink.send_encoded(frame)
            raise
        held = self.table.buffering.pop(key, [])
        last = since
        if entries is not None:
            for seq, data in entries:
                conn.sink.send(envelope(group, seq, data) if policy.envelope else data)
                last = seq
            if last > self.table.floors.get(key, 0) and group in self.table.index.of.get(conn.id, ()):
                self.table.floors[key] = last
        for live_seq, frame in held:
            if entries is None or live_seq is None or live_seq > last:
                conn.sink.send_encoded(frame)
        if added:
            self._joined(group, policy, member, conn.info, since)
        return self._recovered(conn, group, None if entries is None else len(entries))

    def _recovered(self, conn: Connection, group: str, replayed: int | None) -> dict[str, Any]:
        """Tell the client (a frame) and the caller (the answer) whether its state is complete again."""
        outcome: dict[str, Any] = {"group": group, "recovered": replayed is not None}
        if replayed is not None:
            outcome["replayed"] = replayed
        conn.sink.send(orjson.dumps(outcome))
        self.metrics.count(self.metrics.group_recoveries, recovered=str(replayed is not None).lower())
        return {"joined": True, **outcome}

    async def leave_local(self, group: str, connection_id: str) -> bool | None:
        conn = self.local.get(connection_id)
        if conn is None:
            return None
        if not self.table.remove(group, connection_id):
            return False
        await self.registry.leave(group, connection_id)
        self._left(group, self.policy(group), member_of(conn, self.local.node_id), conn.info, "leave")
        return True

    async def admitted(self, conn: Connection, joins: list[tuple[str, int | None]]) -> None:
        """The joins a $connect handler asked for, applied as the connection opens: every group is in this node's
        table before the first await, so no frame (a publish, the client's own message) comes between them;
        the registry writes and recoveries follow."""
        member = member_of(conn, self.local.node_id)
        plain: list[tuple[str, int | None]] = []
        recovering: list[tuple[str, int, bool]] = []
        for group, since in dict(joins).items():
            if since is not None and self.policy(group).history is not None:
                self.table.buffering[(group, conn.id)] = []     # live frames held until its replay
                recovering.append((group, since, self.table.add(group, conn)))
            elif self.table.add(group, conn):
                plain.append((group, since))
        for group, since in plain:
            try:
                await self.registry.join(group, member)
                self._joined(group, self.policy(group), member, conn.info, since)
                if since is not None:
                    self._recovered(conn, group, None)
            except Exception as exc:
                log.warning("join of %s to %s asked during $connect failed: %r", conn.id, group, exc)
        for group, since, added in recovering:
            try:
                await self._recover(conn, group, self.policy(group), member, since, added)
            except Exception as exc:
                log.warning("join of %s to %s asked during $connect failed: %r", conn.id, group, exc)

    def closed(self, connection_id: str, drop: bool = False) -> None:
        """The connection left this node: out of every local group now, out of the registry's in the background
        (unless `drop`: a survivor already removed it and told the groups)."""
        conn = self._any_conn(connection_id)
        groups = self.table.remove_all(connection_id)
        if groups and not drop and conn is not None:
            self.track(asyncio.get_running_loop().create_task(self._leave_all(conn, groups)))

    def _any_conn(self, connection_id: str) -> Connection | None:
        for group in self.table.index.of.get(connection_id, ()):
            return self.table.members[group][connection_id]
        return None

    async def _leave_all(self, conn: Connection, groups: list[str]) -> None:
        try:
            await self.registry.leave_all(conn.id, groups)
        except Exception as exc:
            log.warning("leaving the groups of %s failed: %r", conn.id, exc)
        member = member_of(conn, self.local.node_id)
        for group in groups:
            self._left(group, self.policy(group), member, conn.info, "close")

    def orphaned(self, info: ConnectionInfo, groups: Iterable[str]) -> None:
        """A dead node's connection that this node reaped was removed from `groups`: the leave notices and
        $leave calls its own node can no longer make (reason "nodeDown")."""
        principal = (info.authorizer or {}).get("principalId")
        member = Member(info.connection_id, "", principal if isinstance(principal, str) else None,
                        info.connected_at_ms)
        for group in groups:
            self._left(group, self.policy(group), member, info, "nodeDown")

    # ----- publish ---------------------------------------------------------------------------------------

    async def publish(self, group: str, data: bytes, exclude: str | None = None) -> int:
        """Deliver one frame to every member on every node; how many sockets took it."""
        policy = self.policy(group)
        stamp = await self.registry.stamp(group, data, policy.history, self.epoch_ms())
        payload = envelope(group, stamp.seq, data) if policy.envelope else data
        # fenced like broadcast: a node whose lease lapsed may hold members a survivor already reaped
        local = self.table.deliver(group, encode_frame(payload), exclude, stamp.seq) \
            if self.registry.holds_lease() else 0
        if self.taps:
            self._copy(group, payload, stamp.seq)
        remote = await self.registry.fan_out(group, payload, exclude, stamp)
        self.metrics.count(self.metrics.group_publishes)
        self.metrics.sent_one.inc(local)
        self.metrics.group_messages.inc(local)
        return local + remote

    def publish_local(self, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        """Another node's publish: encode once, write to this node's members."""
        if group not in self.table.members:
            return 0
        sent = self.table.deliver(group, encode_frame(frame), exclude, seq)
        if self.taps:
            self._copy(group, frame, seq)
        self.metrics.sent_one.inc(sent)
        self.metrics.group_messages.inc(sent)
        return sent

    def _copy(self, group: str, payload: bytes, seq: int | None) -> None:
        """A frame of a group some inspector tails (what its members got, publishes of this node and others')."""
        watchers = self.taps.get(group)
        if watchers:
            event = group_event(group, payload, seq, self.epoch_ms())
            for watcher in watchers:
                watcher.put(event)

    def _joined(self, group: str, policy: GroupPolicy, member: Member, info: ConnectionInfo,
                since: int | None) -> None:
        if policy.presence:
            self._notice(group, "join", member, None)
        if policy.join_routes and self.member_route is not None:
            self.member_route("join", info, group, "join", since)

    def _left(self, group: str, policy: GroupPolicy, member: Member, info: ConnectionInfo, reason: str) -> None:
        if policy.presence:
            self._notice(group, "leave", member, reason)
        if policy.join_routes and self.member_route is not None:
            self.member_route("leave", info, group, reason, None)

    def _notice(self, group: str, event: str, member: Member, reason: str | None) -> None:
        notice: dict[str, Any] = {"group": group, "event": event, "connectionId": member.connection_id}
        if member.principal_id is not None:
            notice["principalId"] = member.principal_id
        if reason is not None:
            notice["reason"] = reason
        self.track(asyncio.get_running_loop().create_task(self._publish_notice(group, notice)))

    async def _publish_notice(self, group: str, notice: dict[str, Any]) -> None:
        """Presence notices are not numbered or kept: they describe the present, which presence queries show."""
        try:
            stamp = await self.registry.stamp(group, b"", None, self.epoch_ms())
            payload = orjson.dumps(notice)
            self.table.deliver(group, encode_frame(payload), notice["connectionId"], None)
            if self.taps:
                self._copy(group, payload, None)
            await self.registry.fan_out(group, payload, notice["connectionId"], stamp)
        except Exception as exc:
            log.warning("presence notice for %s failed: %r", group, exc)

    # ----- presence --------------------------------------------------------------------------------------

    async def presence(self, group: str, limit: int = 1000, token: str | None = None) -> MemberPage:
        return await self.registry.members(group, limit, token)

    def local_memberships(self) -> Iterable[tuple[str, Member]]:
        node_id = self.local.node_id
        return [(group, member_of(conn, node_id)) for group, conn in self.table.memberships()]
