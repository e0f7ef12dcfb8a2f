"""Regressions of issue 20's findings, each against an in-process node with raw sockets: what a peer can make the
node hold is bounded, one connection cannot stall the loop, the handshake is judged before any handler runs."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from typing import Any

import pytest
import testapp

from tests.helpers import raw_http, serve, wait_for
from wsgw.server import websocket
from wsgw.server.budgets import BUDGET_METRIC
from wsgw.server.engines import ENGINES
from wsgw.server.websocket import WebSocketSocket

# every test runs once per WebSocket frame engine (websockets, picows): same limits, codes and order
pytestmark = pytest.mark.usefixtures("ws_engine")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(path: str = "/dev", version: str = "1.1", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/{version}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode("latin-1")


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A client frame, masked with a zero key (valid, and the payload stays readable)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


async def ws_peer(port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw WebSocket peer past its 101; with `rcvbuf`, one whose kernel takes little before it must read."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
    writer.write(upgrade())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def next_close(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Server frames until its close: (data frames seen, close code)."""
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
        if head[0] & 0x0F in (0x1, 0x2):
            frames += 1


async def statuses_of(port: int, payload: bytes, timeout: float = 5.0) -> list[int]:
    reply = await raw_http(port, payload, timeout=timeout)
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]


# ----- item 1: control frames count against the send buffer ----------------------------------------------

async def test_pings_from_a_peer_that_never_reads_close_it_with_1008_once_the_pongs_pass_the_send_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websocket, "CLOSE_HANDSHAKE_SECONDS", 0.3)
    async with serve({**API, "limits": {"maxSendBufferBytes": 256 * 1024}}) as server:
        _reader, writer = await ws_peer(server.port, rcvbuf=4096)
        ping = frame(0x9, b"p" * 125) * 512                   # 64 KiB of pings: 64 KiB of pongs owed
        sent = 0
        with pytest.raises((ConnectionError, TimeoutError)):
            while sent < 16 * 1024 * 1024:                     # on main this went on forever
                writer.write(ping)
                await asyncio.wait_for(writer.drain(), 2)
                sent += len(ping)
        await wait_for(lambda: not server.gateway.connections, timeout=5)
        await wait_for(lambda: testapp.events_of("$disconnect"), timeout=5)
        event = testapp.events_of("$disconnect")[0]["requestContext"]
        assert event["disconnectStatusCode"] == 1008
        assert server.gateway.metrics.value(BUDGET_METRIC, budget="send_buffer") == 1
        writer.close()


# ----- item 2: pipelined responses nobody reads -------------------------------------------------------------

async def test_pipelined_requests_from_a_peer_that_never_reads_hold_at_most_the_unsent_response_budget() -> None:
    async with serve({**API, "limits": {"maxUnsentResponseBytes": 64 * 1024}}) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        _reader, writer = await asyncio.open_connection(sock=sock)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
        largest = 0
        try:
            for _ in range(30):                                # up to 30,000 requests, ~1 MB
                writer.write(request)
                await asyncio.wait_for(writer.drain(), 1)
                for conn in list(server.open_sockets):
                    if conn.transport is not None:
                        largest = max(largest, conn.transport.get_write_buffer_size())
        except TimeoutError:
            pass                                               # the node stopped reading: what we want
        for conn in list(server.open_sockets):
            if conn.transport is not None:
                largest = max(largest, conn.transport.get_write_buffer_size())
        assert largest <= 64 * 1024 + 16 * 1024                # the budget plus one answer
        assert server.gateway.metrics.value(BUDGET_METRIC, budget="unsent_responses") >= 1
        writer.close()


# ----- item 3: empty continuation frames ----------------------------------------------------------------------

async def test_a_message_of_too_many_fragments_is_closed_with_1009() -> None:
    async with serve(API) as server:
        reader, writer = await ws_peer(server.port)
        writer.write(frame(0x1, b"a", fin=False) + frame(0x0, b"", fin=False) * 5000)
        await writer.drain()
        _frames, code = await asyncio.wait_for(next_close(reader), 5)
        assert code == 1009
        assert server.gateway.metrics.value(BUDGET_METRIC, budget="fragments") == 1
        writer.close()


async def test_a_fragmented_message_within_the_fragment_budget_is_delivered_whole() -> None:
    async with serve(API) as server:
        reader, writer = await ws_peer(server.port)
        writer.write(frame(0x1, b"he", fin=False) + frame(0x0, b"", fin=False) * 1000 + frame(0x0, b"llo"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(2), 5)
        assert head[0] == 0x81 and await reader.readexactly(head[1]) == b"hello"
        writer.close()


# ----- item 4: one connection's cheap frames cannot hold the loop -------------------------------------------

def flood_pings_and_read(port: int, megabytes: int, done: threading.Event) -> None:
    """A blocking peer in its own thread: 1 KiB... of 6-byte pings, reading every pong."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(upgrade())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)

    def drain() -> None:
        while not done.is_set():
            try:
                if not sock.recv(1 << 16):
                    return
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    chunk = frame(0x9) * (256 * 1024 // 6)
    for _ in range(megabytes * 4):
        sock.sendall(chunk)
    sock.sendall(frame(0x1, b"last"))
    done.wait(30)
    sock.close()


async def test_a_ping_flood_is_parsed_one_read_batch_per_loop_turn(monkeypatch: pytest.MonkeyPatch,
                                                                   ws_engine: str) -> None:
    """Work per loop turn, counted rather than timed: the bytes the frame engine parses for one connection
    between two turns of the loop (a task that counts turns) stay within the read batch."""
    turn = 0
    parsed: dict[int, int] = {}
    engine = ENGINES[ws_engine]
    parse = engine._parse

    def counting(self: WebSocketSocket, data: bytes) -> None:
        parsed[turn] = parsed.get(turn, 0) + len(data)
        parse(self, data)

    monkeypatch.setattr(engine, "_parse", counting)
    async with serve(API) as server:
        done = threading.Event()
        flood = threading.Thread(target=flood_pings_and_read, args=(server.port, 4, done), daemon=True)
        flood.start()
        try:
            async with asyncio.timeout(60):
                while not testapp.events_of("$default"):
                    turn += 1
                    await asyncio.sleep(0)
        finally:
            done.set()
            flood.join(10)
        assert sum(parsed.values()) > 4_000_000                # the 4 MiB of pings went through
        assert max(parsed.values()) <= 2 * 16_384, max(parsed.values())
        assert server.gateway.metrics.value(BUDGET_METRIC, budget="read_batch") > 0


# ----- item 5: the whole handshake is judged before $connect --------------------------------------------------

@pytest.mark.parametrize(("payload", "status"), [
    (upgrade().replace(b"Upgrade: websocket", b"Upgrade: websocketx"), 426),
    (upgrade(extra="Content-Length: 5\r\n") + b"hello", 400),
    (upgrade(extra="Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n", 400),
    (upgrade(extra=f"Sec-WebSocket-Key: {KEY}\r\n"), 400),
])
async def test_a_refused_handshake_runs_no_handler(payload: bytes, status: int) -> None:
    async with serve(API) as server:
        assert await statuses_of(server.port, payload) == [status]
        assert testapp.events_of("$connect") == []
        await wait_for(lambda: not server.open_sockets)


async def test_a_16_kib_head_with_a_12_kib_token_line_is_accepted() -> None:
    async with serve(API) as server:
        token = "e" * 12 * 1024
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(upgrade(extra=f"Authorization: Bearer {token}\r\n"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert testapp.events_of("$connect")[0]["headers"]["Authorization"] == f"Bearer {token}"
        writer.close()


# ----- item 6: a slow reader gets every frame answered 200 --------------------------------------------------

async def test_a_slow_reader_that_keeps_draining_after_the_1008_gets_every_frame_answered_200(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websocket, "CLOSE_HANDSHAKE_SECONDS", 0.5)
    async with serve({**API, "limits": {"maxSendBufferBytes": 1024 * 1024}}) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
        writer.write(upgrade())
        await reader.readuntil(b"\r\n\r\n")
        (connection_id,) = await wait_for(lambda: list(server.gateway.connections))
        answered = 0
        while await server.gateway.post(connection_id, b"z" * 16384):
            answered += 1
        await asyncio.sleep(0.3)                               # a pause shorter than one drain window

        async def slow_read() -> tuple[int, int]:              # then ~1 MB/s: several drain windows
            frames = 0
            buffer = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed before the close frame")
                buffer += chunk
                while len(buffer) >= 4:
                    length = buffer[1] & 0x7F
                    start = 2 if length < 126 else 4
                    if length == 126:
                        length = int.from_bytes(buffer[2:4], "big")
                    if len(buffer) < start + length:
                        break
                    opcode, payload = buffer[0] & 0x0F, buffer[start:start + length]
                    buffer = buffer[start + length:]
                    if opcode == 0x8:
                        return frames, int.from_bytes(payload[:2], "big")
                    frames += 1
                await asyncio.sleep(0.05)

        frames, code = await asyncio.wait_for(slow_read(), 30)
        assert (frames, code) == (answered, 1008)
        writer.close()


# ----- item 7 / 8: pipelined garbage and slowloris after a fast request -----------------------------------

async def test_valid_pipelined_requests_before_garbage_are_answered_in_order_then_400() -> None:
    async with serve(API) as server:
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        assert await statuses_of(server.port, health * 2 + b"\x01\x02 nonsense\r\n\r\n") == [200, 200, 400]


async def test_an_oversized_body_after_pipelined_requests_is_answered_413_in_order() -> None:
    async with serve(API) as server:
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        big = b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n"
        assert await statuses_of(server.port, health + big) == [200, 413]


async def test_a_slow_request_after_a_fast_one_is_bounded_by_the_handshake_timeout() -> None:
    async with serve({**API, "limits": {"handshakeTimeoutSeconds": 0.5}}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"GET /health HTTP/1.1\r\nHo")
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 5)          # on main: the 75 s keep-alive timer
        assert b"HTTP/1.1 408" in rest
        writer.close()


# ----- item 10: lenient upgrades -----------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [upgrade(version="1.0"), upgrade("/%64ev"), upgrade("/dev%2F"),
                                     upgrade("/dev//")])
async def test_upgrades_websockets_does_not_allow_are_refused_before_connect(payload: bytes) -> None:
    async with serve(API) as server:
        (status,) = await statuses_of(server.port, payload)
        assert status != 101 and status >= 400
        assert testapp.events_of("$connect") == []


@pytest.mark.parametrize("path", ["/dev", "/dev/", "/dev?x=1"])
async def test_the_stage_path_opens_a_websocket(path: str) -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(upgrade(path))
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
        writer.close()


# ----- item 12: chunked oversize @connections body, /metrics access --------------------------------------------

async def test_an_oversized_chunked_push_is_answered_413_at_once() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        chunk = b"x" * 200_000
        writer.write(b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)   # on main: a silent close after 10 s
        assert head.startswith(b"HTTP/1.1 413")
        writer.close()


async def test_metrics_follow_management_allow_from() -> None:
    async with serve({**API, "management": {"allowFrom": ["10.0.0.0/8"]}}) as server:
        assert await statuses_of(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") \
            == [403]
    async with serve(API) as server:
        assert await statuses_of(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") \
            == [200]
