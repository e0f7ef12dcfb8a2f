"""Redis misbehaving in ways a restart does not show: replies lost after a write landed, a hung server, the
server closing the subscriber connection. Real redis-server, real in-process nodes; a small TCP proxy in
between when the test must lose Redis's replies but not its writes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import serve, wait_for
from tests.redis_fixture import RedisServer, with_options
from tests.test_redis_registry import API, _push_until_delivered, open_client
from wsgw.registry import RegistryUnavailable
from wsgw.registry.redis import RedisRegistry
from wsgw.registry.redis_store import Keys
from wsgw.registry.redis_wire import RedisOptions


class ReplyEater:
    """A TCP proxy to Redis that forwards every command but, while `eating`, drops Redis's replies."""

    def __init__(self, port: int) -> None:
        self.upstream_port = port
        self.eating = False
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if not (replies and self.eating):
                        dst.write(data)
                        await dst.drain()
            dst.close()

        for task in (asyncio.create_task(pipe(reader, up_writer, False)),
                     asyncio.create_task(pipe(up_reader, writer, True))):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def reply_eater(port: int) -> AsyncIterator[tuple[ReplyEater, int]]:
    proxy = ReplyEater(port)
    listen = await proxy.start()
    try:
        yield proxy, listen
    finally:
        await proxy.stop()


async def test_a_registration_that_landed_but_whose_reply_was_lost_is_refused_and_removed(
        redis_url: str) -> None:
    base, _, query = redis_url.partition("?")
    port = int(base.rsplit(":", 1)[1].split("/")[0])
    keys = Keys(RedisOptions.from_url(redis_url).key_prefix)
    store = redis.Redis(port=port)
    async with reply_eater(port) as (proxy, listen):
        url = f"redis://127.0.0.1:{listen}/0?{query}"
        async with serve(API, redis_url=url) as node:
            proxy.eating = True       # Redis runs the registration pipeline; the node never hears back
            with pytest.raises(InvalidStatus) as refused:
                async with connect(node.urls.websocket, open_timeout=15):
                    pass
            assert refused.value.response.status_code == 503
            written = store.keys(f"{keys.prefix}:*:conn")
            assert len(written) == 1, "the registration should have reached Redis"
            proxy.eating = False
            # the refused connection's hash and set entry go once the node reaches Redis again
            await wait_for(lambda: not store.exists(written[0]), timeout=15)
            assert store.scard(keys.conns(node.gateway.node_id)) == 0
            ws, _ = await open_client(node)      # and the node serves again
            await ws.close()
    store.close()


async def test_a_hung_redis_answers_pushes_with_503_or_504_instead_of_waiting(redis_server: RedisServer) -> None:
    url = with_options(redis_server.url, node_ttl=2, push_timeout=0.3)
    async with serve(API, redis_url=url) as a, serve(API, redis_url=url) as b:
        ws, cid = await open_client(a)
        assert await b.gateway.post(cid, b"before")
        assert await ws.recv() == "before"
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(3):
                with pytest.raises(RegistryUnavailable):      # 503, or OwnerTimeout (504): never a hang
                    await asyncio.wait_for(b.gateway.post(cid, b"hung"), 10)
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        await wait_for(lambda: b.gateway.registry.health()["redis"] == "up", timeout=10)
        await _push_until_delivered(b, cid, b"after")     # bounded: it used to spin without a deadline or a yield
        # a publish Redis held while hung may still be delivered when it resumes (its caller saw 503/504)
        frames = [await ws.recv()]
        while frames[-1] != "after":
            frames.append(await asyncio.wait_for(ws.recv(), 5))
        assert set(frames) <= {"hung", "after"}
        await ws.close()


async def test_redis_killing_the_subscriber_connection_marks_the_link_down_and_resubscribes(
        redis_server: RedisServer) -> None:
    url = with_options(redis_server.url, node_ttl=2)
    async with serve(API, redis_url=url) as a, serve(API, redis_url=url) as b:
        ws, cid = await open_client(a)
        registry = a.gateway.registry
        assert isinstance(registry, RedisRegistry)
        came_up = registry.link.up_since
        admin = redis_server.client()
        assert admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 2   # both nodes' subscribers
        await wait_for(lambda: registry.link.up and registry.link.up_since > came_up, timeout=10)
        delivered = 0
        for _ in range(200):
            try:
                if await b.gateway.post(cid, b"after kill"):
                    delivered += 1
                    break
            except RegistryUnavailable:
                await asyncio.sleep(0.05)
        assert delivered == 1
        assert await ws.recv() == "after kill"
        subscribers = admin.execute_command("PUBSUB", "NUMSUB", registry.keys.channel(registry.node_id))
        assert subscribers[1] == 1
        admin.close()
        await ws.close()
