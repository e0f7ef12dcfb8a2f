"""A lean Redis connection for the push hot path: pipelined commands answered in order, and Pub/Sub pushes.

redis-py's asyncio client spent most of a cross-node push in its own machinery (pipeline objects, pool
checkout, health checks, `PubSub.get_message` per message). This speaks RESP directly over an
asyncio.Protocol and parses replies with hiredis (already a dependency), so a PUBLISH costs one write and a
received message one callback. On one server every command goes through it; on a cluster it carries the
node's sharded subscription (commands there go through redis-py's cluster client, which knows the slots).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url

from wsgw.registry.base import RegistryUnavailable

# In subscriber mode these arrive unasked: messages, and the server dropping the subscription (a cluster slot
# moved). wsgw never unsubscribes, so an (s)unsubscribe is always news.
PUSHES = (b"message", b"smessage", b"unsubscribe", b"sunsubscribe")


class RespError(RegistryUnavailable):
    """Redis answered a command with an error reply, or the connection failed: the operation cannot be done."""


def encode_command(*parts: bytes | str | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespConnection(asyncio.Protocol):
    """One connection. Replies resolve the oldest waiting command; in subscriber mode every reply is a push."""

    def __init__(self, on_push: Callable[[list[Any]], None] | None = None,
                 on_lost: Callable[[BaseException | None], None] | None = None) -> None:
        self.on_push = on_push
        self.on_lost = on_lost
        self.reader = hiredis.Reader()
        self.waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.subscribed = False
        self.closed = False
        self.outgoing: list[bytes] = []          # commands written together at the end of the loop turn
        self.last_reply = 0.0                    # loop time of the last reply: the server is making progress
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self._loop is not None:
            self.last_reply = self._loop.time()
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:      # garbage from the server: drop the connection
                self._fail(RespError(f"protocol error from redis: {exc}"))
                if self.transport is not None:
                    self.transport.abort()
                return
            if reply is False:
                return
            if self.subscribed and isinstance(reply, list) and reply and reply[0] in PUSHES:
                if self.on_push is not None:
                    self.on_push(reply)
                continue
            if not self.waiters:
                continue
            future, _ = self.waiters.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(RespError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(RespError(f"redis connection lost ({exc or 'closed'})"))
        if self.on_lost is not None:
            self.on_lost(exc)

    def _fail(self, error: Exception) -> None:
        waiters, self.waiters = self.waiters, deque()
        for future, _ in waiters:
            if not future.done():
                future.set_exception(error)

    def command(self, *parts: bytes | str | int) -> asyncio.Future[Any]:
        """Send a command; the future gets its reply (RespError for an error reply or a lost connection)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.closed or self.transport is None or self.transport.is_closing():
            future.set_exception(RespError("redis connection is closed"))
            return future
        self.waiters.append((future, loop.time()))
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(encode_command(*parts))
        return future

    def _flush(self) -> None:
        """One write per loop turn: a write per PUBLISH was a third of a cross-node push (one syscall each)."""
        outgoing, self.outgoing = self.outgoing, []
        if outgoing and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(outgoing))

    def oldest_wait(self, now: float) -> float:
        """Seconds the server has made no progress on unanswered commands (0 when none): a hung server shows
        here. Counted from the oldest command's send or the last reply, whichever is later, so a server busy
        with a long pipeline (5,000 deregistrations at once) but answering is not taken for a hung one."""
        if not self.waiters:
            return 0.0
        return now - max(self.waiters[0][1], self.last_reply)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


async def open_resp(url: str, timeout: float, on_push: Callable[[list[Any]], None] | None = None,
                    on_lost: Callable[[BaseException | None], None] | None = None,
                    at: tuple[str, int] | None = None) -> RespConnection:
    """Connect (TCP, TLS or unix socket, as the URL says) and authenticate; select the URL's database.
    `at` overrides host and port (a cluster shard found by slot), keeping the URL's credentials and TLS."""
    options = parse_url(url)
    if at is not None:
        options.pop("path", None)
        options["host"], options["port"] = at
    loop = asyncio.get_running_loop()

    def factory() -> RespConnection:
        return RespConnection(on_push, on_lost)

    async with asyncio.timeout(timeout):
        if "path" in options:
            _, protocol = await loop.create_unix_connection(factory, options["path"])
        else:
            context = ssl.create_default_context() if url.startswith("rediss://") else None
            _, protocol = await loop.create_connection(factory, options.get("host", "localhost"),
                                                       int(options.get("port", 6379)), ssl=context)
        try:
            if options.get("password"):
                credentials = [options["username"], options["password"]] if options.get("username") \
                    else [options["password"]]
                await protocol.command(b"AUTH", *credentials)
            if options.get("db"):
                await protocol.command(b"SELECT", int(options["db"]))
        except BaseException:
            protocol.close()
            raise
    return protocol
