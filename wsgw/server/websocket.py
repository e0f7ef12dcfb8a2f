"""The WebSocket protocol: after the upgrade the transport is handed here (transport.set_protocol), and
websockets' sans-I/O ServerProtocol validates the handshake, writes the 101 and parses frames.

It is the gateway's SocketSink for that connection: the gateway calls `accept` once $connect allowed it.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from wsgw.gateway import Connection, Gateway
from wsgw.request import HttpRequest
from wsgw.server.context import ListenerContext
from wsgw.server.flow import FlowControl
from wsgw.server.http import plain_error

log = logging.getLogger("wsgw.server")
protocol_log = logging.getLogger("wsgw.websocket")   # websockets logs every open at INFO; keep it quiet
protocol_log.setLevel(logging.WARNING)

CLOSE_HANDSHAKE_SECONDS = 5.0


def rebuild_request(request: HttpRequest) -> bytes:
    """The upgrade request as bytes for websockets' parser (it validates and builds the 101)."""
    target = request.raw_path + ("?" + request.query_string if request.query_string else "")
    lines = [f"GET {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in request.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def close_frames(protocol: ServerProtocol) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """The close frames received and sent, as (code, reason); the gateway decides what $disconnect reports."""
    received = protocol.close_rcvd
    sent = protocol.close_sent
    return (None if received is None else (received.code, received.reason),
            None if sent is None else (sent.code, sent.reason))


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket from its upgrade request to its end."""

    __slots__ = (
        "chosen", "close_timer", "conn", "ctx", "flow", "fragment_opcode", "fragments", "gateway", "protocol",
        "request", "transport",
    )

    def __init__(self, ctx: ListenerContext, transport: asyncio.Transport, flow: FlowControl,
                 request: HttpRequest, gateway: Gateway | None = None) -> None:
        self.ctx = ctx
        self.gateway: Gateway = gateway or ctx.gateway      # the connection's (API, stage, version) for life
        self.transport = transport
        self.flow = flow
        self.request = request
        self.chosen: Subprotocol | None = None
        limits = self.gateway.limits
        self.protocol = ServerProtocol(
            select_subprotocol=lambda _proto, offered: self.chosen if self.chosen in offered else None,
            max_size=(limits.max_message_bytes, limits.max_frame_bytes),
            logger=protocol_log,
        )
        self.conn: Connection | None = None
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    # ----- the handshake (SocketSink.accept) -------------------------------------------------------

    def accept(self, subprotocol: str | None) -> bool:
        """Write the 101 and take the transport over; False when the client left or websockets refused."""
        transport = self.transport
        if transport.is_closing():
            return False
        self.chosen = Subprotocol(subprotocol) if subprotocol else None
        protocol = self.protocol
        protocol.receive_data(rebuild_request(self.request))
        parsed = protocol.events_received()
        if not parsed or not isinstance(parsed[0], Request):
            refusal = plain_error(400, "Bad Request: invalid WebSocket handshake")
            self.gateway.metrics.inc("wsgw_http_requests_total", f'status="{refusal.status}"')
            transport.write(refusal.serialize(keep_alive=False))
            transport.close()
            return False
        response = protocol.accept(parsed[0])
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            if chunk:
                transport.write(chunk)
        if response.status_code != 101:
            transport.close()
            return False
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
        conn = self.conn
        assert conn is not None
        self.protocol.receive_data(data)
        self.gateway.on_peer_activity(conn)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(conn, event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctx.open_sockets.discard(self)
        if self.close_timer is not None:
            self.close_timer.cancel()
        if self.conn is None:
            return
        received, sent = close_frames(self.protocol)
        self.gateway.on_closed(self.conn, received, sent)

    def shutdown(self) -> None:
        """The gateway closes WebSockets itself (1001, then $disconnect)."""

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
            self.conn.decide_close(1008, "Slow consumer")
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
        self.flow.pause("inbox")

    def resume_reading(self) -> None:
        self.flow.resume("inbox")
