"""The local node table: the connections whose sockets are on this node, and reaching them."""

from __future__ import annotations

from collections.abc import Iterable

from websockets.frames import Frame, Opcode

from wsgw.gateway.connection import Connection
from wsgw.metrics import Metrics
from wsgw.registry import ConnectionRecord


def encode_frame(data: bytes) -> bytes:
    """One server data frame (unmasked, so the same bytes for every socket): text when UTF-8, else binary."""
    opcode = Opcode.BINARY
    try:
        data.decode("utf-8")
        opcode = Opcode.TEXT
    except UnicodeDecodeError:
        pass
    return Frame(opcode, data).serialize(mask=False, extensions=[])


class LocalTable:
    """Connection id → Connection for every admitted, not yet closed connection of this node."""

    def __init__(self, node_id: str, metrics: Metrics, deployment: str = "") -> None:
        self.node_id = node_id
        self.deployment = deployment          # written into every record (ConnectionRecord.deployment)
        self.metrics = metrics
        self.connections: dict[str, Connection] = {}
        # connection id → the (group, since) joins asked for while its $connect runs, applied when it opens
        self.connecting: dict[str, list[tuple[str, int | None]]] = {}

    def __len__(self) -> int:
        return len(self.connections)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self.connections

    def get(self, connection_id: str) -> Connection | None:
        return self.connections.get(connection_id)

    def add(self, conn: Connection) -> None:
        self.connections[conn.info.connection_id] = conn

    def remove(self, connection_id: str) -> Connection | None:
        """Take a connection out of the table; None when it was not (or no longer) here."""
        return self.connections.pop(connection_id, None)

    def all(self) -> list[Connection]:
        return list(self.connections.values())

    def deliver(self, connection_id: str, data: bytes) -> bool:
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        if conn.sink.send(data):
            self.metrics.sent_one.inc()
            self.metrics.pushed_messages.inc()
            return True
        return False

    def broadcast(self, data: bytes) -> int:
        """One frame to every local socket, encoded once (server frames are unmasked, so identical)."""
        frame = encode_frame(data)
        sent = 0
        for conn in self.connections.values():
            if conn.sink.send_encoded(frame):
                sent += 1
        if sent:
            self.metrics.sent_one.inc(sent)
            self.metrics.pushed_messages.inc(sent)
        return sent

    def lookup(self, connection_id: str) -> ConnectionRecord | None:
        conn = self.connections.get(connection_id)
        return None if conn is None else self.record(conn)

    def record(self, conn: Connection) -> ConnectionRecord:
        return conn.record(self.node_id, self.deployment)

    def records(self) -> Iterable[ConnectionRecord]:
        return [self.record(conn) for conn in list(self.connections.values())]
