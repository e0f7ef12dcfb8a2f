"""The HTTP/1.1 protocol: one per TCP connection until an upgrade succeeds.

httptools (llhttp) parses HTTP — keep-alive, pipelining and request bodies, which websockets' own parser
refuses. On `GET /{stage}` with `Upgrade: websocket`, the gateway runs $connect first (`Gateway.connect`); when
it admits the connection, the transport is handed to the WebSocket protocol (wsgw/server/websocket.py), as
uvicorn hands it over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast
from urllib.parse import unquote

import httptools

from wsgw.gateway.eager import first_step, resume
from wsgw.headers import Headers
from wsgw.request import HttpRequest
from wsgw.server.budgets import tripped
from wsgw.server.context import ListenerContext, OpenSocket
from wsgw.server.flow import FlowControl
from wsgw.server.http import HttpResponse, plain_error
from wsgw.server.websocket import WebSocketProtocol, handshake_answer, refusal_of

__all__ = ["HttpConnection", "ListenerContext", "OpenSocket", "trusted_domain"]

log = logging.getLogger("wsgw.server")

KEEPALIVE_SECONDS = 75.0
ANSWER_BYTES_PER_WRITE = 65_536     # answers to pipelined requests held back for one write, at most


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
    """HTTP/1.1 until an upgrade succeeds; then the transport belongs to a WebSocketProtocol.

    Requests are answered one at a time in arrival order. What a client can make it hold is bounded by the
    budgets (wsgw/server/budgets.py): received bytes are parsed one read batch per loop turn and only while
    fewer than `pipelined_requests` wait; answers the client has not read past `unsent_response_bytes` stop
    both reading and answering until it reads. A request that breaks the stream (malformed, too large, too
    slow) is answered in its place in the order, after the requests before it.
    """

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.budgets = ctx.budgets
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.source_ip = ""
        self.local = ("127.0.0.1", 0)
        self.queue: deque[HttpRequest | tuple[HttpRequest, bytes] | HttpResponse] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.upgrading = False
        self.pending: list[bytes] = []      # bytes that arrived while $connect ran
        self.pending_bytes = 0
        self.unparsed = bytearray()         # received, not parsed yet (a batch at a time, while the queue has room)
        self.parse_scheduled = False
        self.queued_bytes = 0               # bodies of pipelined requests waiting their turn
        self.broken = False                 # a failure is queued: the stream is not read any further
        self.lost = False
        self.head_bytes = 0
        self.in_head = True
        self.mid_request = False            # bytes of a request have arrived, not all of it yet
        self.idle_timer = False             # the timer running is the keep-alive one
        self.timer: asyncio.TimerHandle | None = None
        self.writable: asyncio.Future[None] | None = None
        self.upgrade_request: HttpRequest | None = None
        self._reset_request()

    def _reset_request(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_limit = 0
        self.too_large_response = HttpResponse(413)

    # ----- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self.budgets.unsent_response_bytes)
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
        self.unparsed.clear()
        self._cancel_timer()
        self.resume_writing()
        if self.worker is not None and not self.upgrading:
            self.worker.cancel()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.upgrading:
            # A client must wait for the 101 before sending frames (RFC 6455 4.1); a little early data is
            # kept for after the handshake, a flood while $connect runs is refused.
            self.pending_bytes += len(data)
            if self.budgets.over_early(self.pending_bytes):
                log.warning("dropping %s: %d bytes sent before the handshake completed", self.source_ip,
                            self.pending_bytes)
                tripped(self.ctx.gateway.metrics, "early_bytes")
                self.pending.clear()
                if self.transport is not None:
                    self.transport.abort()
                return
            self.pending.append(data)
            return
        if self.broken:
            return
        self.unparsed += data
        self._parse_more()

    def _holding(self) -> bool:
        return self.budgets.over_pipeline(len(self.queue), self.queued_bytes)

    def _parse_more(self) -> None:
        """Feed the parser one read batch; more on a later loop turn, and only while the queue has room."""
        self.parse_scheduled = False
        flow = self.flow
        if self.broken or self.upgrading or self.lost or flow is None:
            return
        if not self.unparsed or self._holding():
            if self._holding():
                if "pipeline" not in flow.reasons:
                    tripped(self.ctx.gateway.metrics, "pipelined_requests")
                flow.pause("pipeline")
            else:
                flow.resume("pipeline")
            return
        size = self.budgets.read_batch_bytes
        batch = bytes(self.unparsed[:size])
        del self.unparsed[:size]
        self._feed(batch)
        if self.broken or self.upgrading:
            return
        if self.unparsed or self._holding():
            flow.pause("pipeline")
            if not self._holding() and not self.parse_scheduled:
                self.parse_scheduled = True
                asyncio.get_running_loop().call_soon(self._parse_more)
        else:
            flow.resume("pipeline")

    def _feed(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            rest = data[offset:] + bytes(self.unparsed)
            self.unparsed.clear()
            self._queue_upgrade(rest)
            return
        except httptools.HttpParserError as exc:
            self._fail_in_order(plain_error(400, f"Bad Request: malformed HTTP ({exc})"))
            return
        if self.in_head and self.head_bytes > self.budgets.head_bytes:   # headers still incomplete
            self._fail_in_order(plain_error(431, "Request header fields too large"))

    # ----- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_request()
        self.in_head = True
        self.mid_request = True
        if self.timer is None or self.idle_timer:     # a request, once begun, has the handshake timeout to arrive
            self._arm_timer(self.ctx.gateway.limits.handshake_timeout_seconds)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.budgets.url_bytes:
            self._fail_in_order(plain_error(414, "URI too long"))
            raise httptools.HttpParserError("URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        self.header_size += len(name) + len(value) + 4
        if self.header_size > self.budgets.head_bytes:
            self._fail_in_order(plain_error(431, "Request header fields too large"))
            raise httptools.HttpParserError("headers too large")
        if len(self.headers) > self.budgets.header_count:
            self._fail_in_order(plain_error(431, "Too many request header fields"))
            raise httptools.HttpParserError("too many headers")

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        raw_path = self.url.split(b"?", 1)[0].decode("latin-1")
        self.body_limit, self.too_large_response = self.ctx.body_limit_for(raw_path)
        length = next((v for k, v in self.headers if k.lower() == "content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            self._fail_in_order(self.too_large_response)
            raise httptools.HttpParserError("body too large")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.body_limit:     # chunked: answered as soon as it is known, not at its end
            self._fail_in_order(self.too_large_response)
            raise httptools.HttpParserError("body too large")
        self.body.append(body)
        self._arm_timer(self.ctx.gateway.limits.handshake_timeout_seconds)   # a body must keep arriving

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing() or self.broken:
            return
        self.in_head = True
        self.mid_request = False
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
        if self.parser.should_upgrade():
            self.upgrade_request = request
            return
        self.queue.append(request)
        self.queued_bytes += len(request.body)
        self._kick()

    # ----- request processing, in order ------------------------------------------------------------

    def _queue_upgrade(self, rest: bytes) -> None:
        if self.upgrade_request is None:      # llhttp saw an upgrade we did not complete a request for
            self._fail_in_order(plain_error(400, "Bad Request: incomplete upgrade request"))
            return
        self.upgrading = True
        if self.flow is not None:
            self.flow.resume("pipeline")      # bytes now go to `pending`, bounded by the early-bytes budget
        self.queue.append((self.upgrade_request, rest))
        self._kick()

    def _kick(self) -> None:
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._process())

    async def _process(self) -> None:
        # Answers to pipelined requests that needed no wait are written together, once the batch parsed so far
        # is answered (one write instead of one per request), and always before anything waits or closes.
        unsent: list[bytes] = []
        held = 0
        try:
            while self.queue and not self.lost:
                item = self.queue.popleft()
                if isinstance(item, HttpResponse):          # the stream broke here: answer, then close
                    self._write(unsent)
                    self._fail(item)
                    return
                if isinstance(item, tuple):
                    self._write(unsent)
                    await self._upgrade(*item)
                    return
                request = item
                self.queued_bytes -= len(request.body)
                try:
                    call = self.ctx.handle_http(request)
                    answered, outcome = first_step(call)
                    if not answered:                        # it waits: what is answered goes out first
                        self._write(unsent)
                        outcome = await resume(call, outcome)
                    response: HttpResponse = outcome
                except Exception:
                    log.exception("HTTP %s %s failed", request.method, request.raw_path)
                    response = plain_error(500, "Internal Server Error")
                self.ctx.gateway.metrics.answered(response.status)
                transport = self.transport
                if self.lost or transport is None:
                    return
                answer = response.serialize(request.keep_alive, request.method == "HEAD")
                unsent.append(answer)
                held += len(answer)
                if not request.keep_alive:
                    self._write(unsent)
                    transport.close()
                    return
                if not self.parse_scheduled:
                    self._parse_more()
                if not self.queue or held >= ANSWER_BYTES_PER_WRITE \
                        or self.budgets.over_unsent(transport.get_write_buffer_size() + held):
                    self._write(unsent)
                    held = 0
                    if self.budgets.over_unsent(transport.get_write_buffer_size()):
                        await self._drained()
            self._write(unsent)
            if not self.queue and not self.upgrading and not self.mid_request and not self.lost:
                self._arm_timer(KEEPALIVE_SECONDS, idle=True)
        finally:
            self.worker = None

    def _write(self, unsent: list[bytes]) -> None:
        """Write the answers held back for one write (the list is emptied)."""
        if unsent and self.transport is not None and not self.lost:
            self.transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))
        unsent.clear()

    async def _drained(self) -> None:
        """The client has not read our answers: read and answer nothing more until it does."""
        assert self.flow is not None and self.transport is not None
        tripped(self.ctx.gateway.metrics, "unsent_responses")
        self.flow.pause("unsent")
        self.writable = asyncio.get_running_loop().create_future()
        try:
            # transport.set_write_buffer_limits(high=the budget): pause_writing was called, resume_writing
            # will be (or connection_lost resolves it).
            await self.writable
        finally:
            self.writable = None
            self.flow.resume("unsent")

    async def _upgrade(self, request: HttpRequest, rest: bytes) -> None:
        picked = self.ctx.pick(request) if self.ctx.pick is not None else self.ctx.gateway
        if isinstance(picked, HttpResponse):
            self._fail(picked)
            return
        gateway = picked
        stage = gateway.api.stage
        path = unquote(request.raw_path).rstrip("/")
        if request.method == "GET" and path == f"/{stage}/@inspect/ws" and self.ctx.open_inspector is not None:
            self._upgrade_inspector(request, rest)
            return
        if request.method != "GET" or request.raw_path not in (f"/{stage}", f"/{stage}/"):
            self._fail(plain_error(404, f"Not Found: WebSocket connections go to /{stage}"))
            return
        problem = handshake_problem(request)
        if problem is not None:
            self._fail(problem)
            return
        assert self.transport is not None and self.flow is not None
        ws = (self.ctx.engine or WebSocketProtocol)(self.ctx, self.transport, self.flow, request, gateway)
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

    def _upgrade_inspector(self, request: HttpRequest, rest: bytes) -> None:
        """The management WebSocket of the inspector: no $connect, not a gateway connection."""
        assert self.transport is not None and self.ctx.open_inspector is not None
        problem = handshake_problem(request)
        backlog = rest + b"".join(self.pending)
        self.pending.clear()
        refused = problem or self.ctx.open_inspector(request, self.transport, backlog, self.ctx.open_sockets)
        if refused is not None:
            self._fail(refused)
            return
        self.ctx.open_sockets.discard(self)

    # ----- helpers ---------------------------------------------------------------------------------

    def _fail(self, response: HttpResponse) -> None:
        """Answer once and close: used for anything that leaves the HTTP stream unusable."""
        if self.transport is None or self.transport.is_closing():
            return
        self.ctx.gateway.metrics.answered(response.status)
        self.transport.write(response.serialize(keep_alive=False))
        self.transport.close()

    def _fail_in_order(self, response: HttpResponse) -> None:
        """The stream is unusable from here: answer after the requests already queued, read nothing more."""
        if self.broken or self.transport is None or self.transport.is_closing():
            return
        self.broken = True
        self.unparsed.clear()
        self._cancel_timer()
        if self.worker is None and not self.queue:
            self._fail(response)
            return
        self.queue.append(response)
        if self.flow is not None:
            self.flow.pause("broken")

    def _arm_timer(self, seconds: float, idle: bool = False) -> None:
        self._cancel_timer()
        self.idle_timer = idle
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        """No first request, or a request begun and not finished within handshakeTimeoutSeconds (408, after
        any answers owed), or an idle keep-alive connection."""
        self.timer = None
        if self.upgrading or self.transport is None or self.lost:
            return
        if self.mid_request:
            self._fail_in_order(plain_error(408, "Request Timeout"))
        elif self.worker is None:
            self.transport.close()

    def shutdown(self) -> None:
        """Node stopping: idle HTTP connections close now; WebSockets are closed by the gateway."""
        if not self.upgrading and self.transport is not None and self.worker is None:
            self.transport.close()


def handshake_problem(request: HttpRequest) -> HttpResponse | None:
    """Judge the whole upgrade request before $connect runs, so a handshake that will be refused costs no
    handler call (and leaves no state that no $disconnect would clean up): websockets' own verdict, plus no
    body (an upgrade carries none)."""
    if request.body or request.headers.get_all("content-length") not in ([], ["0"]) \
            or request.headers.get_all("transfer-encoding"):
        return plain_error(400, "Bad Request: a WebSocket upgrade request has no body")
    version = request.headers.get_all("sec-websocket-version")
    if version and version != ["13"]:
        return HttpResponse(426, b'{"message": "Unsupported Sec-WebSocket-Version: use 13"}',
                            [("Sec-WebSocket-Version", "13"), ("Content-Type", "application/json")])
    answer = handshake_answer(request)
    if answer.status_code != 101:
        return refusal_of(answer)
    return None
