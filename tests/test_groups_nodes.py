"""Groups across real `wsgw run --redis` processes: a node killed with -9 loses its members within the
$disconnect bound and a client recovers what it missed on the survivor; 10,000 members across two nodes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import APPS, ROOT, GatewayProcess, eventually, write_config
from wsgw.client import AsyncHttpPusher, AsyncRedisPusher

API: dict[str, Any] = {
    "routes": {
        # the connection id is the first frame (the $connect route response): no extra round trip to learn it
        "$connect": {"integration": {"type": "mock", "response": "$context.connectionId"}, "routeResponse": True},
        "$default": {"integration": {"type": "mock", "response": "ok"}},
    },
    "groups": {"hist:*": {"history": {"size": 50, "ttlSeconds": 60}, "envelope": True},
               "pres:*": {"presence": True}},
}


@contextlib.contextmanager
def nodes(tmp_path: Path, redis_url: str, count: int) -> Iterator[list[GatewayProcess]]:
    config = write_config(tmp_path / "api.yaml", API)
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}"}
    started: list[GatewayProcess] = []
    try:
        for _ in range(count):
            started.append(GatewayProcess(config, "--redis", redis_url, env=env).start())
        yield started
    finally:
        for node in started:
            node.stop()


class RawClient:
    """A minimal WebSocket client (one handshake write, unmasked server frames parsed by hand): thousands of them
    fit in the test process where full clients would cost more than the gateway under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cid = ""

    @staticmethod
    def masked(payload: bytes) -> bytes:
        """A client text frame (clients must mask; a zero mask keeps the payload as is). Payloads < 126 bytes."""
        return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload

    @classmethod
    async def open(cls, port: int, greeting: bool = True) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /dev HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        if greeting:
            client.cid = (await client.frame()).decode()
        return client

    async def frame(self) -> bytes:
        """The next data frame's payload; control frames (the node's keepalive pings on a slow run) are skipped."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
            if not first & 0x08:
                return payload

    def close(self) -> None:
        self.writer.close()


async def open_many(port: int, count: int, concurrency: int = 200, greeting: bool = True) -> list[RawClient]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> RawClient:
        async with gate:
            return await RawClient.open(port, greeting)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def all_member_ids(pusher: AsyncHttpPusher, group: str) -> set[str]:
    ids: set[str] = set()
    token: str | None = None
    while True:
        page = await pusher.presence(group, limit=1000, next_token=token)
        ids |= {m["connectionId"] for m in page["members"]}
        token = page.get("nextToken")
        if token is None:
            return ids


async def test_killing_a_node_removes_its_members_within_the_disconnect_bound_and_recovery_works_on_the_survivor(
        tmp_path: Path, redis_url: str) -> None:
    with nodes(tmp_path, redis_url, 2) as (a, b):
        async with AsyncHttpPusher(f"{b.base}/dev") as via_b, AsyncRedisPusher(redis_url) as pusher:
            on_a = await open_many(a.port, 20)
            on_b = await open_many(b.port, 5)
            for client in on_a + on_b:
                assert await pusher.join("room:k", client.cid) == {"joined": True}
            watcher = on_a[0]
            assert await pusher.join("hist:k", watcher.cid) == {"joined": True}
            presence_b = await RawClient.open(b.port)         # told who joins and leaves pres:k
            assert await pusher.join("pres:k", presence_b.cid) == {"joined": True}
            assert await pusher.join("pres:k", on_a[1].cid) == {"joined": True}
            assert json.loads(await presence_b.frame())["event"] == "join"
            for i in range(3):
                await via_b.publish("hist:k", f'"m{i}"')
            seen = [json.loads(await watcher.frame()) for _ in range(3)]
            assert [f["seq"] for f in seen] == [1, 2, 3]

            a.stop(signal.SIGKILL)
            killed = time.monotonic()
            for i in range(3, 6):                     # published while the watcher has no node
                await via_b.publish("hist:k", f'"m{i}"')
            # node_ttl is 2 s in tests: the survivor reaps within node_ttl + a tick (+ the handlers' time)
            await eventually(lambda: all_member_ids(via_b, "room:k"), lambda ids: ids == {c.cid for c in on_b},
                             timeout=10)
            assert time.monotonic() - killed < 2 + 1 + 2
            assert await via_b.publish("room:k", "survivors") == 5
            # the survivor that reaped a tells pres:k that a's member left (its node can no longer say so)
            assert json.loads(await asyncio.wait_for(presence_b.frame(), 5)) == {
                "group": "pres:k", "event": "leave", "connectionId": on_a[1].cid, "reason": "nodeDown"}
            assert [await c.frame() for c in on_b] == [b"survivors"] * 5

            # the watcher reconnects to the survivor and asks for what came after seq 3
            async with connect(f"{b.ws_url}") as ws:
                cid = str(await ws.recv())
                outcome = await via_b.join("hist:k", cid, since=3)
                assert outcome == {"joined": True, "group": "hist:k", "recovered": True, "replayed": 3}
                frames = [json.loads(await ws.recv()) for _ in range(4)]
            assert [(f.get("seq"), f.get("data")) for f in frames[:3]] == [(4, "m3"), (5, "m4"), (6, "m5")]
            assert frames[3] == {"group": "hist:k", "recovered": True, "replayed": 3}
            for client in [*on_a, *on_b, presence_b]:
                client.close()


# 10,000 real sockets on two nodes: ~60 s when the 2 shared cores carry a load average of 8 (58.8 s on main,
# 62.8 s on a branch, same load), so the suite's 60 s default is too tight a deadline; the test's own waits
# keep their deadlines.
@pytest.mark.timeout(180)
async def test_ten_thousand_members_across_two_nodes(tmp_path: Path, redis_url: str) -> None:
    with nodes(tmp_path, redis_url, 2) as (a, b):
        async with AsyncHttpPusher(f"{a.base}/dev") as via_a, AsyncHttpPusher(f"{b.base}/dev") as via_b:
            clients = await open_many(a.port, 5000) + await open_many(b.port, 5000)
            gate = asyncio.Semaphore(256)

            async def join(client: RawClient, pusher: AsyncHttpPusher) -> None:
                async with gate:
                    assert await pusher.join("big", client.cid) == {"joined": True}

            await asyncio.gather(*(join(c, via_a if i < 5000 else via_b) for i, c in enumerate(clients)))
            started = time.perf_counter()
            count = (await via_b.presence("big", limit=1))["count"]
            presence_ms = (time.perf_counter() - started) * 1000
            assert count == 10_000
            assert await all_member_ids(via_b, "big") == {c.cid for c in clients}
            started = time.perf_counter()
            assert await via_a.publish("big", "to all") == 10_000
            frames = await asyncio.gather(*(c.frame() for c in clients))
            fan_out_ms = (time.perf_counter() - started) * 1000
            assert set(frames) == {b"to all"}
            print(f"\n10,000 members: presence {presence_ms:.1f} ms, publish read back {fan_out_ms:.0f} ms")
            for client in clients[:2500] + clients[5000:7500]:
                client.close()
            await eventually(lambda: via_a.presence("big", limit=1), lambda p: p["count"] == 5000, timeout=20)
            assert await via_b.publish("big", "half") == 5000
            for client in clients[2500:5000] + clients[7500:]:
                client.close()
