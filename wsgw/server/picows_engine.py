"""The C frame engine: picows (Cython) parses and writes the frames of an upgraded WebSocket.

picows has no public way to start on a transport whose handshake someone else answered: its `WSProtocol` always
begins by reading an upgrade request and writing its own 101. The handshake stays ours (wsgw/server/websocket.py
judges it and writes the 101), so after that 101 this engine gives picows' parser a fixed, valid upgrade request
through a stand-in transport that swallows picows' 101; from then on the stand-in passes everything through to
the real transport, and picows' `WSTransport` writes frames with one `send()` on the socket when nothing is
queued. Bytes reach the parser through `data_received` (copied into its buffer), so the read batches, pauses and
budgets are the same as with the reference engine.

What picows checks in C: opcodes, masking, control frame size and fragmentation, the frame size limit (1009),
close codes below 3000 and a close reason's UTF-8. What it leaves to us, checked here per frame as websockets
does: reserved bits (1002), the fragment rules (1002), the message size (1009), the number of fragments (1009),
text UTF-8 (1007), close codes of 5000 and above (1002), pongs and the closing handshake.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # public class, not in its stubs

from wsgw.gateway import Gateway
from wsgw.request import HttpRequest
from wsgw.server.budgets import tripped
from wsgw.server.context import ListenerContext
from wsgw.server.flow import FlowControl
from wsgw.server.websocket import WebSocketSocket

log = logging.getLogger("wsgw.websocket.picows")

# A fixed upgrade request for picows' parser: the real one was judged and answered before this engine starts.
PARSER_UPGRADE = (b"GET / HTTP/1.1\r\nHost: wsgw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
EMPTY_CLOSE = b"\x88\x00"              # a close frame without a code (the reply to one)
NO_CODE = 0                            # picows' code of a close frame without one

CONNECTING, OPEN, CLOSING, CLOSED = range(4)
TEXT, BINARY, CONTINUATION = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
PING, CLOSE = WSMsgType.PING, WSMsgType.CLOSE


class QuietLog:
    """picows' logger: not a logging.Logger (so picows makes no child logger per connection), its per-connection
    INFO lines dropped, and a peer's protocol errors at DEBUG (a hostile peer must not write the log full)."""

    __slots__ = ()

    def isEnabledFor(self, level: int) -> bool:
        return log.isEnabledFor(level)

    def log(self, level: int, msg: str, *args: Any) -> None:
        log.log(min(level, logging.DEBUG), msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        log.debug(msg, *args)

    info = warning = error = debug

    def exception(self, msg: str, *args: Any) -> None:
        log.exception(msg, *args)


QUIET = QuietLog()


class StandIn:
    """The transport picows' parser is given: swallows the one 101 picows writes for the fixed upgrade request,
    then is the real transport (its methods bound once, so picows' writes cost no extra call)."""

    __slots__ = ("__weakref__", "get_extra_info", "get_write_buffer_size", "is_closing", "real", "swallow")

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real
        self.swallow = True
        self.get_extra_info = real.get_extra_info
        self.get_write_buffer_size = real.get_write_buffer_size
        self.is_closing = real.is_closing

    def write(self, data: bytes) -> None:
        if self.swallow:
            self.swallow = False
            return
        self.real.write(data)

    def close(self) -> None:
        self.real.close()

    def abort(self) -> None:
        self.real.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FrameListener(WSListener):
    """picows calls this once per frame; it hands the frame to the socket."""

    __slots__ = ("socket",)

    def __init__(self, socket: PicowsProtocol) -> None:
        self.socket: PicowsProtocol | None = socket

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.socket is not None:
            self.socket.on_frame(frame)


class PicowsProtocol(WebSocketSocket):
    """The C engine: picows' parser and frame writer behind the same SocketSink as the reference engine."""

    __slots__ = ("close_rcvd", "close_sent", "fragment_bytes", "fragment_opcode", "fragments", "parser", "state",
                 "writer")

    def __init__(self, ctx: ListenerContext, transport: asyncio.Transport, flow: FlowControl,
                 request: HttpRequest, gateway: Gateway | None = None) -> None:
        super().__init__(ctx, transport, flow, request, gateway)
        self.state = CONNECTING
        self.parser: Any = None
        self.writer: Any = None
        self.fragments: list[bytes] = []
        self.fragment_opcode: WSMsgType | None = None
        self.fragment_bytes = 0
        self.close_rcvd: tuple[int, str] | None = None
        self.close_sent: tuple[int, str] | None = None

    def _open_frames(self) -> None:
        limits = self.gateway.limits
        listener = FrameListener(self)
        # (host, path, client side, listener factory, logger, disconnect on exception, handshake timeout,
        #  auto ping, idle timeout, reply timeout, strategy, auto pong, max frame size, extra headers, buffer size)
        parser = WSProtocol(None, "/", False, lambda _request: listener, QUIET, True, None,
                            False, 1.0, 1.0, WSAutoPingStrategy.PING_WHEN_IDLE, False, limits.max_frame_bytes,
                            None, 0)
        parser.connection_made(StandIn(self.transport))
        self.parser = parser
        self._feed(PARSER_UPGRADE)
        self.writer = parser.transport
        self.state = OPEN

    # ----- reading ---------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Copy into picows' buffer (it reads like a BufferedProtocol); stops once the socket closed on our side."""
        view = memoryview(data)
        while view and self.parser is not None:
            room = self.parser.get_buffer(-1)
            size = min(len(room), len(view))
            room[:size] = view[:size]
            self.parser.buffer_updated(size)
            view = view[size:]

    def _parse(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        self._feed(data)
        if self.state == CLOSED:
            return
        if self.close_sent is None and self.writer.is_close_frame_sent:
            sent = self.writer.close_handshake.sent       # picows' parser refused a frame and sent the close
            self.close_sent = (sent.code.value, sent.reason)
            self._retire_parser()
            self._closed_by_server()
            return
        self._check_owed()

    def on_frame(self, frame: WSFrame) -> None:
        if self.state == CLOSED:
            return
        opcode = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self.fail(1002, "reserved bits must be 0")
        elif opcode in (TEXT, BINARY):
            if self.fragment_opcode is not None:
                self.fail(1002, "expected a continuation frame")
            elif frame.fin:
                self._deliver_frame(frame)
            else:
                self.fragment_opcode = opcode
                self.fragments = [frame.get_payload_as_bytes()]
                self.fragment_bytes = len(self.fragments[0])
        elif opcode == CONTINUATION:
            self._continue(frame)
        elif opcode == PING:
            if self.state == OPEN:
                self.writer.send_pong(frame.get_payload_as_bytes())
        elif opcode == CLOSE:
            self._close_received(frame)

    def _continue(self, frame: WSFrame) -> None:
        if self.fragment_opcode is None:
            self.fail(1002, "unexpected continuation frame")
            return
        if self.budgets.over_fragments(len(self.fragments) + 1):
            tripped(self.gateway.metrics, "fragments")
            self.fail(1009, "Too many fragments")
            return
        data = frame.get_payload_as_bytes()
        self.fragment_bytes += len(data)
        if self.fragment_bytes > self.budgets.message_bytes:
            self.fail(1009, f"message too big: {self.fragment_bytes} bytes exceeds {self.budgets.message_bytes}")
            return
        self.fragments.append(data)
        if frame.fin:
            message = b"".join(self.fragments)
            opcode, self.fragments, self.fragment_opcode = self.fragment_opcode, [], None
            self._deliver(opcode, message)

    def _deliver_frame(self, frame: WSFrame) -> None:
        if self.state != OPEN:
            return
        conn = self.conn
        assert conn is not None
        if frame.msg_type == TEXT:
            try:
                text = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self.fail(1007, "Invalid UTF-8 in text frame")
                return
            self.gateway.on_message(conn, text)
        else:
            self.gateway.on_message(conn, frame.get_payload_as_bytes())

    def _deliver(self, opcode: WSMsgType, data: bytes) -> None:
        if self.state != OPEN:
            return
        conn = self.conn
        assert conn is not None
        if opcode == TEXT:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "Invalid UTF-8 in text frame")
                return
            self.gateway.on_message(conn, text)
        else:
            self.gateway.on_message(conn, data)

    def _close_received(self, frame: WSFrame) -> None:
        code: int = frame.get_close_code().value
        if code >= 5000:
            self.fail(1002, f"invalid status code {code}")
            return
        if code == NO_CODE:
            self.close_rcvd = (1005, "")
        else:
            self.close_rcvd = (code, frame.get_close_reason())
        if self.state == OPEN:               # echo it, as websockets does, then end TCP: the server closes first
            self._write_close(code, self.close_rcvd[1])
        self._retire_parser()
        self._closed_by_server()

    # ----- writing ---------------------------------------------------------------------------------

    def _write_close(self, code: int, reason: str) -> None:
        if code == NO_CODE:
            self.transport.write(EMPTY_CLOSE)
            self.close_sent = (1005, "")
        else:
            self.writer.send_close(WSCloseCode(code), reason)
            self.close_sent = (code, reason)

    def fail(self, code: int, reason: str) -> None:
        self.fragments, self.fragment_opcode = [], None
        if self.state == OPEN:
            self._write_close(code, reason)
        if self.state not in (CLOSED, CONNECTING):
            self._retire_parser()
            self._closed_by_server()

    def close_frames(self) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
        return self.close_rcvd, self.close_sent

    def is_open(self) -> bool:
        return self.state == OPEN

    def is_connecting(self) -> bool:
        return self.state == CONNECTING

    def send(self, data: bytes | str) -> bool:
        if self.state != OPEN or self.transport.is_closing():
            return False
        if isinstance(data, str):
            payload = data.encode("utf-8")
            opcode = TEXT
        else:
            payload = data
            try:
                data.decode("utf-8")
                opcode = TEXT
            except UnicodeDecodeError:
                opcode = BINARY
        if not self._room_for(len(payload)):
            return False
        self.writer.send(opcode, payload)
        return True

    def close(self, code: int, reason: str) -> None:
        if self.state == OPEN:
            self._write_close(code, reason)
            self.state = CLOSING
            self._abort_later()
        elif self.state == CONNECTING:
            self.abort()

    def ping(self) -> None:
        if self.state == OPEN:
            self.writer.send_ping(b"wsgw")

    def connection_lost(self, exc: Exception | None) -> None:
        self._retire_parser()
        super().connection_lost(exc)

    def _retire_parser(self) -> None:
        """Closed on our side: picows is told the connection is gone, so the rest of a read it is still parsing
        can write nothing more (no second close frame); and parser → listener → this socket is no cycle."""
        self.state = CLOSED
        parser, self.parser = self.parser, None
        if parser is not None:
            parser.listener.socket = None
            parser.connection_lost(None)

