"""Every command the Redis registry sends, in one place: the key layout, the connection hash, the Lua scripts,
and one method per thing done (add connections, heartbeat, claim a dead node...), all through RedisLink.

Every key carries a hash tag so Redis Cluster works and no command spans two slots: one tag per connection
(`wsgw:{<connectionId>}:conn`) and one per node (`wsgw:{n:<nodeId>}:alive|conns|reaper|reaped|rx`, the last being
the node's Pub/Sub channel, so a sharded channel lives on the same shard as the node's keys).
Replies come back as bytes from either transport; the methods here turn them into str, int and bool.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from wsgw.group_config import History
from wsgw.registry.base import ConnectionRecord, HistoryEntry, Member, MemberPage, Stamp
from wsgw.registry.redis_link import Command, RedisLink

SEQ_KEPT_MS = 24 * 3600 * 1000    # a group's sequence outlives its history: a late `since` is then refused, not
                                  # mistaken for a sequence that restarted from 1


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Keys:
    """The key and channel names under one prefix."""

    prefix: str

    def conn(self, connection_id: str) -> str:
        return f"{self.prefix}:{{{connection_id}}}:conn"

    def alive(self, node_id: str) -> str:
        return f"{self.prefix}:{{n:{node_id}}}:alive"

    def conns(self, node_id: str) -> str:
        return f"{self.prefix}:{{n:{node_id}}}:conns"

    def reaper(self, node_id: str) -> str:
        return f"{self.prefix}:{{n:{node_id}}}:reaper"

    def tombstone(self, node_id: str) -> str:
        """Set by the survivor that reaped the node: the node, if it comes back, must not re-register."""
        return f"{self.prefix}:{{n:{node_id}}}:reaped"

    def channel(self, node_id: str) -> str:
        return f"{self.prefix}:{{n:{node_id}}}:rx"

    def conn_groups(self, connection_id: str) -> str:
        """The groups a connection is in (its slot: what a reaper reads right after claiming the connection)."""
        return f"{self.prefix}:{{{connection_id}}}:groups"

    def members(self, group: str) -> str:
        """connectionId → `node|connectedAt|principalId`: presence, and whose node a member is on."""
        return f"{self.prefix}:{{g:{group}}}:members"

    def interest(self, group: str) -> str:
        """node → how many members it holds: the nodes a publish goes to."""
        return f"{self.prefix}:{{g:{group}}}:nodes"

    def history(self, group: str) -> str:
        return f"{self.prefix}:{{g:{group}}}:hist"

    def seq(self, group: str) -> str:
        return f"{self.prefix}:{{g:{group}}}:seq"

    def principal(self, principal_id: str) -> str:
        return f"{self.prefix}:{{p:{principal_id}}}:conns"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"


# ----- the connection hash ------------------------------------------------------------------------------

def record_fields(record: ConnectionRecord) -> dict[str, str]:
    """The conn hash: what GetConnection and an orphan $disconnect need, plus the owner."""
    fields = {"node": record.node_id, "connectedAt": str(record.connected_at_ms),
              "lastActiveAt": str(record.last_active_ms), "sourceIp": record.source_ip,
              "domainName": record.domain_name}
    if record.deployment:
        fields["deployment"] = record.deployment
    if record.user_agent is not None:
        fields["userAgent"] = record.user_agent
    if record.authorizer is not None:
        fields["authorizer"] = orjson.dumps(record.authorizer).decode()
    return fields


def record_from_fields(connection_id: str, fields: dict[str, str]) -> ConnectionRecord:
    authorizer = fields.get("authorizer")
    return ConnectionRecord(connection_id, fields.get("node", ""), int(fields.get("connectedAt", 0)),
                            int(fields.get("lastActiveAt", 0)), fields.get("sourceIp", ""),
                            fields.get("userAgent"), fields.get("domainName", ""),
                            orjson.loads(authorizer) if authorizer else None, fields.get("deployment", ""))


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """HGETALL's flat reply (from a Lua script) → dict of str."""
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return dict(zip(values[0::2], values[1::2], strict=True))


# ----- Lua: each touches one key, so each runs on one cluster slot --------------------------------------

# lastActiveAt only while the hash still belongs to this node (never recreate a deregistered connection).
TOUCH = """
if redis.call('hget', KEYS[1], 'node') == ARGV[1] then
  redis.call('hset', KEYS[1], 'lastActiveAt', ARGV[2])
  return 1
end
return 0
"""

# Delete the connection only if this node still owns it (ARGV: the node's id, then ids it had before re-joining).
DELETE_IF_OWNER = """
local owner = redis.call('hget', KEYS[1], 'node')
for _, id in ipairs(ARGV) do
  if owner == id then
    return redis.call('del', KEYS[1])
  end
end
return 0
"""

# A node's heartbeat (KEYS: alive, tombstone; ARGV: now ms, ttl ms) → -1 reaped (alive not set), 0 the key had
# expired or was lost, 1 refreshed. One script, so a survivor's REAP_CLAIM and this never interleave.
HEARTBEAT = """
if redis.call('exists', KEYS[2]) == 1 then
  return -1
end
local previous = redis.call('get', KEYS[1])
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
if previous then
  return 1
end
return 0
"""

# A survivor claims a dead node (KEYS: alive, reaper, tombstone; ARGV: survivor id, claim ms, tombstone ms):
# only while its heartbeat is still missing, and it leaves the tombstone the node will find if it comes back.
REAP_CLAIM = """
if redis.call('exists', KEYS[1]) == 1 then
  return 0
end
if not redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
redis.call('set', KEYS[3], ARGV[1], 'PX', ARGV[3])
return 1
"""

# A reaped node that came back takes over its connection under its new id (ARGV: old id, new id) → 1 when the
# connection is now the new id's, 0 when a survivor already claimed it (its $disconnect ran there).
ADOPT = """
local owner = redis.call('hget', KEYS[1], 'node')
if owner == ARGV[2] then
  return 1
end
if owner == ARGV[1] then
  redis.call('hset', KEYS[1], 'node', ARGV[2])
  return 1
end
return 0
"""

# A survivor takes a dead node's connection: read it and delete it in one step, so one survivor gets it.
CLAIM_ORPHAN = """
if redis.call('hget', KEYS[1], 'node') == ARGV[1] then
  local fields = redis.call('hgetall', KEYS[1])
  redis.call('del', KEYS[1])
  return fields
end
return false
"""


# A member joins (KEYS: members, interest; ARGV: connection id, node, entry): the entry is written and the
# node's member count goes up — or moves from the node the entry named before (a re-joined node's new id).
GROUP_JOIN = """
local old = redis.call('hget', KEYS[1], ARGV[1])
redis.call('hset', KEYS[1], ARGV[1], ARGV[3])
if old then
  local was = string.match(old, '^([^|]*)|')
  if was == ARGV[2] then
    return 0
  end
  if redis.call('hincrby', KEYS[2], was, -1) <= 0 then
    redis.call('hdel', KEYS[2], was)
  end
end
redis.call('hincrby', KEYS[2], ARGV[2], 1)
return 1
"""

# A member leaves (KEYS: members, interest; ARGV: connection id): its node's count goes down, and the node
# stops being asked for this group's publishes when it holds no member any more.
GROUP_LEAVE = """
local old = redis.call('hget', KEYS[1], ARGV[1])
if not old then
  return 0
end
redis.call('hdel', KEYS[1], ARGV[1])
local was = string.match(old, '^([^|]*)|')
if redis.call('hincrby', KEYS[2], was, -1) <= 0 then
  redis.call('hdel', KEYS[2], was)
end
return 1
"""

# A publish to a group with history (KEYS: history, seq, interest; ARGV: size, ttl ms, now ms, data, seq ttl ms)
# → {seq, node...}: numbered, kept, and the nodes to deliver to read in the same step, so a member joining
# concurrently either is among those nodes or finds this message in the history it reads after joining.
GROUP_STAMP = """
local seq = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[5])
redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[1], seq .. '-0', 't', ARGV[3], 'd', ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[2])
local out = redis.call('hkeys', KEYS[3])
table.insert(out, 1, seq)
return out
"""


def member_entry(member: Member) -> str:
    return f"{member.node_id}|{member.connected_at_ms}|{member.principal_id or ''}"


def member_from_entry(connection_id: str, entry: str) -> Member:
    node, _, rest = entry.partition("|")
    connected, _, principal = rest.partition("|")
    return Member(connection_id, node, principal or None, int(connected or 0))


# ----- the commands ---------------------------------------------------------------------------------------

class Store:
    """What the registry (and a pusher looking up an owner) asks Redis, one method per question or change."""

    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self.link = link
        self.keys = keys

    # connections

    async def add_connections(self, records: Sequence[ConnectionRecord], node_id: str) -> None:
        """The node's set first, then each hash: a node dying in between leaves only a set entry (harmless)."""
        commands: list[Command] = [("SADD", self.keys.conns(node_id), *[r.connection_id for r in records])]
        for record in records:
            fields = record_fields(record)
            fields["node"] = node_id
            commands.append(("HSET", self.keys.conn(record.connection_id),
                             *[part for pair in fields.items() for part in pair]))
        await self.link.pipeline(commands)

    async def remove_connections(self, connection_ids: Sequence[str], node_id: str,
                                 former_ids: Sequence[str] = ()) -> None:
        """Delete each hash still owned by this node (under its id or one it had before re-joining)."""
        commands: list[Command] = [("EVAL", DELETE_IF_OWNER, 1, self.keys.conn(cid), node_id, *former_ids)
                                   for cid in connection_ids]
        commands.append(("SREM", self.keys.conns(node_id), *connection_ids))
        await self.link.pipeline(commands)

    async def unlist(self, connection_ids: Sequence[str], node_id: str) -> None:
        """Take ids out of a node's set only (their hashes belong elsewhere now)."""
        await self.link.command("SREM", self.keys.conns(node_id), *connection_ids)

    async def touch(self, touched: Mapping[str, int], node_id: str) -> None:
        await self.link.pipeline([("EVAL", TOUCH, 1, self.keys.conn(cid), node_id, str(at_ms))
                                  for cid, at_ms in touched.items()])

    async def owner(self, connection_id: str) -> str | None:
        raw = await self.link.command("HGET", self.keys.conn(connection_id), "node")
        return None if raw is None else text(raw)

    async def adopt(self, connection_ids: Sequence[str], old: str, new: str) -> set[str]:
        """ADOPT each connection from `old` to `new` (set entry first) → the ids now `new`'s."""
        commands: list[Command] = [("SADD", self.keys.conns(new), *connection_ids)]
        commands += [("EVAL", ADOPT, 1, self.keys.conn(cid), old, new) for cid in connection_ids]
        results = await self.link.pipeline(commands)
        adopted = {cid for cid, ok in zip(connection_ids, results[1:], strict=True) if int(ok) == 1}
        lost = [cid for cid in connection_ids if cid not in adopted]
        if lost:
            await self.unlist(lost, new)
        return adopted

    # nodes

    async def heartbeat(self, node_id: str, now_ms: int, ttl_ms: int) -> int:
        """-1 this id was reaped, 0 its heartbeat key had expired or was lost, 1 refreshed."""
        return int(await self.link.command("EVAL", HEARTBEAT, 2, self.keys.alive(node_id),
                                           self.keys.tombstone(node_id), str(now_ms), str(ttl_ms)))

    async def announce(self, node_id: str, now_ms: int) -> None:
        """List the node among the live ones (what broadcasts and reapers walk)."""
        await self.link.command("HSET", self.keys.nodes, node_id, str(now_ms))

    async def node_ids(self) -> list[str]:
        return [text(n) for n in await self.link.command("HKEYS", self.keys.nodes)]

    async def alive(self, node_id: str) -> bool:
        return bool(int(await self.link.command("EXISTS", self.keys.alive(node_id))))

    async def alive_each(self, node_ids: Sequence[str]) -> list[bool]:
        replies = await self.link.pipeline([("EXISTS", self.keys.alive(n)) for n in node_ids])
        return [bool(int(r)) for r in replies]

    async def leave(self, node_id: str) -> None:
        await self.link.pipeline([("DEL", self.keys.alive(node_id)), ("DEL", self.keys.conns(node_id)),
                                  ("HDEL", self.keys.nodes, node_id)])

    async def forget_ids(self, node_ids: Iterable[str]) -> None:
        """Drop the set and the listing of ids a re-joined node no longer uses."""
        commands: list[Command] = []
        for node_id in node_ids:
            commands += [("DEL", self.keys.conns(node_id)), ("HDEL", self.keys.nodes, node_id)]
        if commands:
            await self.link.pipeline(commands)

    # dead nodes

    async def claim_node(self, dead: str, survivor: str, claim_ms: int, tombstone_ms: int) -> bool:
        """REAP_CLAIM: True when this survivor now reaps `dead` (its heartbeat is still missing)."""
        claimed = await self.link.command("EVAL", REAP_CLAIM, 3, self.keys.alive(dead), self.keys.reaper(dead),
                                          self.keys.tombstone(dead), survivor, str(claim_ms), str(tombstone_ms))
        return bool(int(claimed))

    async def extend_claim(self, dead: str, claim_ms: int) -> None:
        await self.link.command("PEXPIRE", self.keys.reaper(dead), claim_ms)

    async def pop_connections(self, dead: str, count: int) -> list[str]:
        """SPOP: each connection goes to exactly one survivor."""
        return [text(p) for p in await self.link.command("SPOP", self.keys.conns(dead), count) or []]

    async def claim_orphans(self, connection_ids: Sequence[str], dead: str) -> list[ConnectionRecord]:
        """CLAIM_ORPHAN each: read and delete the hash while `dead` still owns it → the records now ours."""
        replies = await self.link.pipeline([("EVAL", CLAIM_ORPHAN, 1, self.keys.conn(cid), dead)
                                            for cid in connection_ids])
        return [record_from_fields(cid, pairs_to_dict(flat))
                for cid, flat in zip(connection_ids, replies, strict=True) if flat]

    async def release_node(self, dead: str) -> None:
        """After reaping: unlist the node unless it came back meanwhile, and drop the claim."""
        if not await self.alive(dead):
            await self.link.command("HDEL", self.keys.nodes, dead)
        await self.link.command("DEL", self.keys.reaper(dead))

    # groups

    def _join(self, group: str, member: Member) -> list[Command]:
        """The connection's index first: a node dying in between leaves only an index entry (harmless)."""
        return [("SADD", self.keys.conn_groups(member.connection_id), group),
                ("EVAL", GROUP_JOIN, 2, self.keys.members(group), self.keys.interest(group), member.connection_id,
                 member.node_id, member_entry(member))]

    async def join(self, group: str, member: Member) -> None:
        await self.link.pipeline(self._join(group, member))

    async def join_many(self, memberships: Sequence[tuple[str, Member]]) -> None:
        commands: list[Command] = []
        for group, member in memberships:
            commands += self._join(group, member)
        if commands:
            await self.link.pipeline(commands)

    def _leave(self, group: str, connection_id: str) -> Command:
        return ("EVAL", GROUP_LEAVE, 2, self.keys.members(group), self.keys.interest(group), connection_id)

    async def leave_group(self, group: str, connection_id: str) -> bool:
        left, _ = await self.link.pipeline([self._leave(group, connection_id),
                                            ("SREM", self.keys.conn_groups(connection_id), group)])
        return bool(int(left))

    async def leave_groups(self, memberships: Mapping[str, Collection[str]]) -> None:
        """Each connection (id → its groups) out of each of its groups, then its index deleted."""
        commands: list[Command] = []
        for connection_id, groups in memberships.items():
            commands += [self._leave(group, connection_id) for group in groups]
            commands.append(("DEL", self.keys.conn_groups(connection_id)))
        if commands:
            await self.link.pipeline(commands)

    async def groups_of(self, connection_ids: Sequence[str]) -> dict[str, list[str]]:
        replies = await self.link.pipeline([("SMEMBERS", self.keys.conn_groups(cid)) for cid in connection_ids])
        return {cid: sorted(text(g) for g in reply or []) for cid, reply in zip(connection_ids, replies, strict=True)}

    async def members(self, group: str, limit: int, token: str | None) -> MemberPage:
        """HSCAN one step; the token is `cursor.skip`: a small hash (listpack) answers all of it at once, so a
        page past `limit` is cut and the next call scans the same step again, skipping what was returned."""
        cursor, _, skip_text = (token or "0.0").partition(".")
        skip = int(skip_text) if skip_text.isdigit() else 0
        count, (next_cursor, flat) = await self.link.pipeline([
            ("HLEN", self.keys.members(group)),
            ("HSCAN", self.keys.members(group), cursor if cursor.isdigit() else "0", "COUNT", limit)])
        values = [text(v) for v in flat]
        pairs = list(zip(values[0::2], values[1::2], strict=True))[skip:]
        members = [member_from_entry(cid, entry) for cid, entry in pairs[:limit]]
        if len(pairs) > limit:
            return MemberPage(int(count), members, f"{cursor}.{skip + limit}")
        following = text(next_cursor)
        return MemberPage(int(count), members, None if following == "0" else f"{following}.0")

    async def stamp(self, group: str, data: bytes, history: History | None, now_ms: int) -> Stamp:
        """One round trip: with history, number and keep the message; either way, the nodes to deliver to."""
        if history is None:
            nodes = await self.link.command("HKEYS", self.keys.interest(group))
            return Stamp(None, [text(n) for n in nodes])
        ttl_ms = history.ttl_seconds * 1000
        reply = await self.link.command("EVAL", GROUP_STAMP, 3, self.keys.history(group), self.keys.seq(group),
                                        self.keys.interest(group), history.size, ttl_ms, now_ms, data,
                                        max(ttl_ms, SEQ_KEPT_MS))
        return Stamp(int(reply[0]), [text(n) for n in reply[1:]])

    async def history(self, group: str, since: int, history: History, now_ms: int) -> list[HistoryEntry] | None:
        """The messages after `since`, or None when they are no longer all kept (trimmed, expired, or `since`
        is ahead of the group's sequence: it was reset)."""
        top_raw, entries = await self.link.pipeline([
            ("GET", self.keys.seq(group)),
            ("XRANGE", self.keys.history(group), f"{since + 1}-0", "+", "COUNT", history.size + 1)])
        top = int(top_raw or 0)
        if since > top:
            return None
        oldest = now_ms - history.ttl_seconds * 1000
        out: list[HistoryEntry] = []
        for entry_id, flat in entries or []:
            fields = dict(zip(flat[0::2], flat[1::2], strict=True))
            at = int(fields.get(b"t") or fields.get("t") or 0)
            data = fields.get(b"d", fields.get("d", b""))
            if at < oldest:
                continue
            out.append((int(text(entry_id).split("-")[0]), data if isinstance(data, bytes) else str(data).encode()))
        if since == top:
            return []
        if not out or out[0][0] != since + 1:
            return None
        return out

    # principals

    async def add_principals(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            await self.link.pipeline([("SADD", self.keys.principal(p), cid) for cid, p in pairs])

    async def remove_principals(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            await self.link.pipeline([("SREM", self.keys.principal(p), cid) for cid, p in pairs])

    async def records(self, connection_ids: Sequence[str]) -> list[ConnectionRecord]:
        replies = await self.link.pipeline([("HGETALL", self.keys.conn(cid)) for cid in connection_ids])
        out = []
        for cid, flat in zip(connection_ids, replies, strict=True):
            fields = pairs_to_dict(flat) if isinstance(flat, list) else {text(k): text(v) for k, v in flat.items()}
            if fields:
                out.append(record_from_fields(cid, fields))
        return out

    async def principal_connections(self, principal_id: str) -> list[str]:
        return sorted(text(c) for c in await self.link.command("SMEMBERS", self.keys.principal(principal_id)))
