"""Hostile and broken HTTP/WebSocket input: a clear answer, the node keeps serving, no socket leaks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import testapp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import raw_http, serve, wait_for

# every test runs once per WebSocket frame engine (websockets, picows): same limits, codes and order
pytestmark = pytest.mark.usefixtures("ws_engine")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}
UPGRADE = ("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


async def still_serves(server: Any) -> None:
    """The node answers a normal client after whatever the test did."""
    async with connect(server.urls.websocket) as ws:
        await ws.send("alive?")
        assert await ws.recv() == "alive?"


async def no_leaks(server: Any) -> None:
    await wait_for(lambda: not server.open_sockets, timeout=5)
    await wait_for(lambda: not server.gateway.connections, timeout=5)


async def test_health_answers_200_json() -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200")
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert body["status"] == "ok" and body["registry"] == "memory"


async def test_keep_alive_and_pipelined_requests_answer_in_order() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        statuses = []
        for _ in range(3):
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split()[1]))
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
        assert statuses == [200, 410, 404]
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")   # same socket, later
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()


@pytest.mark.parametrize(("request_bytes", "status"), [
    (UPGRADE.format(path="/wrong") + "\r\n", 404),
    (UPGRADE.format(path="/prod") + "\r\n", 404),
    ("GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n", 400),
    ("GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    ("GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    ("GET /dev HTTP/1.1\r\nHost: x\r\n\r\n", 426),
    ("GARBAGE\r\n\r\n", 400),
    ("GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n", 400),
    ("GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "b" * 20000 + "\r\n\r\n", 431),
    ("GET /health HTTP/1.1\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(150)) + "\r\n", 431),
])
async def test_broken_requests_get_a_clear_status_and_the_node_keeps_serving(request_bytes: str, status: int) -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, request_bytes.encode(), read_until_close=False)
        assert reply.startswith(f"HTTP/1.1 {status}".encode()), reply[:200]
        assert testapp.events_of("$connect") == []
        await still_serves(server)
        await no_leaks(server)


async def test_oversized_post_body_is_refused_before_it_is_read() -> None:
    async with serve(API) as server:
        reply = await raw_http(server.port, b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 999999999\r\n\r\npartial")
        assert reply.startswith(b"HTTP/1.1 413")
        assert b"PayloadTooLargeException" in reply
        await still_serves(server)


async def test_client_vanishing_mid_handshake_leaks_nothing() -> None:
    async with serve(API) as server:
        for cut in (10, 40, len(UPGRADE) - 5):
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(UPGRADE.format(path="/dev").encode()[:cut])
            await writer.drain()
            writer.close()
        await no_leaks(server)
        await still_serves(server)


async def test_client_vanishing_while_connect_runs_is_never_registered() -> None:
    api = {"routes": {"$connect": {"handler": "testapp:block_until_released"},
                      "$disconnect": {"handler": "testapp:ok"},
                      "$default": {"handler": "testapp:echo", "routeResponse": True}}}
    async with serve(api) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((UPGRADE.format(path="/dev") + "\r\n").encode())
        await writer.drain()
        await wait_for(lambda: testapp.events_of("$connect"))
        writer.close()
        await wait_for(lambda: not server.open_sockets)
        testapp.RELEASE.set()
        await wait_for(lambda: server.gateway.workers == set() or True)
        assert server.gateway.connections == {}
        assert testapp.events_of("$disconnect") == []


async def test_slow_handshake_is_dropped_after_the_handshake_timeout() -> None:
    async with serve({**API, "limits": {"handshakeTimeoutSeconds": 0.3}}) as server:
        reply = await raw_http(server.port, b"GET /dev HTTP/1.1\r\nHost: x\r\n", timeout=5)
        assert reply.startswith(b"HTTP/1.1 408") or reply == b""
        await no_leaks(server)


async def test_silent_tcp_connection_is_closed_after_the_handshake_timeout() -> None:
    async with serve({**API, "limits": {"handshakeTimeoutSeconds": 0.3}}) as server:
        reply = await raw_http(server.port, b"", timeout=5)
        assert reply == b""
        await no_leaks(server)


async def test_oversize_message_closes_with_1009() -> None:
    async with serve({**API, "limits": {"maxMessageBytes": 1000, "maxFrameBytes": 500}}) as server:
        async with connect(server.urls.websocket, max_size=None) as ws:
            await ws.send([b"a" * 400, b"b" * 400, b"c" * 400])      # fragments within the frame limit, too long
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await wait_for(lambda: testapp.events_of("$disconnect"))
        assert testapp.events_of("$disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1009
        await still_serves(server)


async def test_oversize_frame_closes_with_1009() -> None:
    async with serve({**API, "limits": {"maxFrameBytes": 500}}) as server, connect(server.urls.websocket) as ws:
        await ws.send("x" * 501)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_fragmented_message_within_limits_is_reassembled() -> None:
    async with serve({**API, "limits": {"maxFrameBytes": 500}}) as server, connect(server.urls.websocket) as ws:
        await ws.send(["a" * 400, "b" * 400, "c" * 10])
        assert await ws.recv() == "a" * 400 + "b" * 400 + "c" * 10


async def test_invalid_utf8_text_frame_closes_with_1007() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((UPGRADE.format(path="/dev") + "\r\n").encode())
        await reader.readuntil(b"\r\n\r\n")
        payload = b"\xc3\x28"                          # invalid UTF-8
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(b"\x81" + bytes([0x80 | len(payload)]) + mask + masked)
        close = await reader.read(64)
        assert close[0] == 0x88 and int.from_bytes(close[2:4], "big") == 1007
        writer.close()
        await wait_for(lambda: testapp.events_of("$disconnect"))
        await still_serves(server)


async def test_unknown_stage_upgrade_is_refused_404_by_client() -> None:
    async with serve(API) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.urls.websocket.replace("/dev", "/prod")):
                pass
        assert refused.value.response.status_code == 404


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """One client frame as bytes on the wire (a zero mask keeps the payload readable)."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    else:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    return head + (b"\x00\x00\x00\x00" if masked else b"") + payload


@pytest.mark.parametrize(("frames", "code"), [
    (client_frame(0x1, b"hi", rsv=0x40), 1002),                                 # reserved bit, no extension
    (client_frame(0x0, b"orphan"), 1002),                                        # continuation of nothing
    (client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), 1002),        # new message inside a message
    (client_frame(0x9, b"x", fin=False), 1002),                                  # fragmented ping
    (client_frame(0x9, b"p" * 126), 1002),                                       # control frame over 125 bytes
    (client_frame(0x3, b"x"), 1002),                                             # reserved opcode
    (client_frame(0x1, b"hi", masked=False), 1002),                              # unmasked client frame
    (client_frame(0x8, (5000).to_bytes(2, "big")), 1002),                        # close code out of range
    (client_frame(0x8, (1005).to_bytes(2, "big")), 1002),                        # a code never sent on the wire
    (client_frame(0x8, b"\x03"), 1002),                                          # one-byte close payload
    (client_frame(0x8, b"\x03\xe8\xc3\x28"), 1007),                              # close reason not UTF-8
    (client_frame(0x1, b"\xc3", fin=False) + client_frame(0x0, b"\x28"), 1007),  # fragmented text not UTF-8
    (client_frame(0x1, b"a", fin=False) + client_frame(0x0, b"b", fin=False) * 1100, 1009),   # too many fragments
    (client_frame(0x8, (4000).to_bytes(2, "big") + b"bye"), 4000),               # the peer's close is echoed
    (client_frame(0x8, (1000).to_bytes(2, "big")), 1000),
])
async def test_each_protocol_violation_closes_with_websockets_code(frames: bytes, code: int) -> None:
    """The close code a client gets for each rule of RFC 6455, the same whichever engine parses (the reference
    engine's codes are the contract)."""
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((UPGRADE.format(path="/dev") + "\r\n").encode())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(frames)
        answer = await asyncio.wait_for(reader.read(), timeout=10)        # until the node closes TCP
        closes = [i for i in range(len(answer) - 1) if answer[i] == 0x88]
        assert closes, answer
        assert int.from_bytes(answer[closes[0] + 2:closes[0] + 4], "big") == code
        writer.close()
        await wait_for(lambda: testapp.events_of("$disconnect"))
        await still_serves(server)


async def test_an_empty_close_is_answered_with_an_empty_close() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((UPGRADE.format(path="/dev") + "\r\n").encode())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(client_frame(0x8))
        assert await asyncio.wait_for(reader.read(), timeout=10) == b"\x88\x00"
        writer.close()
        await wait_for(lambda: testapp.events_of("$disconnect"))
        assert testapp.events_of("$disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1005


async def test_a_ping_is_answered_with_a_pong_of_the_same_payload_then_messages_flow() -> None:
    async with serve(API) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((UPGRADE.format(path="/dev") + "\r\n").encode())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(client_frame(0x9, b"are you there") + client_frame(0x1, b"echo me"))
        assert await reader.readexactly(15) == b"\x8a\x0dare you there"
        assert await reader.readexactly(9) == b"\x81\x07echo me"
        writer.close()
