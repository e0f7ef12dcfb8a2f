"""Property tests (hypothesis) of the two fronts a peer reaches: bytes in → never a crash, always well-formed answers
or a close, and the node keeps serving. Brief in `make test` (a few seconds); `make fuzz` runs the same
properties with many more examples (WSGW_FUZZ=long).

The node runs in its own thread and loop for the whole module, so each example costs one socket, not a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import api_from
from wsgw.config.node import NodeConfig
from wsgw.server.app import GatewayServer
from wsgw.server.node import build_node

settings.register_profile("brief", max_examples=30, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("long" if os.environ.get("WSGW_FUZZ") == "long" else "brief")

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
    "http": {"routes": {"GET /items/{id}": {"handler": "restapp:show"}}},
    "limits": {"handshakeTimeoutSeconds": 0.3, "maxPostBytes": 4096, "maxHttpBodyBytes": 8192},
}
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (f"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
CLOSING = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class Errors(logging.Handler):
    """Every ERROR the node logs (a handler that raised, a task that died): a property failure."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class ThreadNode:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.port = 0
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_errors: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(lambda _, context: self.loop_errors.append(context))
        self.stop = asyncio.Event()
        server = GatewayServer(build_node(api_from(API), NodeConfig(host="127.0.0.1", port=0,
                                                                             ws_engine=self.engine)))
        await server.start()
        self.port = server.port
        self.ready.set()
        await self.stop.wait()
        await server.stop()

    def close(self) -> None:
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


@pytest.fixture(scope="module", params=["websockets", "picows"])
def node(request: pytest.FixtureRequest) -> Iterator[ThreadNode]:
    """A node per WebSocket frame engine: both must answer any input well-formed."""
    errors = Errors()
    logging.getLogger().addHandler(errors)
    running = ThreadNode(request.param)
    running.thread.start()
    assert running.ready.wait(10)
    try:
        yield running
    finally:
        running.close()
        logging.getLogger().removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
    assert running.loop_errors == []


def exchange(port: int, payload: bytes, quiet: float = 0.4) -> tuple[bytes, bool]:
    """Send, then read until the node closes or goes quiet for `quiet` s; → (what it sent, whether it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=quiet) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(payload)
        chunks = []
        closed = True
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            closed = False
        except OSError:
            pass
        return b"".join(chunks), closed


def http_statuses(reply: bytes) -> tuple[list[int], bytes]:
    """Parse the node's answer as HTTP/1.1 responses (raises on anything malformed); → statuses, bytes after a 101."""
    statuses: list[int] = []

    class Sink:
        def on_headers_complete(self) -> None:
            statuses.append(parser.get_status_code())

    parser = httptools.HttpResponseParser(Sink())
    try:
        parser.feed_data(reply)
    except httptools.HttpParserUpgrade as upgrade:
        return statuses, reply[upgrade.args[0]:]
    return statuses, b""


def still_serves(port: int) -> None:
    reply, closed = exchange(port, CLOSING, quiet=10)
    assert closed and http_statuses(reply)[0] == [200]


# ----- the HTTP front --------------------------------------------------------------------------------------

PIECES = [
    b"GET ", b"POST ", b"DELETE ", b"OPTIONS ", b"HEAD ", b"G\x00T ",
    b"/dev", b"/health", b"/metrics", b"/dev/@connections/AAAAAAAAAAAAAAA=", b"/dev/@broadcast", b"/dev/items/1",
    b"/%64ev", b"/dev%2F", b"/dev/../health", b"?a=1&b", b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b" HTTP/2.0\r\n",
    b"Host: x\r\n", b"Host: localhost:1\r\n", b"Content-Length: 5\r\n", b"Content-Length: 99999999\r\n",
    b"Content-Length: -1\r\n", b"Transfer-Encoding: chunked\r\n", b"Connection: Upgrade\r\n",
    b"Connection: close\r\n", b"Upgrade: websocket\r\n", b"Sec-WebSocket-Version: 13\r\n",
    f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b"Sec-WebSocket-Protocol: a, b\r\n", b"X: " + b"v" * 3000 + b"\r\n",
    b"\r\n", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"ffffffff\r\n", b"\r\n\r\n", UPGRADE, CLOSING,
]


@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=48)), max_size=24))
def test_any_bytes_to_the_http_front_get_well_formed_answers_or_a_close(node: ThreadNode, parts: list[bytes]
                                                                       ) -> None:
    reply, _closed = exchange(node.port, b"".join(parts) + CLOSING)
    statuses, _after_upgrade = http_statuses(reply)
    assert all(100 <= status <= 599 for status in statuses)
    assert 500 not in statuses                  # a 500 is a handler or framework fault, never the peer's doing
    still_serves(node.port)


# ----- the WebSocket session ---------------------------------------------------------------------------------

@st.composite
def client_frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB, 0xF]))
    fin = draw(st.booleans())
    rsv = draw(st.sampled_from([0, 0, 0, 0x40]))
    masked = draw(st.sampled_from([True, True, True, False]))
    payload = draw(st.one_of(st.binary(max_size=200), st.text(max_size=60).map(str.encode),
                             st.sampled_from([b"\x03\xe8", b"\x03\xe8bye", b"\x00\x01", b"\xff\xfe", b"\xc3"])))
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    form = draw(st.sampled_from(["short", "16", "64"]))
    if form == "short" and size < 126:
        head += bytes([mask_bit | size])
    elif form == "64":
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    else:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    return head + (b"\x00\x00\x00\x00" if masked else b"") + payload


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse what the node sent after its 101 (raises on a malformed or masked server frame)."""
    frames = []
    while data:
        assert len(data) >= 2
        first, second = data[0], data[1]
        assert first & 0x70 == 0 and second & 0x80 == 0, "reserved bits or a masked server frame"
        opcode, size, at = first & 0x0F, second & 0x7F, 2
        assert opcode in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA)
        if size == 126:
            size, at = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, at = struct.unpack("!Q", data[2:10])[0], 10
        assert len(data) >= at + size, "a truncated frame"
        frames.append((opcode, data[at:at + size]))
        data = data[at + size:]
    return frames


@given(st.lists(st.one_of(client_frames(), st.binary(max_size=16)), max_size=12))
def test_any_frames_in_a_websocket_session_get_well_formed_frames_and_a_clean_close(
        node: ThreadNode, parts: list[bytes]) -> None:
    close = b"\x88\x82\x00\x00\x00\x00\x03\xe8"          # the client's close (1000) after whatever came before
    reply, closed = exchange(node.port, UPGRADE + b"".join(parts) + close)
    statuses, after = http_statuses(reply)
    assert statuses == [101]
    frames = server_frames(after)
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    if not closed and not closes:              # our bytes left a frame unfinished: the session is still open
        still_serves(node.port)
        return
    assert len(closes) == 1 and frames[-1][0] == 0x8, "exactly one close, and last"
    code = struct.unpack("!H", closes[0][:2])[0] if len(closes[0]) >= 2 else 1005
    assert code in (1000, 1002, 1003, 1005, 1007, 1008, 1009, 1011), code   # 1003: binary, as AWS
    still_serves(node.port)
