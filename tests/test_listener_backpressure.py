"""Peers that stop reading or send too much: bounded memory, no false 200, nothing left registered."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import testapp

from tests.helpers import raw_http, serve, wait_for
from wsgw.server import websocket

# every test runs once per WebSocket frame engine (websockets, picows): same limits, codes and order
pytestmark = pytest.mark.usefixtures("ws_engine")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}
UPGRADE = (b"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


async def non_reading_peer(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket peer with a tiny receive buffer that completes the handshake and then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
    writer.write(UPGRADE)
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def post(port: int, connection_id: str, body: bytes) -> int:
    reply = await raw_http(port, b"POST /dev/@connections/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n\r\n" % (connection_id.encode(), len(body)) + body)
    return int(reply.split()[1])


async def read_frames(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Server frames until the close frame: (data frames seen, close code)."""
    frames = 0
    while True:
        head = await reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if head[0] & 0x0F == 0x8:
            return frames, int.from_bytes(payload[:2], "big")
        frames += 1


async def test_slow_consumer_gets_410_and_every_frame_answered_200_reaches_it_before_the_close() -> None:
    api = {**API, "limits": {"maxSendBufferBytes": 256 * 1024}}
    async with serve(api) as server:
        reader, writer = await non_reading_peer(server.port)
        (connection_id,) = await wait_for(lambda: list(server.gateway.connections))
        statuses = []
        for _ in range(400):                     # bounded: 400 x 32 KiB is far past any socket buffer
            statuses.append(await post(server.port, connection_id, b"x" * 32768))
            if statuses[-1] != 200:
                break
        assert statuses[-1] == 410 and set(statuses[:-1]) == {200}
        assert await post(server.port, connection_id, b"late") == 410
        frames, code = await asyncio.wait_for(read_frames(reader), 10)    # the peer reads again
        assert (frames, code) == (len(statuses) - 1, 1008)
        await wait_for(lambda: testapp.events_of("$disconnect"))
        event = testapp.events_of("$disconnect")[0]["requestContext"]
        assert (event["disconnectStatusCode"], event["disconnectReason"]) == (1008, "Slow consumer")
        writer.close()


async def test_peer_closing_behind_a_full_buffer_is_aborted_and_forgotten(monkeypatch: pytest.MonkeyPatch
                                                                          ) -> None:
    monkeypatch.setattr(websocket, "CLOSE_HANDSHAKE_SECONDS", 0.3)
    async with serve(API) as server:
        _reader, writer = await non_reading_peer(server.port)
        (connection_id,) = await wait_for(lambda: list(server.gateway.connections))
        sink: Any = server.gateway.connections[connection_id].sink
        for _ in range(100):                     # fill the kernel's buffers until data waits in ours
            assert await post(server.port, connection_id, b"y" * 32768) == 200
            if sink.transport.get_write_buffer_size() > 0:
                break
        assert sink.transport.get_write_buffer_size() > 0
        writer.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")     # a masked close (1000), then read nothing
        await writer.drain()
        await wait_for(lambda: not server.gateway.connections, timeout=5)
        await wait_for(lambda: not server.open_sockets, timeout=5)
        await wait_for(lambda: testapp.events_of("$disconnect"), timeout=5)
        writer.close()


async def test_flood_sent_while_connect_runs_is_refused_and_the_node_keeps_serving() -> None:
    api = {**API, "routes": {**API["routes"], "$connect": {"handler": "testapp:block_until_released"}}}
    async with serve(api) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(UPGRADE)
        await wait_for(lambda: testapp.events_of("$connect"))
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            for _ in range(64):                  # 64 x 64 KiB: past the 256 KiB allowed before the 101
                writer.write(b"\x81\xfe" + b"z" * 65536)
                await writer.drain()
            await reader.readexactly(1)
        await wait_for(lambda: not server.open_sockets)
        testapp.RELEASE.set()
        assert server.gateway.connections == {}
        writer.close()


async def test_pipelined_large_bodies_are_answered_in_order_while_reading_pauses() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = b"b" * 120_000
        request = (b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % len(body)) + body
        writer.write(request * 12 + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        replies = await asyncio.wait_for(reader.read(), 10)
        statuses = [int(line.split()[1]) for line in replies.split(b"\r\n") if line.startswith(b"HTTP/1.1")]
        assert statuses == [410] * 12 + [200]
        writer.close()


async def test_health_refuses_a_body() -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert reply.startswith(b"HTTP/1.1 413")
