"""The Redis registry: many nodes share one view of who holds which connection; a push reaches any of them.

- register/deregister write the connection hash and the node's set; touch() only notes activity in memory,
  flushed to Redis once per tick (nothing on the message hot path touches Redis).
- deliver/lookup/disconnect ask the owning node over Pub/Sub and wait for its answer; this node answers the
  others' requests the same way (both sides: redis_rpc). Every Redis command is a Store method (redis_store).
- every tick a node refreshes its heartbeat key (TTL `node_ttl`); a survivor that finds a node's heartbeat gone
  claims that node (SET NX), pops its connections one by one (SPOP: each goes to exactly one survivor), deletes
  each hash (Lua, only if still owned by the dead node) and runs its $disconnect (1006) through the gateway.
- while Redis is unreachable, register/deliver raise RegistryUnavailable at once; when the link comes back
  the node re-registers its live connections (also after a Redis restart that lost everything).
- fencing: a node whose last good heartbeat is `node_ttl` old refuses new connections (a survivor may be reaping
  it). The reaper leaves a tombstone; a node that comes back and finds it re-joins under a new id, keeps the
  connections no survivor claimed yet (ADOPT, atomic per connection) and closes the claimed ones without a
  second $disconnect (`LocalNode.drop_local`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from wsgw.group_config import History
from wsgw.registry.base import (
    ConnectionRecord,
    HistoryEntry,
    LocalNode,
    Member,
    MemberPage,
    Registry,
    RegistryUnavailable,
    Stamp,
)
from wsgw.registry.batching import Batcher
from wsgw.registry.counters import Counters, RedisCounters
from wsgw.registry.redis_link import REDIS_ERRORS, RedisLink
from wsgw.registry.redis_rpc import Rpc
from wsgw.registry.redis_store import Keys, Store, record_from_fields
from wsgw.registry.redis_wire import RedisOptions

log = logging.getLogger("wsgw.registry.redis")

REAP_BATCH = 200              # orphan $disconnects run concurrently per batch
REAPER_CLAIM_MS = 30_000      # a reaper that dies mid-way lets another survivor take over after this
REREGISTER_CHUNK = 1000
TOMBSTONE_MS = 24 * 3600 * 1000   # how long a reaped node id stays fenced off (a node stopped longer re-registers)
UNSENT_KEPT = 100_000             # refused-before-writing ids awaiting the gateway's deregister call
FORMER_IDS_KEPT = 8               # ids a re-joined node still deletes its old connections under


class RedisRegistry(Registry):
    """Connections in Redis, pushes between nodes over (sharded) Pub/Sub, node liveness by heartbeat TTL."""

    name = "redis"

    def __init__(self, url: str) -> None:
        self.options = RedisOptions.from_url(url)
        self.keys = Keys(self.options.key_prefix)
        self.tick_seconds = min(1.0, self.options.node_ttl / 4)
        self._touched: dict[str, int] = {}
        self._unregistered: set[str] = set()       # deregistrations that could not reach Redis yet
        self._unsent: set[str] = set()             # registrations refused before any write
        self._ticker: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.orphans_reaped = 0
        self._registrations = Batcher(self._register_batch)
        self._deregistrations = Batcher(self._deregister_batch)
        self._beat_at = -1e9                      # monotonic send time of the last heartbeat that was not refused
        self._former_ids: list[str] = []          # ids this node had before it was reaped and re-joined
        self._adopt_from: str | None = None       # set while the connections of a reaped id are still to adopt
        self._unadopted: set[str] = set()         # ... and those connections: a survivor may own them now
        self.rejoins = 0
        self._principals: dict[str, str] = {}     # local connection id → principalId (its index entry to delete)
        self._unjoined: dict[str, Collection[str]] = {}   # leave_all calls that could not reach Redis yet
        self._leaves = Batcher(self._leave_batch)

    # ----- lifecycle -------------------------------------------------------------------------------

    async def start(self, node: LocalNode) -> None:
        self.node = node
        self.node_id = node.node_id
        self._base_id = node.node_id
        channel = self.keys.channel(self.node_id)
        self.link = RedisLink(self.options.url, channel, on_up=self._on_up)
        self.store = Store(self.link, self.keys)
        self.rpc = Rpc(self.link, self.store, channel, self.options.push_timeout, self.options.node_ttl, node)
        await self.link.start()
        if not self.link.up:
            log.warning("redis is unreachable at start (%s); retrying in the background", self.link.last_error)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def stop(self) -> None:
        """Leave cleanly: the node's keys go now rather than after the TTL (its connections were closed)."""
        for task in (self._ticker, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.link.up:
            with contextlib.suppress(RegistryUnavailable):
                await self._flush_unregistered()
                await self.store.leave(self.node_id)
        await self.link.stop()

    # ----- registration ----------------------------------------------------------------------------

    def fenced(self) -> bool:
        """No heartbeat got through for node_ttl: a survivor may be reaping this node, so admit nothing new."""
        return time.monotonic() - self._beat_at >= self.options.node_ttl

    def holds_lease(self, connection_id: str | None = None) -> bool:
        if self.fenced():
            return False
        return not self._unadopted if connection_id is None else connection_id not in self._unadopted

    async def register(self, record: ConnectionRecord) -> None:
        self._refuse_unsent([record])
        await self._registrations.submit(record)

    def _refuse_unsent(self, records: list[ConnectionRecord]) -> None:
        """Refuse before any I/O while fenced or down; remember the ids so their deregistration costs nothing
        (the gateway deregisters every refused registration, as one that failed after writing may have landed)."""
        if self.fenced() or not self.link.up:
            if len(self._unsent) > UNSENT_KEPT:
                self._unsent.clear()
            self._unsent.update(r.connection_id for r in records)
            reason = "missed its heartbeats for node_ttl" if self.link.up else "cannot reach redis"
            raise RegistryUnavailable(f"this node {reason}; refusing new connections")

    async def _register_batch(self, records: list[ConnectionRecord]) -> None:
        self._refuse_unsent(records)
        node_id = self.node_id
        await self.store.add_connections(records, node_id)
        principals = [(r.connection_id, p) for r in records if (p := principal_of(r)) is not None]
        if principals:
            await self.store.add_principals(principals)
            self._principals.update(principals)
        if self.node_id != node_id:              # re-joined under a new id while this batch was on its way
            ids = [r.connection_id for r in records]
            adopted = await self._adopt(ids, node_id)
            await self.store.unlist(ids, node_id)
            if len(adopted) < len(records):
                raise RegistryUnavailable("this node was reaped while registering; refused")

    async def deregister(self, connection_id: str) -> None:
        """Never raises: while Redis is away the id is kept and removed once the link is back."""
        self._touched.pop(connection_id, None)
        if connection_id in self._unsent:        # refused before anything was written
            self._unsent.discard(connection_id)
            return
        if not self.link.up:
            self._unregistered.add(connection_id)
            return
        try:
            await self._deregistrations.submit(connection_id)
        except RegistryUnavailable:
            self._unregistered.add(connection_id)

    async def _deregister_batch(self, connection_ids: list[str]) -> None:
        await self.store.remove_connections(connection_ids, self.node_id, self._former_ids)
        principals = [(cid, p) for cid in connection_ids if (p := self._principals.pop(cid, None)) is not None]
        await self.store.remove_principals(principals)

    def touch(self, connection_id: str, at_ms: int) -> None:
        self._touched[connection_id] = at_ms

    # ----- operations on connections held by other nodes -------------------------------------------

    async def lookup(self, connection_id: str) -> ConnectionRecord | None:
        fields = await self.rpc.lookup(connection_id)
        return None if fields is None else record_from_fields(connection_id, fields)

    async def deliver(self, connection_id: str, data: bytes) -> bool:
        return await self.rpc.deliver(connection_id, data)

    async def disconnect(self, connection_id: str) -> bool:
        return await self.rpc.disconnect(connection_id)

    async def broadcast(self, data: bytes) -> int:
        """Every other live node writes the frame to its own sockets and says how many took it."""
        others = [n for n in await self.store.node_ids() if n != self.node_id]
        return sum(await asyncio.gather(*(self.rpc.broadcast(n, data) for n in others)))

    # ----- groups ------------------------------------------------------------------------------------------

    async def join(self, group: str, member: Member) -> None:
        await self.store.join(group, replace(member, node_id=self.node_id))

    async def leave(self, group: str, connection_id: str) -> bool:
        return await self.store.leave_group(group, connection_id)

    async def leave_all(self, connection_id: str, groups: Collection[str]) -> None:
        """Never raises: while Redis is away the memberships are kept and removed once the link is back."""
        if not groups:
            return
        if not self.link.up:
            self._unjoined[connection_id] = groups
            return
        try:
            await self._leaves.submit((connection_id, groups))
        except RegistryUnavailable:
            self._unjoined[connection_id] = groups

    async def _leave_batch(self, items: list[tuple[str, Collection[str]]]) -> None:
        await self.store.leave_groups(dict(items))

    async def _flush_unjoined(self) -> None:
        if not self._unjoined:
            return
        pending, self._unjoined = self._unjoined, {}
        try:
            await self.store.leave_groups(pending)
        except RegistryUnavailable:
            self._unjoined.update(pending)

    async def members(self, group: str, limit: int, token: str | None = None) -> MemberPage:
        return await self.store.members(group, limit, token)

    async def groups_of(self, connection_id: str) -> list[str]:
        return (await self.store.groups_of([connection_id]))[connection_id]

    async def stamp(self, group: str, data: bytes, history: History | None, now_ms: int) -> Stamp:
        return await self.store.stamp(group, data, history, now_ms)

    async def history(self, group: str, since: int, history: History, now_ms: int) -> list[HistoryEntry] | None:
        return await self.store.history(group, since, history, now_ms)

    async def fan_out(self, group: str, frame: bytes, exclude: str | None, stamp: Stamp) -> int:
        """One request per other node holding members: the frame crosses Redis once per node, not per member."""
        others = [n for n in stamp.nodes or () if n != self.node_id]
        if not others:
            return 0
        counts = await asyncio.gather(*(self.rpc.publish(n, group, frame, exclude, stamp.seq) for n in others))
        return sum(counts)

    async def join_remote(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        return await self.rpc.join(group, connection_id, since)

    async def leave_remote(self, group: str, connection_id: str) -> bool | None:
        return await self.rpc.leave(group, connection_id)

    async def connections_of(self, principal_id: str) -> list[ConnectionRecord]:
        ids = [cid for cid in await self.store.principal_connections(principal_id)
               if self.node.lookup_local(cid) is None]
        return await self.store.records(ids)

    # ----- heartbeat, batched activity, re-registration ---------------------------------------------

    async def _on_up(self) -> None:
        """The link (re)connected: announce the node and re-register every live local connection."""
        await self._heartbeat(always_reregister=True)
        await self._flush_unregistered()
        await self._flush_unjoined()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            if not self.link.up:
                continue
            try:
                await self._heartbeat()
                if not self.link.up:             # re-joining under a new id
                    continue
                await self._flush_touches()
                await self._flush_unregistered()
                await self._flush_unjoined()
                if time.monotonic() - self.link.up_since >= self.options.node_ttl and (
                        self._reaper is None or self._reaper.done()):
                    self._reaper = asyncio.get_running_loop().create_task(self._reap_dead_nodes())
            except REDIS_ERRORS as exc:
                self.link.mark_down(exc)
            except RegistryUnavailable:
                pass
            except Exception:
                log.exception("registry tick failed")

    async def _heartbeat(self, always_reregister: bool = False) -> None:
        node_id = self.node_id
        now_ms = int(time.time() * 1000)
        sent = time.monotonic()
        state = await self.store.heartbeat(node_id, now_ms, int(self.options.node_ttl * 1000))
        if self.roundtrip_observer is not None:
            self.roundtrip_observer(time.monotonic() - sent)
        if node_id != self.node_id:              # a concurrent heartbeat already started the re-join
            return
        if state < 0:
            self._begin_rejoin()
            return
        self._beat_at = max(self._beat_at, sent)   # the lease holds again: admit (adoptions stay fenced apart)
        await self.store.announce(node_id, now_ms)     # not for a reaped id: survivors would re-reap it
        if state == 0 or always_reregister:
            if state == 0 and not always_reregister:
                log.warning("node %s had no heartbeat key in redis (expired or lost): re-registering", node_id)
            await self._reregister()

    async def _reregister(self) -> None:
        if self._adopt_from is not None:         # after a re-join: take over only what no survivor claimed
            await self._adopt_local(self._adopt_from)
            return
        node_id = self.node_id
        records = list(self.node.local_records())
        for start in range(0, len(records), REREGISTER_CHUNK):
            await self.store.add_connections(records[start:start + REREGISTER_CHUNK], node_id)
        principals = [(r.connection_id, p) for r in records if (p := principal_of(r)) is not None]
        await self.store.add_principals(principals)
        await self._rejoin_groups()
        gone = [r.connection_id for r in records if self.node.lookup_local(r.connection_id) is None]
        if gone:                                 # closed while we re-registered: do not leave them behind
            await self.store.remove_connections(gone, self.node_id, self._former_ids)
        if records:
            log.info("re-registered %d connections of node %s", len(records), node_id)

    async def _rejoin_groups(self) -> None:
        """Write every local membership again under the current node id (after Redis lost them, or a re-join)."""
        memberships = [(group, Member(m.connection_id, self.node_id, m.principal_id, m.connected_at_ms))
                       for group, m in self.node.local_memberships()]
        for start in range(0, len(memberships), REREGISTER_CHUNK):
            await self.store.join_many(memberships[start:start + REREGISTER_CHUNK])

    # ----- coming back after being reaped --------------------------------------------------------------

    def _begin_rejoin(self) -> None:
        """Our heartbeat found a tombstone: a survivor reaped this node id (ran $disconnect for what it claimed).
        Take a new id (new keys, new channel: the link resubscribes) and adopt the survivors' leftovers on up."""
        old = self.node_id
        self.rejoins += 1
        new = f"{self._base_id}.r{self.rejoins}"
        self._former_ids = [old, *self._former_ids][:FORMER_IDS_KEPT]
        if self._adopt_from is None:             # reaped again before adopting: the first id still owns them
            self._adopt_from = old
        self._unadopted |= {r.connection_id for r in self.node.local_records()}
        self.node_id = new
        self.node.node_id = new
        channel = self.keys.channel(new)
        self.rpc.reply_channel = channel
        log.warning("node %s was reaped as dead while it could not heartbeat; re-joining as %s", old, new)
        self.link.retarget(channel)

    async def _adopt(self, ids: list[str], old: str) -> set[str]:
        """ADOPT each connection from `old` to the current id; → the ids now ours."""
        adopted: set[str] = set()
        for start in range(0, len(ids), REREGISTER_CHUNK):
            adopted |= await self.store.adopt(ids[start:start + REREGISTER_CHUNK], old, self.node_id)
        return adopted

    async def _adopt_local(self, old: str) -> None:
        """Keep the local connections no survivor claimed; close the claimed ones without a second $disconnect."""
        ids = [r.connection_id for r in self.node.local_records() if r.connection_id in self._unadopted]
        adopted = await self._adopt(ids, old) if ids else set()
        dropped = [cid for cid in ids if cid not in adopted and self.node.drop_local(cid)]
        self._unadopted = set()                  # the kept ones are this id's now, the others are closed
        gone = [cid for cid in adopted if self.node.lookup_local(cid) is None]
        if gone:                                 # closed while we adopted: do not leave them behind
            await self.store.remove_connections(gone, self.node_id, self._former_ids)
        await self.store.forget_ids(self._former_ids)
        await self._rejoin_groups()
        self._adopt_from = None
        log.warning("node %s (was %s): kept %d connections, closed %d whose $disconnect a survivor ran",
                    self.node_id, old, len(adopted), len(dropped))

    async def _flush_touches(self) -> None:
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        await self.store.touch(touched, self.node_id)

    async def _flush_unregistered(self) -> None:
        if not self._unregistered:
            return
        pending, self._unregistered = list(self._unregistered), set()
        try:
            await self.store.remove_connections(pending, self.node_id, self._former_ids)
        except RegistryUnavailable:
            self._unregistered.update(pending)

    # ----- dead nodes ------------------------------------------------------------------------------

    async def _reap_dead_nodes(self) -> None:
        """Find nodes whose heartbeat expired and take over their connections' $disconnect."""
        try:
            others = [n for n in await self.store.node_ids() if n != self.node_id and n not in self._former_ids]
            if not others:
                return
            alive = await self.store.alive_each(others)
            for node_id, is_alive in zip(others, alive, strict=True):
                if not is_alive:
                    await self._reap(node_id)
        except RegistryUnavailable:
            return
        except Exception:
            log.exception("reaping dead nodes failed")

    async def _reap(self, dead: str) -> None:
        if not await self.store.claim_node(dead, self.node_id, REAPER_CLAIM_MS, TOMBSTONE_MS):
            return
        log.warning("node %s stopped heartbeating: running $disconnect for its connections", dead)
        total = 0
        while True:
            ids = await self.store.pop_connections(dead, REAP_BATCH)
            if not ids:
                break
            records = await self.store.claim_orphans(ids, dead)
            for record in records:
                self.rpc.forget(record.connection_id)
            claimed = [r.connection_id for r in records]
            left: dict[str, list[str]] = {}
            if claimed:                          # no ghost members: out of every group before $disconnect runs
                left = await self.store.groups_of(claimed)
                await self.store.leave_groups(left)
                await self.store.remove_principals(
                    [(r.connection_id, p) for r in records if (p := principal_of(r)) is not None])
            await asyncio.gather(*(self.node.run_orphan_disconnect(r, left.get(r.connection_id, ()))
                                   for r in records))
            total += len(records)
            await self.store.extend_claim(dead, REAPER_CLAIM_MS)
        self.orphans_reaped += total
        await self.store.release_node(dead)
        log.warning("node %s: $disconnect ran for %d orphaned connections", dead, total)

    def counters(self) -> Counters:
        found: Counters | None = getattr(self, "_counters", None)
        if found is None:
            found = RedisCounters(lambda: self.link, self.options.key_prefix)
            self._counters = found
        return found

    def health(self) -> dict[str, object]:
        return {"registry": self.name, "redis": "up" if self.link.up else "down",
                "redisMode": "cluster" if self.link.cluster else "single"}


def principal_of(record: ConnectionRecord) -> str | None:
    principal = (record.authorizer or {}).get("principalId")
    return principal if isinstance(principal, str) and principal else None
