"""The WebSocket frame engines a node can run (`--ws-engine`, NodeConfig.ws_engine): one table, one class each.

Both serve the same SocketSink after the same handshake (ours, wsgw/server/websocket.py); they differ only in
who parses and writes frames: websockets' sans-I/O protocol in pure Python (the reference) or picows in C.
"""

from __future__ import annotations

from wsgw.server.picows_engine import PicowsProtocol
from wsgw.server.websocket import WebSocketProtocol, WebSocketSocket

ENGINES: dict[str, type[WebSocketSocket]] = {
    "websockets": WebSocketProtocol,
    "picows": PicowsProtocol,
}
