"""redis_stream, nats and amqp integrations against real brokers: exactly the records sent, in per-connection
order, with identity; a broker stopped (or its connection closed) mid-load answers errors, never hangs, and
loses nothing it confirmed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import defaultdict
from typing import Any

import aio_pika
import nats
import orjson
import redis
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import serve, wait_for
from tests.redis_fixture import RedisServer
from tests.service_fixtures import NatsServer, close_amqp_connections, unique
from wsgw.integrations.amqp import connection_name

CONNECTIONS = 20
PER_CONNECTION = 10


def api(integration: dict[str, Any]) -> dict[str, Any]:
    return {"stage": "prod", "routes": {"$default": {"integration": {"timeoutMs": 3000, **integration},
                                                     "routeResponse": True}}}


async def load(url: str, connections: int = CONNECTIONS, per: int = PER_CONNECTION,
               during: Any = None) -> tuple[dict[str, list[int]], int]:
    """Each socket sends `per` numbered messages one after another; returns the numbers answered queued per
    connection id and how many were answered with an error frame."""
    queued: dict[str, list[int]] = defaultdict(list)
    errors = 0

    async def one(ws: ClientConnection, conn_id: str) -> None:
        nonlocal errors
        for n in range(per):
            await ws.send(json.dumps({"n": n, "conn": conn_id}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if answer.get("queued"):
                queued[conn_id].append(n)
            else:
                assert answer["message"] in ("Internal server error", "Endpoint request timed out"), answer
                errors += 1
            if during is not None:
                await during(n)

    sockets = [await connect(url) for _ in range(connections)]
    try:
        await asyncio.gather(*(one(ws, f"c{i}") for i, ws in enumerate(sockets)))
    finally:
        for ws in sockets:
            await ws.close()
    return queued, errors


def check_records(records: list[tuple[dict[str, Any], dict[str, str]]], queued: dict[str, list[int]],
                  exact: bool = True) -> None:
    """Every queued message is present once, in order per connection, with the identity fields."""
    seen: dict[str, list[int]] = defaultdict(list)
    for body, fields in records:
        seen[body["conn"]].append(body["n"])
        assert fields["routeKey"] == "$default" and fields["stage"] == "prod" and fields["eventType"] == "MESSAGE"
        assert fields["connectionId"] and fields["requestId"] and fields["sourceIp"] == "127.0.0.1"
    for conn, numbers in queued.items():
        got = seen.get(conn, [])
        assert got == sorted(got), f"{conn} out of order: {got}"
        if exact:
            assert got == numbers, (conn, got, numbers)
        else:
            assert set(numbers) <= set(got), (conn, sorted(set(numbers) - set(got)))
    assert len({f["connectionId"] for _b, f in records}) <= CONNECTIONS


def stream_records(port: int, stream: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    client = redis.Redis(port=port)
    out = []
    for _id, fields in client.xrange(stream):
        text = {k.decode(): v.decode() for k, v in fields.items()}
        out.append((json.loads(text.pop("body")), text))
    client.close()
    return out


async def test_redis_stream_records_every_message_in_order_with_identity(redis_server: RedisServer) -> None:
    stream = unique("in")
    async with serve(api({"type": "redis_stream", "stream": stream, "url": redis_server.url})) as server:
        queued, errors = await load(server.urls.websocket)
    assert errors == 0 and sum(map(len, queued.values())) == CONNECTIONS * PER_CONNECTION
    check_records(stream_records(redis_server.port, stream), queued)


async def test_redis_stream_defaults_to_the_registry_and_trims_to_max_len(redis_url: str) -> None:
    stream = unique("in")
    async with serve(api({"type": "redis_stream", "stream": stream, "maxLen": 5}), redis_url=redis_url) as server, \
            connect(server.urls.websocket) as ws:
        for n in range(300):
            await ws.send(json.dumps({"n": n}))
            assert json.loads(await ws.recv())["queued"] is True
    client = redis.Redis.from_url(redis_url.split("?")[0])
    assert client.xlen(stream) < 300      # MAXLEN ~ trims by whole nodes
    client.delete(stream)
    client.close()


async def test_redis_stopped_mid_load_answers_errors_and_loses_nothing_confirmed(tmp_path: Any) -> None:
    server_proc = PersistentRedis(tmp_path)
    stream = unique("in")
    try:
        async with serve(api({"type": "redis_stream", "stream": stream, "url": server_proc.url,
                              "timeoutMs": 1000})) as server:
            async def during(n: int) -> None:
                if n == 3 and server_proc.running:
                    server_proc.stop()
                    await asyncio.sleep(0.3)
                    server_proc.start()

            queued, errors = await load(server.urls.websocket, during=during)
        assert sum(map(len, queued.values())) + errors == CONNECTIONS * PER_CONNECTION
        check_records(stream_records(server_proc.port, stream), queued, exact=False)
    finally:
        server_proc.stop()


class PersistentRedis:
    """A redis-server with an fsync-always append-only file, so what it confirmed survives a restart."""

    def __init__(self, tmp: Any) -> None:
        base = RedisServer()
        self.binary, self.port, self.dir = base.binary, base.port, str(tmp)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(500):
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    subprocess.run(["sleep", "0.02"], check=False)
            raise RuntimeError("redis did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


async def _nats_collect(url: str, subject: str) -> tuple[Any, list[tuple[dict[str, Any], dict[str, str]]]]:
    client = await nats.connect(url)
    got: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def on(msg: Any) -> None:
        got.append((orjson.loads(msg.data), dict(msg.headers or {})))

    await client.subscribe(subject, cb=on)
    await client.flush()
    return client, got


async def test_nats_publishes_every_message_in_order_with_identity_headers(nats_server: NatsServer) -> None:
    subject = unique("in").replace("-", ".")
    client, got = await _nats_collect(nats_server.url, subject)
    async with serve(api({"type": "nats", "subject": subject, "url": nats_server.url})) as server:
        queued, errors = await load(server.urls.websocket)
    await wait_for(lambda: len(got) >= CONNECTIONS * PER_CONNECTION)
    await client.close()
    assert errors == 0
    check_records(got, queued)


async def test_nats_jetstream_acks_and_survives_a_server_restart_mid_load(nats_server: NatsServer) -> None:
    subject = unique("js").replace("-", ".")
    admin = await nats.connect(nats_server.url)
    await admin.jetstream().add_stream(name="IN", subjects=[subject])
    await admin.close()
    async with serve(api({"type": "nats", "subject": subject, "url": nats_server.url, "jetstream": True,
                          "timeoutMs": 1500})) as server:
        async def during(n: int) -> None:
            if n == 3 and nats_server.proc is not None:      # killed, as in a crash, then started on its store
                nats_server.stop(signal.SIGKILL)
                await asyncio.sleep(0.3)
                nats_server.start()

        queued, errors = await load(server.urls.websocket, during=during)
    assert sum(map(len, queued.values())) + errors == CONNECTIONS * PER_CONNECTION
    reader = await nats.connect(nats_server.url)
    js = reader.jetstream()
    sub = await js.pull_subscribe(subject, durable="check")
    records: list[tuple[dict[str, Any], dict[str, str]]] = []
    while True:
        try:
            batch = await sub.fetch(500, timeout=1)
        except nats.errors.TimeoutError:
            break
        records += [(orjson.loads(m.data), dict(m.headers or {})) for m in batch]
    await reader.close()
    check_records(records, queued, exact=False)
    assert sum(map(len, queued.values())) > 0


async def test_amqp_publishes_with_confirms_in_order_with_identity_headers(amqp_url: str) -> None:
    queue_name = unique("wsgw-in")
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(queue_name, auto_delete=True)
    try:
        async with serve(api({"type": "amqp", "routingKey": queue_name, "url": amqp_url})) as server:
            queued, errors = await load(server.urls.websocket)
        records: list[tuple[dict[str, Any], dict[str, str]]] = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (message.headers or {}).items()}
            records.append((orjson.loads(message.body), headers))
        assert errors == 0
        check_records(records, queued)
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()


async def test_amqp_unroutable_message_is_an_error_not_queued(amqp_url: str) -> None:
    async with serve(api({"type": "amqp", "routingKey": unique("nobody-listens"), "url": amqp_url})) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send("x")
        assert json.loads(await ws.recv())["message"] == "Internal server error"


async def test_amqp_connection_closed_by_the_broker_mid_load_reconnects(amqp_url: str) -> None:
    queue_name = unique("wsgw-in")
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(queue_name, auto_delete=True)
    closed: list[int] = []
    started: list[int] = []
    try:
        async with serve(api({"type": "amqp", "routingKey": queue_name, "url": amqp_url,
                              "timeoutMs": 2000})) as server:
            async def during(n: int) -> None:
                if n == 3 and not started:
                    started.append(n)
                    closed.append(await asyncio.to_thread(close_amqp_connections, connection_name("publisher")))

            queued, errors = await load(server.urls.websocket, during=during)
            assert closed and closed[0] >= 1
            async with connect(server.urls.websocket) as ws:    # re-established: publishes again
                await ws.send(json.dumps({"n": 0, "conn": "after"}))
                answer = json.loads(await ws.recv())
                if not answer.get("queued"):
                    await ws.send(json.dumps({"n": 1, "conn": "after"}))
                    answer = json.loads(await ws.recv())
                assert answer.get("queued"), answer
        records: list[tuple[dict[str, Any], dict[str, str]]] = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (message.headers or {}).items()}
            body = orjson.loads(message.body)
            if body["conn"] != "after":
                records.append((body, headers))
        assert sum(map(len, queued.values())) + errors == CONNECTIONS * PER_CONNECTION
        check_records(records, queued, exact=False)
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()
