"""The WebSocket protocol: after the upgrade the transport is handed here (transport.set_protocol), and
websockets' sans-I/O ServerProtocol validates the handshake, writes the 101 and parses frames.

It is the gateway's SocketSink for that connection: the gateway calls `accept` once $connect allowed it.
What a peer can make it hold or do is bounded by wsgw/server/budgets.py: bytes owed to the peer (data and control
frames alike), fragments of one message, and the bytes parsed per loop turn before it yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from wsgw.gateway import Connection, Gateway
from wsgw.request import HttpRequest
from wsgw.server.budgets import tripped
from wsgw.server.context import ListenerContext
from wsgw.server.flow import FlowControl
from wsgw.server.http import HttpResponse

log = logging.getLogger("wsgw.server")
protocol_log = logging.getLogger("wsgw.websocket")   # websockets logs every open at INFO; keep it quiet
protocol_log.setLevel(logging.WARNING)

CLOSE_HANDSHAKE_SECONDS = 5.0


def handshake_request(request: HttpRequest) -> Request:
    """The upgrade request as websockets' value, built from what httptools parsed (no second parser, so no
    second set of line limits: the head limit is the listener's)."""
    target = request.raw_path + ("?" + request.query_string if request.query_string else "")
    return Request(target, Headers(request.headers), request.method, f"HTTP/{request.http_version}")


def handshake_answer(request: HttpRequest, subprotocol: str | None = None) -> Response:
    """websockets' own verdict on an upgrade request: 101, or the refusal it would send. The listener asks it
    before any handler runs; `accept` asks it again and sends it."""
    chosen = Subprotocol(subprotocol) if subprotocol else None
    judge = ServerProtocol(select_subprotocol=lambda _proto, offered: chosen if chosen in offered else None,
                           logger=protocol_log)
    return judge.accept(handshake_request(request))


def refusal_of(response: Response) -> HttpResponse:
    """websockets' refusal as our response (its reason in a JSON body, its extra headers kept)."""
    body = (response.body or b"").decode("utf-8", "replace").strip() or response.reason_phrase
    headers = [(k, v) for k, v in response.headers.raw_items()
               if k.lower() in ("upgrade", "allow", "sec-websocket-version")]
    return HttpResponse.json(response.status_code, {"message": body}, headers)


def close_frames(protocol: ServerProtocol) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """The close frames received and sent, as (code, reason); the gateway decides what $disconnect reports."""
    received = protocol.close_rcvd
    sent = protocol.close_sent
    return (None if received is None else (received.code, received.reason),
            None if sent is None else (sent.code, sent.reason))


class WebSocketSocket(asyncio.Protocol):
    """One WebSocket from its upgrade request to its end, whichever frame engine parses and writes its frames.

    Everything but the frames is here, shared by both engines: the handshake (ours: `handshake_answer` judges,
    the 101 is written here), the budgets, the read batches, the close timer and the SocketSink methods that
    do not touch frames. A subclass (`ENGINES`, wsgw/server/engines.py) parses and writes frames."""

    __slots__ = ("budgets", "close_timer", "conn", "ctx", "flow", "gateway", "request", "transport", "unread")

    def __init__(self, ctx: ListenerContext, transport: asyncio.Transport, flow: FlowControl,
                 request: HttpRequest, gateway: Gateway | None = None) -> None:
        self.ctx = ctx
        self.gateway: Gateway = gateway or ctx.gateway      # the connection's (API, stage, version) for life
        self.transport = transport
        self.flow = flow
        self.request: HttpRequest | None = request      # until `accept`: the handshake's only reader
        self.budgets = ctx.budgets if self.gateway is ctx.gateway else ctx.budgets.with_limits(self.gateway.limits)
        self.conn: Connection | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.unread = bytearray()            # received, not parsed yet: at most one read beyond a batch

    # ----- what an engine provides -----------------------------------------------------------------

    def _open_frames(self) -> None:
        """Make the frame engine, once the 101 is written; until then the socket is CONNECTING."""
        raise NotImplementedError

    def _parse(self, data: bytes) -> None:
        """Parse frames and hand complete messages to the gateway."""
        raise NotImplementedError

    def is_open(self) -> bool:
        raise NotImplementedError

    def is_connecting(self) -> bool:
        raise NotImplementedError

    def fail(self, code: int, reason: str) -> None:
        """A protocol or budget violation: send the close frame and close TCP (the server side ends first)."""
        raise NotImplementedError

    def close_frames(self) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
        """The close frames received and sent, as (code, reason); the gateway decides what $disconnect reports."""
        raise NotImplementedError

    def send(self, data: bytes | str) -> bool:
        """True once the frame is in the socket's buffer; False (the push answers 410) when the connection is
        closed or is a slow consumer whose buffer this frame would take past maxSendBufferBytes."""
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def ping(self) -> None:
        raise NotImplementedError

    # ----- the handshake (SocketSink.accept) -------------------------------------------------------

    def accept(self, subprotocol: str | None) -> bool:
        """Write the 101 and take the transport over; False when the client left or websockets refused."""
        transport, request = self.transport, self.request
        self.request = None                  # its headers are not kept for the connection's life
        if transport.is_closing() or request is None:
            return False
        response = handshake_answer(request, subprotocol)
        if response.status_code != 101:      # the listener asked the same question before $connect: not reached
            refusal = refusal_of(response)
            self.gateway.metrics.answered(refusal.status)
            transport.write(refusal.serialize(keep_alive=False))
            transport.close()
            return False
        transport.write(response.serialize())
        self._open_frames()
        transport.set_protocol(self)       # the handover: from now on its bytes and its end come here
        return True

    def attach(self, conn: Connection, backlog: bytes) -> None:
        """Admitted: replaces the HTTP protocol among the open sockets, then reads what arrived early."""
        self.conn = conn
        self.ctx.open_sockets.add(self)
        if backlog:
            self.data_received(backlog)

    # ----- asyncio.Protocol ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Parse at most one read batch per loop turn: a read of many cheap frames (pings, empty fragments,
        throttled messages) yields to the other connections between batches, reading paused meanwhile."""
        assert self.conn is not None
        self.gateway.on_peer_activity(self.conn)
        if self.unread:                      # a batch is already scheduled: it will get to these bytes
            self.unread += data
            return
        if len(data) <= self.budgets.read_batch_bytes:
            self._parse(data)
            return
        self.unread += data
        self._parse_batch()

    def _parse_batch(self) -> None:
        if not self.unread:                  # the socket ended meanwhile
            self.flow.resume("read_batch")
            return
        size = self.budgets.read_batch_bytes
        batch = bytes(self.unread[:size])
        del self.unread[:size]
        self._parse(batch)
        if self.unread and not self.transport.is_closing():
            tripped(self.gateway.metrics, "read_batch")
            self.flow.pause("read_batch")
            asyncio.get_running_loop().call_soon(self._parse_batch)
        else:
            self.unread.clear()
            self.flow.resume("read_batch")

    def _check_owed(self) -> None:
        """Pongs (and close replies) are written without asking `send`: they count against the same budget."""
        if self.is_open() and self.budgets.over_send(self.transport.get_write_buffer_size()):
            self._slow_consumer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctx.open_sockets.discard(self)
        self.unread.clear()
        if self.close_timer is not None:
            self.close_timer.cancel()
        if self.conn is None:
            return
        received, sent = self.close_frames()
        self.gateway.on_closed(self.conn, received, sent)

    def shutdown(self) -> None:
        """The gateway closes WebSockets itself (1001, then $disconnect)."""

    def _closed_by_server(self) -> None:
        """The closing handshake is done (or failed) on our side: close TCP once the buffer drains."""
        self.transport.close()
        self._abort_later()

    def _abort_later(self) -> None:
        """A close waits for the write buffer to drain; a peer that never reads must not keep it (and its
        registration) forever, so every close path ends in an abort once a CLOSE_HANDSHAKE_SECONDS window
        passes in which the peer did not drain at the budget's rate: a slow reader still gets every frame that
        was answered 200, a stalled one is dropped."""
        if self.close_timer is None:
            self.close_timer = asyncio.get_running_loop().call_later(
                CLOSE_HANDSHAKE_SECONDS, self._abort_unless_draining, self._owed())

    def _owed(self) -> int:
        """Bytes written and not yet acknowledged by the peer: our buffer plus the kernel's send queue (the
        kernel's share is most of it on a fast link, so our buffer alone would not show a slow reader's progress)."""
        owed = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                owed += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return owed

    def _abort_unless_draining(self, before: int) -> None:
        now = self._owed()
        if self.budgets.draining(before, now, CLOSE_HANDSHAKE_SECONDS):
            self.close_timer = asyncio.get_running_loop().call_later(
                CLOSE_HANDSHAKE_SECONDS, self._abort_unless_draining, now)
            return
        if now:
            tripped(self.gateway.metrics, "close_drain")
        self.abort()

    # ----- SocketSink (the parts that do not touch frames) -----------------------------------------

    def send_encoded(self, frame: bytes) -> bool:
        # Safe beside either engine: neither keeps state about data frames sent unfragmented.
        if not self.is_open() or self.transport.is_closing() or not self._room_for(len(frame)):
            return False
        self.transport.write(frame)
        return True

    def _room_for(self, size: int) -> bool:
        """A frame that would take the buffer past maxSendBufferBytes is refused (its push answers 410) and the
        peer is closed with 1008 behind what it was already promised: a peer that reads again within
        CLOSE_HANDSHAKE_SECONDS gets every frame that was answered 200, then the close."""
        if not self.budgets.over_send(self.transport.get_write_buffer_size(), size):
            return True
        self._slow_consumer()
        return False

    def _slow_consumer(self) -> None:
        log.warning("closing slow consumer %s", self.conn.id if self.conn else "?")
        metrics = self.gateway.metrics
        metrics.count(metrics.slow_consumers)
        tripped(metrics, "send_buffer")
        if self.conn is not None:
            self.conn.decide_close(1008, "Slow consumer")
        self.fail(1008, "Slow consumer")

    def abort(self) -> None:
        self.transport.abort()

    def pause_reading(self) -> None:
        self.flow.pause("inbox")

    def resume_reading(self) -> None:
        self.flow.resume("inbox")


class WebSocketProtocol(WebSocketSocket):
    """The reference engine: websockets' sans-I/O ServerProtocol parses and writes the frames (pure Python)."""

    __slots__ = ("fragment_opcode", "fragments", "protocol")

    def __init__(self, ctx: ListenerContext, transport: asyncio.Transport, flow: FlowControl,
                 request: HttpRequest, gateway: Gateway | None = None) -> None:
        super().__init__(ctx, transport, flow, request, gateway)
        # Frames are parsed by a protocol that starts OPEN: the handshake is judged and answered by `accept`.
        # Until then it is CONNECTING as far as every SocketSink method is concerned.
        self.protocol = ServerProtocol(state=State.CONNECTING, logger=protocol_log)
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None

    def _open_frames(self) -> None:
        limits = self.gateway.limits
        self.protocol = ServerProtocol(state=State.OPEN, max_size=(limits.max_message_bytes, limits.max_frame_bytes),
                                       logger=protocol_log)

    def _parse(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(conn, event)
        self._flush()
        self._check_owed()

    def close_frames(self) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
        return close_frames(self.protocol)

    def is_open(self) -> bool:
        return self.protocol.state is State.OPEN

    def is_connecting(self) -> bool:
        return self.protocol.state is State.CONNECTING

    def fail(self, code: int, reason: str) -> None:
        self.protocol.fail(code, reason)
        self._flush()

    # ----- frames ----------------------------------------------------------------------------------

    def _on_frame(self, conn: Connection, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self.fragment_opcode = opcode
                self.fragments = [bytes(frame.data)]
                return
            self._deliver(conn, opcode, bytes(frame.data))
        elif opcode is Opcode.CONT:
            if self.protocol.state is not State.OPEN:
                return
            if self.budgets.over_fragments(len(self.fragments) + 1):
                tripped(self.gateway.metrics, "fragments")
                self.fragments, self.fragment_opcode = [], None
                self.protocol.fail(1009, "Too many fragments")
                return
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
            self.gateway.on_message(conn, text)
        else:
            self.gateway.on_message(conn, data)

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:                                   # EOF: the server closes TCP after the closing handshake
                self._closed_by_server()

    # ----- SocketSink ------------------------------------------------------------------------------

    def send(self, data: bytes | str) -> bool:
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

    def close(self, code: int, reason: str) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            self._abort_later()
        elif self.protocol.state is State.CONNECTING:
            self.abort()

    def ping(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_ping(b"wsgw")
            self._flush()
