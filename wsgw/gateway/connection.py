"""One accepted connection's state as the gateway keeps it."""

from __future__ import annotations

import asyncio
from collections import deque

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.gateway.sink import SocketSink
from wsgw.registry.base import ConnectionRecord


class Connection:
    """Slots only: tens of thousands of these live at once."""

    __slots__ = (
        "close_override", "inbox", "info", "last_active_ms", "last_seen",
        "ping_sent_at", "reading_paused", "sink", "worker",
    )

    def __init__(self, info: ConnectionInfo, sink: SocketSink, now: float) -> None:
        self.info = info
        self.sink = sink
        self.last_active_ms = info.connected_at_ms
        self.last_seen = now                        # loop time of the last byte from the peer (pings)
        self.ping_sent_at: float | None = None
        self.inbox: deque[tuple[str, bool, int] | None] = deque()   # None = run $disconnect
        self.worker: asyncio.Task[None] | None = None
        self.reading_paused = False
        self.close_override: tuple[int, str] | None = None           # what $disconnect reports when we closed

    @property
    def id(self) -> str:
        return self.info.connection_id

    def record(self, node_id: str) -> ConnectionRecord:
        return ConnectionRecord(self.info.connection_id, node_id, self.info.connected_at_ms, self.last_active_ms,
                                self.info.source_ip, self.info.user_agent, self.info.domain_name,
                                self.info.authorizer)
