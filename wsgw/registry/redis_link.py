"""One process's link to Redis (one server or a cluster): a command client, auto-pipelined publishes, and one
subscribed channel; it reconnects by itself and reports when it is up again.

On a cluster the channel is sharded (SSUBSCRIBE on the master owning its slot, SPUBLISH to it); on one server
it is plain Pub/Sub. Short socket timeouts and no client-side retries make a dead Redis fail fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from wsgw.registry.base import RegistryUnavailable
from wsgw.registry.resp import RespConnection, open_resp

log = logging.getLogger("wsgw.registry.redis")

COMMAND_TIMEOUT = 1.0       # a command that takes longer means Redis is in trouble
CONNECT_TIMEOUT = 0.5
RETRY_SECONDS = 0.25        # between reconnect attempts
POOL_SIZE = 64
POOL_WAIT = 2.0             # seconds a command waits for a free pooled connection under load
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

Client = aioredis.Redis | RedisCluster


class RedisLink:
    """Commands + publishes + one subscription, kept alive across Redis outages and restarts."""

    def __init__(self, url: str, channel: str, on_message: Callable[[bytes], None],
                 on_up: Callable[[], Awaitable[None]] | None = None) -> None:
        self.url = url
        self.channel = channel
        self.on_message = on_message
        self.on_up = on_up
        self.cluster = False
        self.client: Client | None = None
        self.up = False
        self.up_since = 0.0                       # monotonic time the link last came up
        self.recovered_at = -1e9                  # ... when that was a reconnection (not the first connection)
        self._subscriber: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._pub: RespConnection | None = None      # one server: raw PUBLISH connection (the push hot path)
        self._sub: RespConnection | None = None      # one server: raw SUBSCRIBE connection
        self._reader: asyncio.Task[None] | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._down = asyncio.Event()
        self._first_up = asyncio.Event()
        self._stopping = False
        self._retargeting = False                 # this reconnection only moves the subscription: nothing was lost
        self._outbox: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.last_error = ""

    # ----- lifecycle -------------------------------------------------------------------------------

    async def start(self, wait: float = 3.0) -> None:
        """Begin connecting; wait up to `wait` seconds for the first connection (the node starts either way)."""
        self._maintainer = asyncio.get_running_loop().create_task(self._maintain())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._first_up.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._maintainer is not None:
            self._maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintainer
        await self._close()

    def mark_down(self, exc: BaseException) -> None:
        """A command failed for connection reasons: drop everything and reconnect."""
        if self.up:
            log.warning("redis link down: %s", exc)
        self.last_error = str(exc) or type(exc).__name__
        self.up = False
        self._down.set()

    def retarget(self, channel: str) -> None:
        """Subscribe to `channel` instead (a node re-joining under a new id): reconnect, then on_up runs again."""
        self.channel = channel
        self._retargeting = True
        self.mark_down(RedisError(f"re-subscribing to {channel}"))

    async def _maintain(self) -> None:
        while not self._stopping:
            self._down.clear()
            try:
                await self._connect()
            except REDIS_ERRORS as exc:
                self.last_error = str(exc) or type(exc).__name__
                await self._close()
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.up = True
            self.up_since = time.monotonic()
            if self._first_up.is_set() and not self._retargeting:
                self.recovered_at = self.up_since
            self._retargeting = False
            log.info("redis link up (%s)", "cluster" if self.cluster else "single server")
            if self.on_up is not None:
                try:
                    await self.on_up()
                except REDIS_ERRORS as exc:
                    self.mark_down(exc)
            self._first_up.set()
            await self._watch()
            self.up = False
            await self._close()
            await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self) -> None:
        """Wait until the link goes down; a raw publish unanswered for COMMAND_TIMEOUT means Redis hangs."""
        loop = asyncio.get_running_loop()
        while not self._down.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMAND_TIMEOUT / 4):
                    await self._down.wait()
            pub = self._pub
            if pub is not None and pub.oldest_wait(loop.time()) > COMMAND_TIMEOUT:
                self.mark_down(RedisError("redis did not answer a publish in time"))

    def _lost(self, connection: RespConnection) -> Callable[[BaseException | None], None]:
        def on_lost(exc: BaseException | None) -> None:
            if connection in (self._pub, self._sub) and not self._stopping:
                self.mark_down(exc or ConnectionError("redis closed the connection"))
        return on_lost

    def _on_push(self, reply: list[Any]) -> None:
        try:
            self.on_message(reply[2])
        except Exception:
            log.exception("bad message on %s", self.channel)

    async def _connect_raw(self) -> None:
        """One server: the hot path (publish, subscribe) on raw RESP connections."""
        pub = await open_resp(self.url, CONNECT_TIMEOUT)
        pub.on_lost = self._lost(pub)
        self._pub = pub
        sub = await open_resp(self.url, CONNECT_TIMEOUT, on_push=self._on_push)
        sub.on_lost = self._lost(sub)
        self._sub = sub
        sub.subscribed = True
        async with asyncio.timeout(COMMAND_TIMEOUT * 2):    # confirmed: PUBLISH now counts us
            await sub.command(b"SUBSCRIBE", self.channel)

    async def _connect(self) -> None:
        probe = aioredis.Redis.from_url(self.url, socket_timeout=COMMAND_TIMEOUT,
                                        socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
        try:
            info = await probe.info("cluster")
        finally:
            await probe.aclose()
        self.cluster = bool(info.get("cluster_enabled"))
        if self.cluster:
            cluster = RedisCluster.from_url(self.url, socket_timeout=COMMAND_TIMEOUT,
                                            socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 2))
            self.client = cluster
            await cluster.initialize()
            owner = cluster.get_node_from_key(self.channel)
            if owner is None:
                raise RedisError(f"no cluster node serves the slot of {self.channel}")
            self._subscriber = aioredis.Redis(host=owner.host, port=int(owner.port), socket_timeout=None,
                                              socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
        else:
            pool = aioredis.BlockingConnectionPool.from_url(     # busy: wait for a connection, do not fail
                self.url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0), max_connections=POOL_SIZE, timeout=POOL_WAIT)
            self.client = aioredis.Redis(connection_pool=pool)
            await self.client.ping()
            await self._connect_raw()
            return
        await self.client.ping()
        pubsub = self._subscriber.pubsub()
        self._pubsub = pubsub
        await pubsub.ssubscribe(self.channel)
        async with asyncio.timeout(COMMAND_TIMEOUT * 2):    # confirmed: SPUBLISH now counts us
            while True:
                message = await pubsub.get_message(timeout=COMMAND_TIMEOUT)
                if message is not None and message["type"] in (b"ssubscribe", "ssubscribe"):
                    break
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        pubsub = self._pubsub
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                kind = kind.decode() if isinstance(kind, bytes) else kind
                if kind in ("message", "smessage"):
                    try:
                        self.on_message(message["data"])
                    except Exception:
                        log.exception("bad message on %s", self.channel)
                elif kind in ("unsubscribe", "sunsubscribe"):     # a cluster slot moved: resubscribe
                    self.mark_down(RedisError(f"unsubscribed from {self.channel}"))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.mark_down(exc)

    async def _close(self) -> None:
        pub, sub, self._pub, self._sub = self._pub, self._sub, None, None
        for raw in (pub, sub):
            if raw is not None:
                raw.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for closer in (self._pubsub, self._subscriber, self.client):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.aclose()
        if isinstance(self.client, aioredis.Redis):        # a pool passed in is not closed by aclose()
            with contextlib.suppress(Exception):
                await self.client.connection_pool.disconnect()
        self._pubsub = self._subscriber = self.client = None
        outbox, self._outbox = self._outbox, []
        for _, _, future in outbox:
            if not future.done():
                future.set_exception(RegistryUnavailable("redis is unreachable"))

    # ----- commands --------------------------------------------------------------------------------

    def require(self) -> Client:
        """The command client, or RegistryUnavailable at once while the link is down."""
        if not self.up or self.client is None:
            raise RegistryUnavailable(f"redis is unreachable ({self.last_error or 'connecting'})")
        return self.client

    async def run(self, command: Callable[[Client], Awaitable[Any]]) -> Any:
        """Run one command (or pipeline); connection trouble marks the link down and raises RegistryUnavailable."""
        client = self.require()
        try:
            return await command(client)
        except REDIS_ERRORS as exc:
            self.mark_down(exc)
            raise RegistryUnavailable(f"redis is unreachable ({exc})") from exc

    async def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip, replies in order. One server: on the raw connection (redis-py's
        pipeline objects were a fifth of a connect storm); a cluster: redis-py's cluster pipeline."""
        if self.up and self._pub is not None:
            futures = [self._pub.command(*command) for command in commands]
            return [await future for future in futures]      # replies arrive in order: one wait, mostly

        async def through_client(client: Client) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

        return await self.run(through_client)  # type: ignore[no-any-return]

    def publish(self, channel: str, payload: bytes) -> asyncio.Future[int]:
        """Publish → receiver count. One server: written straight to the raw connection (replies come in
        order); cluster: every publish queued in one loop turn goes out in one pipeline."""
        if self.up and self._pub is not None:
            return self._pub.command(b"PUBLISH", channel, payload)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self.up:
            future.set_exception(RegistryUnavailable(f"redis is unreachable ({self.last_error or 'connecting'})"))
            return future
        self._outbox.append((channel, payload, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return future

    async def _flush(self) -> None:
        command = "SPUBLISH" if self.cluster else "PUBLISH"
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    client = self.require()
                    pipe = client.pipeline(transaction=False)
                    for channel, payload, _ in batch:
                        pipe.execute_command(command, channel, payload)
                    results = await pipe.execute(raise_on_error=False)
                except REDIS_ERRORS as exc:
                    self.mark_down(exc)
                    results = [RegistryUnavailable(f"redis is unreachable ({exc})")] * len(batch)
                except RegistryUnavailable as exc:
                    results = [exc] * len(batch)
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result if isinstance(result, RegistryUnavailable)
                                             else RegistryUnavailable(str(result)))
                    else:
                        future.set_result(int(result))
        finally:
            self._flusher = None
