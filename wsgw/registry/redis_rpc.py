"""Request/reply between processes over Redis Pub/Sub, both sides in one place: asking the node that holds a
connection to push, describe or close it (or a node to broadcast), and that node answering. Used by the Redis
registry (node to node, as caller and as server) and by the Redis pusher in wsgw.client (caller only).

A caller publishes `{o: kind, c: connectionId, r: its reply channel, m: message id}` + data on the owner's
channel and waits for `{m, s: "ok"|"gone", ...}` on its own. Zero receivers means the owner is not subscribed:
its process is gone (kill -9 closes its Redis connections at once), so 410 — unless this caller only just
reconnected after a Redis outage, when the owner may not have resubscribed yet (then: unavailable, 503).
Likewise an unknown connection is only "gone" once the nodes had a heartbeat's time to re-register after Redis
came back (a restarted Redis may have lost the table): before that it is unavailable, never a false 410.
No reply in time: gone if the owner's heartbeat expired, else OwnerTimeout (504) — never a guessed 200.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from wsgw.registry.base import LocalNode, OwnerTimeout, RegistryUnavailable
from wsgw.registry.redis_link import RedisLink
from wsgw.registry.redis_store import Store, record_fields

log = logging.getLogger("wsgw.registry.redis")

OWNER_CACHE_SIZE = 100_000    # connectionId → node (changes only when a reaped node re-joins: see _call)

# The request kinds (the `o` field).
POST = "post"
GET = "get"
DELETE = "del"
BROADCAST = "bcast"
GROUP_JOIN = "gjoin"
GROUP_LEAVE = "gleave"
GROUP_PUBLISH = "gpub"
GROUP_SEND = "gsend"      # a pusher (no node, no API config) has a node publish to a group for it
POSTS = "posts"           # several pushes to one node, sent in one message (see Rpc._flush_posts)

_NOBODY: dict[str, Any] = {"s": "nobody"}   # "nobody listens on the owner's channel"


# ----- the message format: one JSON header line, then the raw payload -----------------------------------

def encode(header: dict[str, Any], data: bytes = b"") -> bytes:
    return orjson.dumps(header) + b"\n" + data


def decode(message: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, data = message.partition(b"\n")
    header = orjson.loads(head)
    if not isinstance(header, dict):
        raise ValueError("message header is not an object")
    return header, data


# ----- the serving side: one handler per request kind ---------------------------------------------------

# (node, request header, data) → the reply's extra fields when done ("ok"), None when the connection is not here;
# or an awaitable of that (the reply is sent once it resolves).
Reply = dict[str, Any] | None
Handler = Callable[[LocalNode, dict[str, Any], bytes], Reply | Awaitable[Reply]]


def _post(node: LocalNode, header: dict[str, Any], data: bytes) -> Reply:
    return {} if node.deliver_local(str(header.get("c", "")), data) else None


def _get(node: LocalNode, header: dict[str, Any], _: bytes) -> Reply:
    record = node.lookup_local(str(header.get("c", "")))
    return None if record is None else {"rec": record_fields(record)}


def _delete(node: LocalNode, header: dict[str, Any], _: bytes) -> Reply:
    return {} if node.disconnect_local(str(header.get("c", ""))) else None


def _broadcast(node: LocalNode, _: dict[str, Any], data: bytes) -> Reply:
    return {"n": node.broadcast_local(data)}


async def _group_join(node: LocalNode, header: dict[str, Any], _: bytes) -> Reply:
    since = header.get("since")
    outcome = await node.join_local(str(header.get("g", "")), str(header.get("c", "")),
                                    since if isinstance(since, int) else None)
    return None if outcome is None else {"out": outcome}


async def _group_leave(node: LocalNode, header: dict[str, Any], _: bytes) -> Reply:
    left = await node.leave_local(str(header.get("g", "")), str(header.get("c", "")))
    return None if left is None else {"left": left}


def _group_publish(node: LocalNode, header: dict[str, Any], data: bytes) -> Reply:
    exclude, seq = header.get("x"), header.get("q")
    return {"n": node.publish_local(str(header.get("g", "")), data, exclude if isinstance(exclude, str) else None,
                                    seq if isinstance(seq, int) else None)}


async def _group_send(node: LocalNode, header: dict[str, Any], data: bytes) -> Reply:
    exclude = header.get("x")
    return {"n": await node.publish_group(str(header.get("g", "")), data,
                                          exclude if isinstance(exclude, str) else None)}


HANDLERS: dict[str, Handler] = {POST: _post, GET: _get, DELETE: _delete, BROADCAST: _broadcast,
                                GROUP_JOIN: _group_join, GROUP_LEAVE: _group_leave, GROUP_PUBLISH: _group_publish,
                                GROUP_SEND: _group_send}


class Rpc:
    """One process's end of the protocol: it calls other nodes and, when it serves a node, answers them.

    It reads the link's channel: requests go to HANDLERS (only with a node to serve), replies to the caller
    waiting for them. A pusher has no node: it only calls."""

    def __init__(self, link: RedisLink, store: Store, reply_channel: str, timeout: float, node_ttl: float,
                 node: LocalNode | None = None) -> None:
        self.link = link
        self.store = store
        self.reply_channel = reply_channel
        self.timeout = timeout
        self.node_ttl = node_ttl
        self.node = node
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.owners: OrderedDict[str, str] = OrderedDict()
        self._replies: set[asyncio.Future[Any]] = set()
        # node → the pushes to it waiting for the end of this loop turn: (message id, connection id, data, the
        # future of the publish's receiver count)
        self.outboxes: dict[str, list[tuple[int, str, bytes, asyncio.Future[int]]]] = {}
        link.on_message = self.on_message
        link.on_down = self._abandon

    # ----- the calling side ----------------------------------------------------------------------------

    async def deliver(self, connection_id: str, data: bytes) -> bool:
        """Push to the connection's socket on its node; False when it is gone."""
        return await self._call(connection_id, POST, data) is not None

    async def lookup(self, connection_id: str) -> dict[str, str] | None:
        """The connection hash as its node reports it (node, connectedAt, ...), or None when gone."""
        reply = await self._call(connection_id, GET)
        record = None if reply is None else reply.get("rec")
        return record if isinstance(record, dict) else None

    async def disconnect(self, connection_id: str) -> bool:
        """Close the connection on its node (running $disconnect there); False when it is gone."""
        return await self._call(connection_id, DELETE) is not None

    async def broadcast(self, node_id: str, data: bytes) -> int:
        """Have one node write data to all its sockets → how many took it (0 when it is gone or silent)."""
        reply = await self._ask_node(node_id, BROADCAST, data)
        return 0 if reply is None else int(reply.get("n", 0))

    async def join(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        """Have the connection's node add it to a group (and replay history) → its outcome, None when gone."""
        header: dict[str, Any] = {"g": group}
        if since is not None:
            header["since"] = since
        reply = await self._call(connection_id, GROUP_JOIN, extra=header, connecting=True)
        outcome = None if reply is None else reply.get("out")
        return outcome if isinstance(outcome, dict) else None

    async def leave(self, group: str, connection_id: str) -> bool | None:
        """Have the connection's node take it out of a group → whether it was a member, None when gone."""
        reply = await self._call(connection_id, GROUP_LEAVE, extra={"g": group}, connecting=True)
        return None if reply is None else bool(reply.get("left"))

    async def publish(self, node_id: str, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        """Have one node write a group's frame to its members → how many took it (0 when it is gone or silent)."""
        header: dict[str, Any] = {"g": group}
        if exclude is not None:
            header["x"] = exclude
        if seq is not None:
            header["q"] = seq
        reply = await self._ask_node(node_id, GROUP_PUBLISH, frame, header)
        return 0 if reply is None else int(reply.get("n", 0))

    async def publish_via_node(self, group: str, data: bytes, exclude: str | None) -> int:
        """A pusher's publish: a node holding members (else any live node) runs it → how many sockets took it."""
        stamp = await self.store.stamp(group, b"", None, 0)
        candidates = list(stamp.nodes or ())
        for node_id in await self.store.node_ids():
            if node_id not in candidates:
                candidates.append(node_id)
        header: dict[str, Any] = {"g": group}
        if exclude is not None:
            header["x"] = exclude
        for node_id in candidates:
            try:
                reply = await self._request(node_id, {"o": GROUP_SEND, **header}, data)
            except TimeoutError:
                continue
            if reply is not _NOBODY and reply is not None and reply.get("s") == "ok":
                return int(reply.get("n", 0))
        raise RegistryUnavailable("no live node answered to publish to the group")

    def forget(self, connection_id: str) -> None:
        self.owners.pop(connection_id, None)

    async def _owner(self, connection_id: str) -> str | None:
        node = self.owners.get(connection_id)
        if node is not None:
            return node
        node = await self.store.owner(connection_id)
        if node is None:
            if self._recovering():
                raise RegistryUnavailable("redis came back moments ago; nodes are re-registering connections")
            return None
        self.owners[connection_id] = node
        if len(self.owners) > OWNER_CACHE_SIZE:
            self.owners.popitem(last=False)
        return node

    def _is_me(self, node_id: str) -> bool:
        """A node's own connections are in its local table: the registry only answers for the others."""
        return self.node is not None and node_id == self.node.node_id

    async def _call(self, connection_id: str, kind: str, data: bytes = b"",
                    extra: dict[str, Any] | None = None, connecting: bool = False) -> dict[str, Any] | None:
        """The owner's reply when it says "ok"; None when the connection is gone (or its node is dead).

        `connecting`: a connection not registered yet may be in its $connect on some node (a handler joining it
        to a group before the handshake completes, its request landing on another node or --workers process).
        Then every other node is asked; the one running that $connect holds the join. This costs a connection
        nothing: only a request about an unregistered id pays the extra round."""
        cached = connection_id in self.owners
        node = await self._owner(connection_id)
        if node is None and connecting:
            return await self._ask_connecting(connection_id, kind, data, extra)
        if node is None or self._is_me(node):
            return None
        reply = await self._ask(connection_id, node, kind, data, extra)
        if reply is _NOBODY and cached:
            # The cached owner no longer listens; a node that was reaped while stalled re-joins under a new id
            # and takes its connections along, so look the owner up again once before answering gone.
            self.forget(connection_id)
            node = await self._owner(connection_id)
            if node is None or self._is_me(node):
                return None
            reply = await self._ask(connection_id, node, kind, data, extra)
        if reply is _NOBODY:
            if self._recovering():          # after an outage the owner may not have resubscribed yet
                raise RegistryUnavailable(f"node {node} is not reachable through redis yet")
            self.forget(connection_id)
            return None
        if reply is None or reply.get("s") != "ok":
            self.forget(connection_id)
            return None
        return reply

    async def _request(self, node: str, header: dict[str, Any], data: bytes) -> dict[str, Any] | None:
        """Publish to a node and wait for its answer; _NOBODY when nobody listens on its channel.
        One deadline covers the publish and the reply (TimeoutError past it)."""
        if not self.link.up:                # our channel may not be subscribed: its reply could not reach us
            raise RegistryUnavailable(f"redis is unreachable ({self.link.last_error or 'connecting'})")
        message_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        try:
            async with asyncio.timeout(self.timeout):
                if header.get("o") == POST:
                    published = self._queue_post(node, message_id, str(header.get("c", "")), data)
                else:
                    self._flush_posts(node)      # what was asked of the node before this goes first
                    header["r"] = self.reply_channel
                    header["m"] = message_id
                    published = self.link.publish(self.store.keys.channel(node), encode(header, data))
                if await published == 0:
                    return _NOBODY
                return await future
        finally:
            self.pending.pop(message_id, None)

    def _queue_post(self, node: str, message_id: int, connection_id: str, data: bytes) -> asyncio.Future[int]:
        """A push joins its owner node's outbox; the outboxes go out at the end of this loop turn, one message
        per node (one publish, one parse and one reply on each side instead of one per push). The future is
        this push's own receiver count, so a caller timing out cancels nothing of the others'."""
        loop = asyncio.get_running_loop()
        published: asyncio.Future[int] = loop.create_future()
        outbox = self.outboxes.get(node)
        if outbox is None:
            outbox = self.outboxes[node] = []
            loop.call_soon(self._flush_posts, node)
        outbox.append((message_id, connection_id, data, published))
        return published

    def _flush_posts(self, node: str) -> None:
        """Publish a node's outbox: one `post` as before when it holds one push, else one `posts` message:
        `{o: "posts", r, p: [[message id, connection id, size], ...]}` and the data back to back."""
        outbox = self.outboxes.pop(node, None)
        if not outbox:
            return
        channel = self.store.keys.channel(node)
        if len(outbox) == 1:
            message_id, connection_id, data, _ = outbox[0]
            payload = encode({"o": POST, "c": connection_id, "r": self.reply_channel, "m": message_id}, data)
        else:
            header = {"o": POSTS, "r": self.reply_channel, "p": [[m, c, len(d)] for m, c, d, _ in outbox]}
            payload = encode(header, b"".join(d for _, _, d, _ in outbox))
        self.link.publish(channel, payload).add_done_callback(
            lambda done: _settle_all([published for _, _, _, published in outbox], done))

    async def _ask(self, connection_id: str, node: str, kind: str, data: bytes,
                   extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A request about one connection; None when its node's heartbeat expired without an answer."""
        try:
            return await self._request(node, {"o": kind, "c": connection_id, **(extra or {})}, data)
        except TimeoutError:
            if await self.store.alive(node):
                raise OwnerTimeout(f"node {node} did not answer within {self.timeout:.1f}s") from None
            return None

    async def _ask_connecting(self, connection_id: str, kind: str, data: bytes,
                              extra: dict[str, Any] | None) -> dict[str, Any] | None:
        """The same request to every other live node at once → the reply of the node that holds the connection
        (its $connect running there), None when none does."""
        others = [n for n in await self.store.node_ids() if not self._is_me(n)]
        replies = await asyncio.gather(*(self._ask_node(n, kind, data, {"c": connection_id, **(extra or {})})
                                         for n in others))
        for reply in replies:
            if reply is not None and reply.get("s") == "ok":
                return reply
        return None

    async def _ask_node(self, node: str, kind: str, data: bytes,
                        extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A node-wide request: the node's reply, or None when it is gone or silent."""
        try:
            reply = await self._request(node, {"o": kind, **(extra or {})}, data)
        except TimeoutError:
            return None
        return None if reply is _NOBODY else reply

    def _abandon(self) -> None:
        """The link went down: replies to requests in flight can no longer arrive, so answer them unavailable
        now instead of letting them time out as if the owner were silent (a 504 for a Redis outage)."""
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(RegistryUnavailable("redis went away before the owner answered"))
                future.exception()          # its caller may be failing on the publish instead and never read it

    def _recovering(self) -> bool:
        return time.monotonic() - self.link.recovered_at < self.node_ttl

    # ----- both sides: what arrives on this process's channel ------------------------------------------

    def on_message(self, message: bytes) -> None:
        header, data = decode(message)
        kind = header.get("o")
        if kind is None:
            answers = header.get("a")
            if isinstance(answers, list):      # the replies to a `posts` message, one per push
                for answer in answers:
                    if isinstance(answer, list) and len(answer) == 2:
                        self._replied(answer[0], {"m": answer[0], "s": answer[1]})
                return
            self._replied(header.get("m", -1), header)
            return
        if self.node is not None:
            if kind == POSTS:
                self._serve_posts(self.node, header, data)
            else:
                self._serve(self.node, str(kind), header, data)

    def _replied(self, message_id: Any, reply: dict[str, Any]) -> None:
        future = self.pending.pop(message_id, None) if isinstance(message_id, int) else None
        if future is not None and not future.done():
            future.set_result(reply)

    def _serve_posts(self, node: LocalNode, header: dict[str, Any], data: bytes) -> None:
        """Each push of a `posts` message delivered in order, answered together: `{a: [[message id, "ok"|"gone"],
        ...]}`. A push this node may not answer (fenced) gets no answer, so its caller times out rather than guess;
        a malformed entry ends the message (the data after it cannot be placed)."""
        answers: list[list[Any]] = []
        offset = 0
        entries = header.get("p")
        for entry in entries if isinstance(entries, list) else ():
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], int) and entry[2] >= 0
                    and offset + entry[2] <= len(data)):
                log.warning("a malformed posts message: entry %r", entry)
                break
            message_id, connection_id, size = entry
            chunk = data[offset:offset + size]
            offset += size
            try:
                delivered = node.deliver_local(str(connection_id), chunk)
            except RegistryUnavailable:
                continue
            answers.append([message_id, "ok" if delivered else "gone"])
        reply_to = header.get("r")
        if answers and isinstance(reply_to, str):
            future = self.link.publish(reply_to, encode({"a": answers}))
            self._replies.add(future)
            future.add_done_callback(self._reply_sent)

    def _serve(self, node: LocalNode, kind: str, header: dict[str, Any], data: bytes) -> None:
        handler = HANDLERS.get(kind)
        try:
            outcome = handler(node, header, data) if handler is not None else None
        except RegistryUnavailable:             # fenced: no answer, the caller times out rather than guess
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._replies.add(task)
            task.add_done_callback(lambda done: self._answer_later(header, done))
            return
        self._answer(header, outcome)

    def _answer_later(self, header: dict[str, Any], done: asyncio.Future[Reply]) -> None:
        self._replies.discard(done)
        if done.cancelled():
            return
        if done.exception() is not None:        # no reply: the caller times out (never a guessed "ok")
            log.warning("serving %s failed: %r", header.get("o"), done.exception())
            return
        self._answer(header, done.result())

    def _answer(self, header: dict[str, Any], extra: Reply) -> None:
        reply: dict[str, Any] = {"m": header.get("m"), **(extra or {}), "s": "gone" if extra is None else "ok"}
        reply_to = header.get("r")
        if isinstance(reply_to, str):
            future = self.link.publish(reply_to, encode(reply))
            self._replies.add(future)           # a lost reply makes the caller time out: it never guesses 200
            future.add_done_callback(self._reply_sent)

    def _reply_sent(self, future: asyncio.Future[Any]) -> None:
        self._replies.discard(future)
        if not future.cancelled():
            future.exception()


def _settle_all(waiting: list[asyncio.Future[int]], published: asyncio.Future[Any]) -> None:
    """The outcome of one publish (the receiver count, or why it failed) to each push it carried."""
    failed = published.cancelled() or published.exception() is not None
    for future in waiting:
        if future.done():                      # its caller gave up already
            continue
        if published.cancelled():
            future.cancel()
        elif failed:
            future.set_exception(published.exception())  # type: ignore[arg-type]
        else:
            future.set_result(published.result())
