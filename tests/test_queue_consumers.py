"""Workers push back through Redis streams, NATS and RabbitMQ: the consumer on one node delivers to a socket held
by another (through the registry), reports delivered/gone where the worker reads it, and dead-letters poison
messages without stopping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import nats
import orjson
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import eventually, serve, wait_for
from tests.service_fixtures import NatsServer, close_amqp_connections, unique
from wsgw.integrations.amqp import connection_name
from wsgw.server.app import GatewayServer

ROUTES = {"$default": {"integration": {"type": "mock", "response": "ok"}}}


@asynccontextmanager
async def two_nodes(redis_url: str, consumers: list[dict[str, Any]]
                    ) -> AsyncIterator[tuple[GatewayServer, GatewayServer, ClientConnection, str]]:
    """Node A holds the client's socket; node B alone consumes pushes."""
    async with serve({"routes": ROUTES}, redis_url=redis_url) as a, \
            serve({"routes": ROUTES, "consumers": consumers}, redis_url=redis_url) as b, \
            connect(a.urls.websocket) as ws:
        conn_id = await wait_for(lambda: next(iter(a.gateway.connections), None))
        yield a, b, ws, conn_id


async def frames(ws: ClientConnection, n: int) -> list[str | bytes]:
    return [await asyncio.wait_for(ws.recv(), 5) for _ in range(n)]


async def test_redis_stream_pushes_reach_a_socket_on_another_node_with_results_and_dead_letters(
        redis_url: str) -> None:
    stream, results, dead = unique("push"), unique("results"), unique("dead")
    plain = redis_url.split("?")[0]
    client = redis.Redis.from_url(plain)
    consumer = {"type": "redis_stream", "stream": stream, "results": results, "deadLetter": dead, "maxBytes": 1000}
    try:
        async with two_nodes(redis_url, [consumer]) as (_a, _b, ws, conn_id):
            for i in range(20):
                client.xadd(stream, {"payload": json.dumps({"connectionId": conn_id, "data": f"m{i}", "id": f"p{i}"})})
            client.xadd(stream, {"payload": b"not json"})
            client.xadd(stream, {"connectionId": conn_id, "data": "x" * 5000})      # oversized
            client.xadd(stream, {"connectionId": "gone-connection-id", "data": "nobody"})
            client.xadd(stream, {"connectionId": conn_id, "data": "after the poison"})
            assert await frames(ws, 21) == [f"m{i}" for i in range(20)] + ["after the poison"]
            await wait_for(lambda: client.xlen(results) >= 22)
            got = [json.loads(f[b"result"]) for _id, f in client.xrange(results)]
            assert [r["status"] for r in got] == ["delivered"] * 20 + ["gone", "delivered"]
            assert got[0] == {"id": "p0", "connectionId": conn_id, "status": "delivered"}
            assert got[20]["connectionId"] == "gone-connection-id"
            await wait_for(lambda: client.xlen(dead) >= 2)
            reasons = [f[b"reason"].decode() for _id, f in client.xrange(dead)]
            assert reasons[0].startswith("malformed") and reasons[1].startswith("oversized")
            pending = client.xpending(stream, "wsgw")
            assert pending["pending"] == 0          # every push acknowledged, poison included
    finally:
        client.delete(stream, results, dead)
        client.close()


async def test_nats_pushes_answer_delivered_or_gone_on_the_reply_subject(redis_url: str,
                                                                        nats_server: NatsServer) -> None:
    subject, dead = unique("push").replace("-", "."), unique("dead").replace("-", ".")
    worker = await nats.connect(nats_server.url)
    dead_letters: list[Any] = []

    async def on_dead(msg: Any) -> None:
        dead_letters.append(msg)

    await worker.subscribe(dead, cb=on_dead)
    consumer = {"type": "nats", "subject": subject, "url": nats_server.url, "deadLetter": dead}
    try:
        async with two_nodes(redis_url, [consumer]) as (_a, _b, ws, conn_id):
            answers = []
            for i in range(10):
                reply = await worker.request(subject, orjson.dumps({"connectionId": conn_id, "data": f"n{i}"}),
                                             timeout=5)
                answers.append(json.loads(reply.data))
            assert await frames(ws, 10) == [f"n{i}" for i in range(10)]
            assert {a["status"] for a in answers} == {"delivered"}
            reply = await worker.request(subject, b"raw frame", headers={"connectionId": conn_id}, timeout=5)
            assert json.loads(reply.data)["status"] == "delivered" and await ws.recv() == "raw frame"
            reply = await worker.request(subject, orjson.dumps({"connectionId": "nope", "data": "x"}), timeout=5)
            assert json.loads(reply.data) == {"id": None, "connectionId": "nope", "status": "gone"}
            reply = await worker.request(subject, b"{broken", timeout=5)
            assert json.loads(reply.data)["status"] == "error"
            await wait_for(lambda: dead_letters)
            assert dead_letters[0].headers["reason"].startswith("malformed")
            reply = await worker.request(subject, orjson.dumps({"connectionId": conn_id, "data": "still"}), timeout=5)
            assert await ws.recv() == "still"
    finally:
        await worker.close()


async def test_amqp_pushes_are_acked_after_delivery_and_answered_on_reply_to(redis_url: str, amqp_url: str) -> None:
    queue_name, dead = unique("wsgw-push"), unique("wsgw-dead")
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    replies = await channel.declare_queue(exclusive=True)
    consumer = {"type": "amqp", "queue": queue_name, "url": amqp_url, "deadLetter": dead}
    try:
        async with two_nodes(redis_url, [consumer]) as (_a, _b, ws, conn_id):
            for i in range(10):
                await channel.default_exchange.publish(aio_pika.Message(
                    orjson.dumps({"connectionId": conn_id, "data": f"a{i}"}), reply_to=replies.name,
                    correlation_id=f"c{i}"), queue_name)
            await channel.default_exchange.publish(aio_pika.Message(b"garbage", reply_to=replies.name), queue_name)
            await channel.default_exchange.publish(aio_pika.Message(
                b"by header", headers={"connectionId": conn_id}, reply_to=replies.name, correlation_id="h"),
                queue_name)
            await channel.default_exchange.publish(aio_pika.Message(
                orjson.dumps({"connectionId": "gone-id", "data": "x"}), reply_to=replies.name,
                correlation_id="g"), queue_name)
            assert await frames(ws, 11) == [f"a{i}" for i in range(10)] + ["by header"]
            got: dict[str, Any] = {}

            async def collect() -> bool:
                while (message := await replies.get(fail=False, no_ack=True)) is not None:
                    got[str(message.correlation_id)] = json.loads(message.body)
                return len(got) >= 12

            deadline = asyncio.get_running_loop().time() + 5
            while not await collect():
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.05)
            assert all(got[f"c{i}"]["status"] == "delivered" for i in range(10))
            assert got["h"]["status"] == "delivered" and got["g"]["status"] == "gone"
            dead_queue = await channel.declare_queue(dead, durable=True)
            message = await dead_queue.get(timeout=5)
            assert message.body == b"garbage" and str(message.headers["reason"]).startswith("malformed")
            await message.ack()
    finally:
        for name in (queue_name, dead):
            await channel.queue_delete(name)
        await connection.close()


async def test_a_push_to_a_group_reaches_members_on_another_node(redis_url: str, nats_server: NatsServer) -> None:
    import aiohttp

    subject = unique("push").replace("-", ".")
    consumer = {"type": "nats", "subject": subject, "url": nats_server.url}
    worker = await nats.connect(nats_server.url)
    try:
        async with two_nodes(redis_url, [consumer]) as (a, _b, ws, conn_id), aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{a.port}/dev/@groups/room-1/members/{conn_id}"
            async with http.put(url) as response:
                assert response.status == 200
            reply = await worker.request(subject, orjson.dumps({"group": "room-1", "data": {"hi": 1}}), timeout=5)
            assert json.loads(reply.data) == {"id": None, "group": "room-1", "status": "delivered", "delivered": 1}
            assert json.loads(await ws.recv()) == {"hi": 1}
    finally:
        await worker.close()


async def test_consumers_take_pushes_again_after_redis_and_nats_restart(redis_server: Any,
                                                                        nats_server: NatsServer) -> None:
    stream, subject = unique("push"), unique("push").replace("-", ".")
    consumers = [{"type": "redis_stream", "stream": stream, "url": redis_server.url},
                 {"type": "nats", "subject": subject, "url": nats_server.url}]
    async with serve({"routes": ROUTES, "consumers": consumers}) as node, connect(node.urls.websocket) as ws:
        conn_id = await wait_for(lambda: next(iter(node.gateway.connections), None))
        client = redis_server.client()
        client.xadd(stream, {"connectionId": conn_id, "data": "before"})
        assert await asyncio.wait_for(ws.recv(), 5) == "before"
        redis_server.stop()
        nats_server.stop()
        redis_server.start()
        nats_server.start()
        client = redis_server.client()
        client.xadd(stream, {"connectionId": conn_id, "data": "redis after"})
        assert await asyncio.wait_for(ws.recv(), 10) == "redis after"
        worker = await nats.connect(nats_server.url)
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:       # until the gateway's client has reconnected and subscribed again
                try:
                    reply = await worker.request(subject, orjson.dumps({"connectionId": conn_id, "data": "nats after"}),
                                                 timeout=0.5)
                    break
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.1)
            assert json.loads(reply.data)["status"] == "delivered"
            assert await asyncio.wait_for(ws.recv(), 5) == "nats after"
        finally:
            await worker.close()
            client.close()


async def _publish_acked(js: Any, subject: str, payload: bytes, deadline: float) -> None:
    """A worker's publish: JetStream's acknowledgement says the stream holds it (while the server restarts, the
    worker tries again until its own deadline)."""
    while True:
        try:
            await js.publish(subject, payload, timeout=1)
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                nats.js.errors.ServiceUnavailableError, nats.errors.StaleConnectionError) as exc:
            assert asyncio.get_running_loop().time() < deadline, exc
            await asyncio.sleep(0.1)


@pytest.mark.timeout(120)     # a nats-server kill, its JetStream recovery and two nodes' starts on a loaded machine
async def test_a_durable_jetstream_consumer_loses_no_push_across_a_nats_kill_and_a_consumer_node_restart(
        redis_url: str, nats_server: NatsServer) -> None:
    subject, results, dead = (unique(n).replace("-", ".") for n in ("jspush", "jsresults", "jsdead"))
    durable = unique("pushers")
    worker = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = worker.jetstream()
    await js.add_stream(name=durable.upper().replace("-", "_"), subjects=[subject])
    answers: list[dict[str, Any]] = []
    dead_letters: list[Any] = []

    async def on_result(msg: Any) -> None:
        answers.append(json.loads(msg.data))

    async def on_dead(msg: Any) -> None:
        dead_letters.append(msg)

    await worker.subscribe(results, cb=on_result)
    await worker.subscribe(dead, cb=on_dead)
    consumer = {"type": "nats", "subject": subject, "url": nats_server.url, "jetstream": True, "durable": durable,
                "results": results, "deadLetter": dead, "ackWaitSeconds": 5}
    loop = asyncio.get_running_loop()
    try:
        async with serve({"routes": ROUTES}, redis_url=redis_url) as holder, connect(holder.urls.websocket) as ws:
            conn_id = await wait_for(lambda: next(iter(holder.gateway.connections), None))
            received: list[str | bytes] = []

            async def read_socket() -> None:
                while True:
                    received.append(await ws.recv())

            reader = loop.create_task(read_socket())
            async with serve({"routes": ROUTES, "consumers": [consumer]}, redis_url=redis_url):
                for i in range(60):
                    if i == 30:                       # the server dies mid-load and comes back on its store
                        nats_server.stop(signal.SIGKILL)
                        nats_server.start()
                    await _publish_acked(js, subject, orjson.dumps({"connectionId": conn_id, "data": f"j{i}",
                                                                    "id": f"p{i}"}), loop.time() + 20)
                await _publish_acked(js, subject, b"{broken", loop.time() + 5)
                await wait_for(lambda: {f"j{i}" for i in range(60)} <= set(received), timeout=30)
            # no node consumes now: what is published waits in the stream for the durable consumer
            for i in range(60, 80):
                await _publish_acked(js, subject, orjson.dumps({"connectionId": conn_id, "data": f"j{i}"}),
                                     loop.time() + 5)
            await _publish_acked(js, subject, orjson.dumps({"connectionId": "gone-id", "data": "x"}),
                                 loop.time() + 5)
            async with serve({"routes": ROUTES, "consumers": [consumer]}, redis_url=redis_url):
                await wait_for(lambda: {f"j{i}" for i in range(80)} <= set(received), timeout=30)
                await wait_for(lambda: any(a.get("connectionId") == "gone-id" for a in answers), timeout=10)
                info = await js.consumer_info(durable.upper().replace("-", "_"), durable)
                await wait_for(lambda: dead_letters, timeout=10)
            reader.cancel()
        assert dead_letters[0].headers["reason"].startswith("malformed")
        assert {a["status"] for a in answers if a.get("connectionId") == conn_id} == {"delivered"}
        assert [a["status"] for a in answers if a.get("connectionId") == "gone-id"] == ["gone"]
        assert {a["id"] for a in answers if str(a.get("id", "")).startswith("p")} >= {f"p{i}" for i in range(30)}
        assert info.config.durable_name == durable
    finally:
        await worker.close()


async def test_the_amqp_consumer_takes_every_push_after_the_broker_closed_its_connection_mid_load(
        redis_url: str, amqp_url: str) -> None:
    queue_name = unique("wsgw-push")
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    consumer = {"type": "amqp", "queue": queue_name, "url": amqp_url, "prefetch": 8}
    loop = asyncio.get_running_loop()
    try:
        async with two_nodes(redis_url, [consumer]) as (_a, _b, ws, conn_id):
            received: list[str | bytes] = []

            async def read_socket() -> None:
                while True:
                    received.append(await ws.recv())

            reader = loop.create_task(read_socket())
            for i in range(200):
                if i == 100:          # the broker drops the consumer's connection (only this process's)
                    assert await asyncio.to_thread(close_amqp_connections, connection_name("consumer")) == 1
                await channel.default_exchange.publish(aio_pika.Message(
                    orjson.dumps({"connectionId": conn_id, "data": f"r{i}"}),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue_name)
            # the consumer's robust connection re-opens its channel and consumer; what it had taken unacked
            # comes again, so every push arrives (at least once)
            await wait_for(lambda: {f"r{i}" for i in range(200)} <= set(received), timeout=30)

            async def left() -> int:
                declared = await channel.declare_queue(queue_name, passive=True)
                return int(declared.declaration_result.message_count or 0)

            await eventually(left, lambda n: n == 0, timeout=10)       # every push acknowledged
            reader.cancel()
    finally:
        with contextlib.suppress(Exception):
            await channel.queue_delete(queue_name)
        await connection.close()
