"""The listener: one asyncio.Protocol per TCP connection serving HTTP/1.1 and the WebSocket upgrade on one port.

httptools (llhttp) parses HTTP — keep-alive, pipelining and request bodies, which websockets' own parser
refuses. On `GET /{stage}` with `Upgrade: websocket`, the gateway runs $connect first; only then is the
request handed to websockets' sans-I/O ServerProtocol, which writes the 101 and from there on parses frames.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote

import httptools
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from wsgw.gateway import Connection, Gateway
from wsgw.headers import Headers
from wsgw.request import HttpRequest
from wsgw.server.http import HttpResponse, plain_error

log = logging.getLogger("wsgw.server")
protocol_log = logging.getLogger("wsgw.websocket")   # websockets logs every open at INFO; keep it quiet
protocol_log.setLevel(logging.WARNING)

MAX_HEAD_BYTES = 16 * 1024          # request line + headers
MAX_URL_BYTES = 8 * 1024
MAX_PIPELINED = 32                  # queued requests before we stop reading from that client
MAX_QUEUED_BYTES = 1024 * 1024      # ... or queued request bodies
MAX_EARLY_BYTES = 256 * 1024        # bytes a client may send while its $connect runs
KEEPALIVE_SECONDS = 75.0
CLOSE_HANDSHAKE_SECONDS = 5.0


def trusted_domain(host_header: str | None, local: tuple[str, int], configured: str | None) -> str:
    """requestContext.domainName: the configured `domainName`, else the Host header only when it names this
    node's own address (or localhost) and port, else that address.

    Handlers build their @connections endpoint from domainName (AWS's samples do); a Host header taken as is
    let any client make the node post to a host of its choosing, with connection ids in the path.
    """
    if configured:
        return configured
    address, port = local
    own = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    if host_header:
        if host_header.startswith("["):                      # [::1]:8080
            name, _, rest = host_header[1:].partition("]")
            given_port = rest[1:]
        else:
            name, _, given_port = host_header.rpartition(":")
        if given_port.isdigit() and int(given_port) == port and name.lower() in {"localhost", address, "127.0.0.1",
                                                                                 "::1"}:
            return host_header
    return own


@dataclass(slots=True)
class ListenerContext:
    """What every TCP connection of one node shares."""

    gateway: Gateway
    handle_http: Callable[[HttpRequest], Awaitable[HttpResponse]]
    body_limit_for: Callable[[str], tuple[int, HttpResponse]]   # raw path → (limit, 413 response)
    open_sockets: set[HttpConnection]


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 until an upgrade succeeds, then a WebSocketSession owns the bytes."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.source_ip = ""
        self.local = ("127.0.0.1", 0)
        self.queue: deque[tuple[HttpRequest, bytes | None]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.ws: WebSocketSession | None = None
        self.upgrading = False
        self.pending: list[bytes] = []      # bytes that arrived while $connect ran
        self.pending_bytes = 0
        self.queued_bytes = 0               # bodies of pipelined requests waiting their turn
        self.lost = False
        self.reading_paused = False
        self.head_bytes = 0
        self.in_head = True
        self.timer: asyncio.TimerHandle | None = None
        self.upgrade_request: HttpRequest | None = None
        self._reset_request()

    def _reset_request(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_limit = 0
        self.too_large: HttpResponse | None = None
        self.too_large_response = HttpResponse(413)

    # ----- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.source_ip = peer[0] if isinstance(peer, tuple) else "127.0.0.1"
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1])) if isinstance(sockname, tuple) else ("127.0.0.1", 0)
        self.ctx.open_sockets.add(self)
        self._arm_timer(self.ctx.gateway.limits.handshake_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.ctx.open_sockets.discard(self)
        self._cancel_timer()
        if self.ws is not None:
            self.ws.connection_lost()
        if self.worker is not None and not self.upgrading:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.data_received(data)
            return
        if self.upgrading:
            # A client must wait for the 101 before sending frames (RFC 6455 4.1); a little early data is
            # kept for after the handshake, a flood while $connect runs is refused.
            self.pending_bytes += len(data)
            if self.pending_bytes > MAX_EARLY_BYTES:
                log.warning("dropping %s: %d bytes sent before the handshake completed", self.source_ip,
                            self.pending_bytes)
                self.pending.clear()
                if self.transport is not None:
                    self.transport.abort()
                return
            self.pending.append(data)
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self._queue_upgrade(data[offset:])
            return
        except httptools.HttpParserError as exc:
            self._fail(plain_error(400, f"Bad Request: malformed HTTP ({exc})"))
            return
        if self.in_head and self.head_bytes > MAX_HEAD_BYTES:   # headers still incomplete past the limit
            self._fail(plain_error(431, "Request header fields too large"))

    # ----- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_request()
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._fail(plain_error(414, "URI too long"))
            raise httptools.HttpParserError("URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        self.header_size += len(name) + len(value) + 4
        if self.header_size > MAX_HEAD_BYTES:
            self._fail(plain_error(431, "Request header fields too large"))
            raise httptools.HttpParserError("headers too large")
        if len(self.headers) > 100:
            self._fail(plain_error(431, "Too many request header fields"))
            raise httptools.HttpParserError("too many headers")

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        raw_path = self.url.split(b"?", 1)[0].decode("latin-1")
        self.body_limit, self.too_large_response = self.ctx.body_limit_for(raw_path)
        length = next((v for k, v in self.headers if k.lower() == "content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            self._fail(self.too_large_response)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.body_limit:
            self.too_large = self.too_large_response
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.in_head = True
        self._cancel_timer()
        url = self.url.decode("latin-1")
        path, _, query = url.partition("?")
        headers = Headers(self.headers)
        request = HttpRequest(
            method=self.parser.get_method().decode("ascii", "replace"),
            raw_path=path,
            query_string=query,
            headers=headers,
            body=b"".join(self.body),
            source_ip=self.source_ip,
            keep_alive=self.parser.should_keep_alive(),
            http_version=self.parser.get_http_version(),
            domain_name=trusted_domain(headers.get("host"),
                                       self.local, self.ctx.gateway.api.domain_name),
        )
        if self.too_large is not None:
            self._fail(self.too_large)
            return
        if self.parser.should_upgrade():
            self.upgrade_request = request
            return
        self.queue.append((request, None))
        self.queued_bytes += len(request.body)
        if (len(self.queue) > MAX_PIPELINED or self.queued_bytes > MAX_QUEUED_BYTES) and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._kick()

    # ----- request processing, in order ------------------------------------------------------------

    def _queue_upgrade(self, rest: bytes) -> None:
        if self.upgrade_request is None:      # llhttp saw an upgrade we did not complete a request for
            self._fail(plain_error(400, "Bad Request: incomplete upgrade request"))
            return
        self.upgrading = True
        self.queue.append((self.upgrade_request, rest))
        self._kick()

    def _kick(self) -> None:
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._process())

    async def _process(self) -> None:
        try:
            while self.queue and not self.lost:
                request, upgrade_rest = self.queue.popleft()
                self.queued_bytes -= len(request.body)
                if upgrade_rest is not None:
                    await self._upgrade(request, upgrade_rest)
                    return
                try:
                    response = await self.ctx.handle_http(request)
                except Exception:
                    log.exception("HTTP %s %s failed", request.method, request.raw_path)
                    response = plain_error(500, "Internal Server Error")
                self.ctx.gateway.metrics.inc("wsgw_http_requests_total", f'status="{response.status}"')
                if self.lost or self.transport is None:
                    return
                self.transport.write(response.serialize(request.keep_alive, request.method == "HEAD"))
                if not request.keep_alive:
                    self.transport.close()
                    return
                if self.reading_paused and len(self.queue) <= MAX_PIPELINED // 2 \
                        and self.queued_bytes <= MAX_QUEUED_BYTES // 2:
                    self.reading_paused = False
                    self.transport.resume_reading()
            if not self.queue and not self.upgrading:
                self._arm_timer(KEEPALIVE_SECONDS)
        finally:
            self.worker = None

    async def _upgrade(self, request: HttpRequest, rest: bytes) -> None:
        gateway = self.ctx.gateway
        stage = gateway.api.stage
        if request.method != "GET" or unquote(request.raw_path).rstrip("/") != f"/{stage}":
            self._fail(plain_error(404, f"Not Found: WebSocket connections go to /{stage}"))
            return
        problem = handshake_problem(request)
        if problem is not None:
            self._fail(problem)
            return
        outcome = await gateway.connect(request)
        if self.lost or self.transport is None:
            return
        if outcome.status != 101 or outcome.info is None:
            self._fail(plain_error(outcome.status, outcome.body or "Refused"), json=False)
            return
        chosen = Subprotocol(outcome.subprotocol) if outcome.subprotocol else None
        limits = gateway.limits
        protocol = ServerProtocol(
            select_subprotocol=lambda _proto, offered: chosen if chosen in offered else None,
            max_size=(limits.max_message_bytes, limits.max_frame_bytes),
            logger=protocol_log,
        )
        protocol.receive_data(rebuild_request(request))
        parsed = protocol.events_received()
        if not parsed or not isinstance(parsed[0], Request):
            self._fail(plain_error(400, "Bad Request: invalid WebSocket handshake"))
            return
        response = protocol.accept(parsed[0])
        if response.status_code != 101:
            protocol.send_response(response)
            self._write_all(protocol)
            self.transport.close()
            return
        session = WebSocketSession(self, protocol)

        def send_accept() -> bool:
            if self.lost or self.transport is None or self.transport.is_closing():
                return False
            protocol.send_response(response)
            self._write_all(protocol)
            return True

        conn = await gateway.admit(outcome.info, session, send_accept)
        if conn is None:
            if not self.lost:
                self._fail(plain_error(503, "Service Unavailable: connection registry unreachable"))
            return
        session.attach(conn)
        self.ws = session
        self.upgrading = False
        if outcome.body:
            session.send(outcome.body)
        backlog = rest + b"".join(self.pending)
        self.pending.clear()
        if backlog:
            session.data_received(backlog)

    # ----- helpers ---------------------------------------------------------------------------------

    def _write_all(self, protocol: ServerProtocol) -> None:
        assert self.transport is not None
        for chunk in protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _fail(self, response: HttpResponse, json: bool = True) -> None:
        """Answer once and close: used for anything that leaves the HTTP stream unusable."""
        if self.transport is None or self.transport.is_closing():
            return
        if not json:
            response = HttpResponse(response.status, response.body, [("Content-Type", "text/plain")])
        self.ctx.gateway.metrics.inc("wsgw_http_requests_total", f'status="{response.status}"')
        self.transport.write(response.serialize(keep_alive=False))
        self.transport.close()

    def _arm_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.ws is None and not self.upgrading and self.worker is None and self.transport is not None:
            if self.in_head and self.head_bytes:
                self._fail(plain_error(408, "Request Timeout"))
            else:
                self.transport.close()

    def shutdown(self) -> None:
        """Node stopping: idle HTTP connections close now; WebSockets are closed by the gateway."""
        if self.ws is None and not self.upgrading and self.transport is not None and self.worker is None:
            self.transport.close()


class WebSocketSession:
    """An accepted WebSocket: websockets' ServerProtocol parses frames; this feeds it and flushes writes."""

    __slots__ = (
        "close_timer",
        "conn",
        "fragment_opcode",
        "fragments",
        "gateway",
        "owner",
        "protocol",
        "transport",
    )

    def __init__(self, owner: HttpConnection, protocol: ServerProtocol) -> None:
        assert owner.transport is not None
        self.owner = owner
        self.transport = owner.transport
        self.protocol = protocol
        self.gateway = owner.ctx.gateway
        self.conn: Connection | None = None
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    def attach(self, conn: Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        self.protocol.receive_data(data)
        self.gateway.on_peer_activity(conn)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(conn, event)
        self._flush()

    def _on_frame(self, conn: Connection, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self.fragment_opcode = opcode
                self.fragments = [bytes(frame.data)]
                return
            self._deliver(conn, opcode, bytes(frame.data))
        elif opcode is Opcode.CONT:
            self.fragments.append(bytes(frame.data))
            if frame.fin and self.fragment_opcode is not None:
                data = b"".join(self.fragments)
                opcode, self.fragments, self.fragment_opcode = self.fragment_opcode, [], None
                self._deliver(conn, opcode, data)

    def _deliver(self, conn: Connection, opcode: Opcode, data: bytes) -> None:
        if self.protocol.state is not State.OPEN:
            return
        if opcode is Opcode.TEXT:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.protocol.fail(1007, "Invalid UTF-8 in text frame")
                return
            self.gateway.on_text(conn, text)
        else:
            self.gateway.on_binary(conn, data)

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:                                   # EOF: the server closes TCP after the closing handshake
                self.transport.close()
                self._abort_later()

    def _abort_later(self) -> None:
        """A close waits for the write buffer to drain; a peer that never reads must not keep it (and its
        registration) forever, so every close path ends in an abort after CLOSE_HANDSHAKE_SECONDS."""
        if self.close_timer is None:
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_HANDSHAKE_SECONDS, self.abort)

    # ----- SocketSink ------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> bool:
        """True once the frame is in the socket's buffer; False (the push answers 410) when the connection is
        closed or is a slow consumer whose buffer this frame would take past maxSendBufferBytes."""
        protocol = self.protocol
        if protocol.state is not State.OPEN or self.transport.is_closing():
            return False
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if not self._room_for(len(payload)):
            return False
        if isinstance(data, str):
            protocol.send_text(payload)
        else:
            try:
                data.decode("utf-8")
                protocol.send_text(data)
            except UnicodeDecodeError:
                protocol.send_binary(data)
        self._flush()
        return True

    def send_encoded(self, frame: bytes) -> bool:
        # Safe beside the protocol object: it keeps no state about data frames sent unfragmented.
        if self.protocol.state is not State.OPEN or self.transport.is_closing() or not self._room_for(len(frame)):
            return False
        self.transport.write(frame)
        return True

    def _room_for(self, size: int) -> bool:
        """A frame that would take the buffer past maxSendBufferBytes is refused (its push answers 410) and the
        peer is closed with 1008 behind what it was already promised: a peer that reads again within
        CLOSE_HANDSHAKE_SECONDS gets every frame that was answered 200, then the close."""
        if self.transport.get_write_buffer_size() + size <= self.gateway.limits.max_send_buffer_bytes:
            return True
        log.warning("closing slow consumer %s", self.conn.id if self.conn else "?")
        if self.conn is not None:
            self.conn.close_override = (1008, "Slow consumer")
        self.protocol.fail(1008, "Slow consumer")
        self._flush()
        return False

    def close(self, code: int, reason: str) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            self._abort_later()
        elif self.protocol.state is State.CONNECTING:
            self.abort()

    def abort(self) -> None:
        self.transport.abort()

    def ping(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_ping(b"wsgw")
            self._flush()

    def pause_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
        if self.conn is None:
            return
        protocol = self.protocol
        if protocol.close_rcvd is not None:
            code, reason = protocol.close_rcvd.code, protocol.close_rcvd.reason
        elif protocol.close_sent is not None:
            code, reason = protocol.close_sent.code, protocol.close_sent.reason
        else:
            code, reason = 1006, ""
        self.gateway.on_closed(self.conn, code, reason)


def handshake_problem(request: HttpRequest) -> HttpResponse | None:
    """Check the upgrade headers before $connect runs, so a broken handshake costs no handler call."""
    upgrade = ",".join(request.headers.get_all("upgrade")).lower()
    connection = ",".join(request.headers.get_all("connection")).lower()
    if "websocket" not in upgrade or "upgrade" not in connection:
        return plain_error(426, "Upgrade Required: send 'Connection: Upgrade' and 'Upgrade: websocket'")
    version = request.headers.get_all("sec-websocket-version")
    if version != ["13"]:
        return HttpResponse(426, b'{"message": "Unsupported Sec-WebSocket-Version: use 13"}',
                            [("Sec-WebSocket-Version", "13"), ("Content-Type", "application/json")])
    key = request.headers.get_all("sec-websocket-key")
    try:
        valid_key = len(key) == 1 and len(base64.b64decode(key[0], validate=True)) == 16
    except ValueError:
        valid_key = False
    if not valid_key:
        return plain_error(400, "Bad Request: missing or invalid Sec-WebSocket-Key")
    return None


def rebuild_request(request: HttpRequest) -> bytes:
    """The upgrade request as bytes for websockets' parser (it validates and builds the 101)."""
    target = request.raw_path + ("?" + request.query_string if request.query_string else "")
    lines = [f"GET {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in request.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

