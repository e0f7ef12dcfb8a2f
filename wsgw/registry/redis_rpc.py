"""Request/reply between processes over Redis Pub/Sub: ask the node holding a connection to push, describe or
close it, and wait for its answer. Used by the Redis registry (node to node) and the Redis pusher (worker to node).

A caller publishes `{o: op, c: connectionId, r: its reply channel, m: message id}` + data on the owner's channel
and waits for `{m, s: "ok"|"gone"}` on its own. Zero receivers means the owner is not subscribed: its process is
gone (kill -9 closes its Redis connections at once), so 410 — unless this caller only just reconnected after a
Redis outage, when the owner may not have resubscribed yet (then: unavailable, 503).
Likewise an unknown connection is only "gone" once the nodes had a heartbeat's time to re-register after Redis
came back (a restarted Redis may have lost the table): before that it is unavailable, never a false 410.
No reply in time: gone if the owner's heartbeat expired, else OwnerTimeout (504) — never a guessed 200.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from typing import Any

from wsgw.registry.base import OwnerTimeout, RegistryUnavailable
from wsgw.registry.redis_link import RedisLink
from wsgw.registry.redis_wire import Keys, encode

OWNER_CACHE_SIZE = 100_000    # connectionId → node (changes only when a reaped node re-joins: see call)
_NOBODY: dict[str, Any] = {"s": "nobody"}   # "nobody listens on the owner's channel"


class Caller:
    """The calling side of the protocol; `on_reply` is fed by the link's subscription."""

    def __init__(self, link: RedisLink, keys: Keys, reply_channel: str, timeout: float, node_ttl: float) -> None:
        self.link = link
        self.keys = keys
        self.reply_channel = reply_channel
        self.timeout = timeout
        self.node_ttl = node_ttl
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.owners: OrderedDict[str, str] = OrderedDict()

    def on_reply(self, header: dict[str, Any]) -> None:
        future = self.pending.pop(header.get("m", -1), None)
        if future is not None and not future.done():
            future.set_result(header)

    def forget(self, connection_id: str) -> None:
        self.owners.pop(connection_id, None)

    async def owner(self, connection_id: str) -> str | None:
        node = self.owners.get(connection_id)
        if node is not None:
            return node
        raw = await self.link.run(lambda c: c.hget(self.keys.conn(connection_id), "node"))
        if raw is None:
            if self._recovering():
                raise RegistryUnavailable("redis came back moments ago; nodes are re-registering connections")
            return None
        node = raw.decode() if isinstance(raw, bytes) else str(raw)
        self.owners[connection_id] = node
        if len(self.owners) > OWNER_CACHE_SIZE:
            self.owners.popitem(last=False)
        return node

    async def call(self, connection_id: str, op: str, data: bytes = b"",
                   skip_node: str | None = None) -> dict[str, Any] | None:
        """The owner's reply when it says "ok"; None when the connection is gone (or its node is dead)."""
        cached = connection_id in self.owners
        node = await self.owner(connection_id)
        if node is None or node == skip_node:
            return None
        reply = await self._ask(connection_id, node, op, data)
        if reply is _NOBODY and cached:
            # The cached owner no longer listens; a node that was reaped while stalled re-joins under a new id
            # and takes its connections along, so look the owner up again once before answering gone.
            self.forget(connection_id)
            node = await self.owner(connection_id)
            if node is None or node == skip_node:
                return None
            reply = await self._ask(connection_id, node, op, data)
        if reply is _NOBODY:
            if self._recovering():          # after an outage the owner may not have resubscribed yet
                raise RegistryUnavailable(f"node {node} is not reachable through redis yet")
            self.forget(connection_id)
            return None
        if reply is None or reply.get("s") != "ok":
            self.forget(connection_id)
            return None
        return reply

    async def _ask(self, connection_id: str, node: str, op: str, data: bytes) -> dict[str, Any] | None:
        """Publish to the owner and wait for its answer; _NOBODY when nobody listens on its channel, None when
        its heartbeat expired without an answer. One deadline covers the publish and the reply."""
        message_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        try:
            header = {"o": op, "c": connection_id, "r": self.reply_channel, "m": message_id}
            try:
                async with asyncio.timeout(self.timeout):
                    if await self.link.publish(self.keys.channel(node), encode(header, data)) == 0:
                        return _NOBODY
                    return await future
            except TimeoutError:
                if await self._alive(node):
                    raise OwnerTimeout(f"node {node} did not answer within {self.timeout:.1f}s") from None
                return None
        finally:
            self.pending.pop(message_id, None)

    async def ask_node(self, node: str, op: str, data: bytes = b"") -> dict[str, Any] | None:
        """A node-wide request (e.g. broadcast): the node's reply, or None when it is gone or silent."""
        message_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        try:
            header = {"o": op, "r": self.reply_channel, "m": message_id}
            try:
                async with asyncio.timeout(self.timeout):
                    if await self.link.publish(self.keys.channel(node), encode(header, data)) == 0:
                        return None
                    return await future
            except TimeoutError:
                return None
        finally:
            self.pending.pop(message_id, None)

    def _recovering(self) -> bool:
        return time.monotonic() - self.link.recovered_at < self.node_ttl

    async def _alive(self, node: str) -> bool:
        return bool(await self.link.run(lambda c: c.exists(self.keys.alive(node))))
