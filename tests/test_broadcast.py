"""`POST /{stage}/@broadcast` (beyond AWS): one frame to every connection, on one node and across nodes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import raw_http, serve, wait_for
from wsgw.server.app import GatewayServer

API: dict[str, Any] = {"routes": {"$default": {"handler": "testapp:echo", "routeResponse": True}}}


async def broadcast(server: GatewayServer, body: bytes) -> tuple[int, Any]:
    reply = await raw_http(server.port, b"POST /dev/@broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n\r\n" % len(body) + body)
    head, _, payload = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(payload) if payload.startswith(b"{") else payload


async def clients(server: GatewayServer, n: int) -> list[ClientConnection]:
    opened = [await connect(server.urls.websocket) for _ in range(n)]
    await wait_for(lambda: len(server.gateway.connections) >= n)
    return opened


async def test_broadcast_reaches_every_connection_once_and_counts_them() -> None:
    async with serve(API) as server:
        sockets = await clients(server, 5)
        status, body = await broadcast(server, b'{"news": 1}')
        assert (status, body) == (200, {"delivered": 5})
        assert [await ws.recv() for ws in sockets] == ['{"news": 1}'] * 5
        status, body = await broadcast(server, b"\xff\x00")          # not UTF-8: a binary frame
        assert [await ws.recv() for ws in sockets] == [b"\xff\x00"] * 5
        for ws in sockets:
            await ws.close()


async def test_broadcast_skips_closed_connections_and_order_with_pushes_holds() -> None:
    async with serve(API) as server:
        first, second = await clients(server, 2)
        await first.close()
        await wait_for(lambda: len(server.gateway.connections) == 1)
        for i in range(20):
            status, body = await broadcast(server, str(i).encode())
            assert (status, body) == (200, {"delivered": 1})
        assert [await second.recv() for _ in range(20)] == [str(i) for i in range(20)]
        await second.close()


async def test_oversize_broadcast_is_413_and_wrong_method_405() -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, b"POST /dev/@broadcast HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 131073\r\n\r\nonly the start")
        assert reply.startswith(b"HTTP/1.1 413") and b"PayloadTooLargeException" in reply
        reply = await raw_http(server.port, b"GET /dev/@broadcast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 405")


async def test_broadcast_on_one_node_reaches_connections_on_every_node(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        on_a = await clients(a, 3)
        on_b = await clients(b, 2)
        status, body = await broadcast(b, b"everyone")
        assert (status, body) == (200, {"delivered": 5})
        received = await asyncio.gather(*(ws.recv() for ws in on_a + on_b))
        assert received == ["everyone"] * 5
        for ws in on_a + on_b:
            await ws.close()
