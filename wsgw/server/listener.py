"""The HTTP/1.1 protocol: one per TCP connection until an upgrade succeeds.

httptools (llhttp) parses HTTP — keep-alive, pipelining and request bodies, which websockets' own parser
refuses. On `GET /{stage}` with `Upgrade: websocket`, the gateway runs $connect first (`Gateway.connect`); when
it admits the connection, the transport is handed to the WebSocket protocol (wsgw/server/websocket.py), as
uvicorn hands it over.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from typing import cast
from urllib.parse import unquote

import httptools

from wsgw.headers import Headers
from wsgw.request import HttpRequest
from wsgw.server.context import ListenerContext, OpenSocket
from wsgw.server.flow import FlowControl
from wsgw.server.http import HttpResponse, plain_error
from wsgw.server.websocket import WebSocketProtocol

__all__ = ["HttpConnection", "ListenerContext", "OpenSocket", "trusted_domain"]

log = logging.getLogger("wsgw.server")

MAX_HEAD_BYTES = 16 * 1024          # request line + headers
MAX_URL_BYTES = 8 * 1024
MAX_PIPELINED = 32                  # queued requests before we stop reading from that client
MAX_QUEUED_BYTES = 1024 * 1024      # ... or queued request bodies
MAX_EARLY_BYTES = 256 * 1024        # bytes a client may send while its $connect runs
KEEPALIVE_SECONDS = 75.0


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


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 until an upgrade succeeds; then the transport belongs to a WebSocketProtocol."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.source_ip = ""
        self.local = ("127.0.0.1", 0)
        self.queue: deque[tuple[HttpRequest, bytes | None]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.upgrading = False
        self.pending: list[bytes] = []      # bytes that arrived while $connect ran
        self.pending_bytes = 0
        self.queued_bytes = 0               # bodies of pipelined requests waiting their turn
        self.lost = False
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
        self.flow = FlowControl(self.transport)
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
        if self.worker is not None and not self.upgrading:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
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
        if (len(self.queue) > MAX_PIPELINED or self.queued_bytes > MAX_QUEUED_BYTES) and self.flow is not None:
            self.flow.pause("pipeline")
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
                if self.flow is not None and len(self.queue) <= MAX_PIPELINED // 2 \
                        and self.queued_bytes <= MAX_QUEUED_BYTES // 2:
                    self.flow.resume("pipeline")
            if not self.queue and not self.upgrading:
                self._arm_timer(KEEPALIVE_SECONDS)
        finally:
            self.worker = None

    async def _upgrade(self, request: HttpRequest, rest: bytes) -> None:
        picked = self.ctx.pick(request) if self.ctx.pick is not None else self.ctx.gateway
        if isinstance(picked, HttpResponse):
            self._fail(picked)
            return
        gateway = picked
        stage = gateway.api.stage
        if request.method != "GET" or unquote(request.raw_path).rstrip("/") != f"/{stage}":
            self._fail(plain_error(404, f"Not Found: WebSocket connections go to /{stage}"))
            return
        problem = handshake_problem(request)
        if problem is not None:
            self._fail(problem)
            return
        assert self.transport is not None and self.flow is not None
        ws = WebSocketProtocol(self.ctx, self.transport, self.flow, request, gateway)
        outcome = await gateway.connect(request, ws)
        if outcome.conn is None:
            if not self.lost:
                self._fail(plain_error(outcome.status, outcome.body or "Refused"))
            return
        # Handed over (ws.accept switched the transport's protocol): this HTTP protocol is done.
        self.ctx.open_sockets.discard(self)
        backlog = rest + b"".join(self.pending)
        self.pending.clear()
        ws.attach(outcome.conn, backlog)

    # ----- helpers ---------------------------------------------------------------------------------

    def _fail(self, response: HttpResponse) -> None:
        """Answer once and close: used for anything that leaves the HTTP stream unusable."""
        if self.transport is None or self.transport.is_closing():
            return
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
        if not self.upgrading and self.worker is None and self.transport is not None:
            if self.in_head and self.head_bytes:
                self._fail(plain_error(408, "Request Timeout"))
            else:
                self.transport.close()

    def shutdown(self) -> None:
        """Node stopping: idle HTTP connections close now; WebSockets are closed by the gateway."""
        if not self.upgrading and self.transport is not None and self.worker is None:
            self.transport.close()


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
