"""What the Redis registry and the Redis pusher agree on: options, key layout, the message format, Lua scripts.

Every key carries a hash tag so Redis Cluster works and no command spans two slots: one tag per connection
(`wsgw:{<connectionId>}:conn`) and one per node (`wsgw:{n:<nodeId>}:alive|conns|reaper|rx`, the last being the
node's Pub/Sub channel, so a sharded channel lives on the same shard as the node's keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from wsgw.registry.base import ConnectionRecord

DEFAULT_NODE_TTL = 6.0        # seconds without a heartbeat before a node counts as dead
DEFAULT_PUSH_TIMEOUT = 5.0    # seconds a caller waits for the owning node's reply


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The Redis URL plus wsgw's own query options (stripped before redis-py sees the URL)."""

    url: str
    node_ttl: float = DEFAULT_NODE_TTL
    push_timeout: float = DEFAULT_PUSH_TIMEOUT
    key_prefix: str = "wsgw"

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        """`redis://h:p/0?node_ttl=6&push_timeout=5&key_prefix=wsgw` → options; unknown keys stay in the URL."""
        parts = urlsplit(url)
        kept: list[tuple[str, str]] = []
        found: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("node_ttl", "push_timeout", "key_prefix"):
                found[key] = value
            else:
                kept.append((key, value))
        clean = urlunsplit(parts._replace(query=urlencode(kept)))
        try:
            node_ttl = float(found.get("node_ttl", DEFAULT_NODE_TTL))
            push_timeout = float(found.get("push_timeout", DEFAULT_PUSH_TIMEOUT))
        except ValueError as exc:
            raise ValueError(f"--redis: node_ttl and push_timeout are seconds ({exc})") from None
        if not 0.5 <= node_ttl <= 300 or not 0.05 <= push_timeout <= 60:
            raise ValueError("--redis: node_ttl must be 0.5..300 seconds and push_timeout 0.05..60 seconds")
        prefix = found.get("key_prefix", "wsgw")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("--redis: key_prefix must be non-empty and free of braces")
        return cls(clean, node_ttl, push_timeout, prefix)


def redacted(url: str) -> str:
    """The URL fit to print: any password (userinfo or `?password=`) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{user}@{host}"
    query = "&".join(f"{k}=***" if k.lower() == "password" else f"{k}={v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


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

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"


# ----- the connection hash ------------------------------------------------------------------------------

def record_fields(record: ConnectionRecord) -> dict[str, str]:
    """The conn hash: what GetConnection and an orphan $disconnect need, plus the owner."""
    fields = {"node": record.node_id, "connectedAt": str(record.connected_at_ms),
              "lastActiveAt": str(record.last_active_ms), "sourceIp": record.source_ip,
              "domainName": record.domain_name}
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
                            orjson.loads(authorizer) if authorizer else None)


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """HGETALL's flat reply (from a Lua script) → dict of str."""
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return dict(zip(values[0::2], values[1::2], strict=True))


# ----- messages between nodes: one JSON header line, then the raw payload -------------------------------

def encode(header: dict[str, Any], data: bytes = b"") -> bytes:
    return orjson.dumps(header) + b"\n" + data


def decode(message: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, data = message.partition(b"\n")
    header = orjson.loads(head)
    if not isinstance(header, dict):
        raise ValueError("message header is not an object")
    return header, data


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
