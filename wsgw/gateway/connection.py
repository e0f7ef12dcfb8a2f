"""One accepted connection's state as the gateway keeps it, and the one rule for the code its end reports."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.gateway.sink import SocketSink
from wsgw.registry.base import ConnectionRecord

if TYPE_CHECKING:
    from wsgw.gateway.eager import StandIn
    from wsgw.gateway.inspect import ConnectionTap

CloseFrame = tuple[int, str]


class Connection:
    """Slots only: tens of thousands of these live at once.

    Times named `*_ms` are epoch milliseconds (AWS shapes: connectedAt, lastActiveAt); the others are the
    loop's monotonic clock, which is what idle, max age and keepalive are measured on."""

    __slots__ = (
        "close_decided", "inbox", "info", "last_active", "last_active_ms", "last_seen", "opened_at",
        "ping_sent_at", "reading_paused", "sink", "tap", "worker",
    )

    def __init__(self, info: ConnectionInfo, sink: SocketSink, now: float) -> None:
        self.info = info
        self.sink = sink
        self.last_active_ms = info.connected_at_ms
        self.opened_at = now                        # monotonic: max age
        self.last_active = now                      # monotonic: last message (idle timeout)
        self.last_seen = now                        # monotonic: last byte from the peer (pings)
        self.ping_sent_at: float | None = None
        self.inbox: deque[tuple[str, bool, int] | None] = deque()   # None = run $disconnect
        self.worker: StandIn | None = None           # the inbox's worker while messages wait (gateway/eager.py)
        self.reading_paused = False
        self.close_decided: CloseFrame | None = None   # what $disconnect reports when our side ended it
        self.tap: ConnectionTap | None = None           # inspectors tailing it (wsgw/gateway/inspect.py)

    @property
    def id(self) -> str:
        return self.info.connection_id

    def decide_close(self, code: int, reason: str) -> bool:
        """Record why our side ends this connection; the first decision wins. False when one was made."""
        if self.close_decided is not None:
            return False
        self.close_decided = (code, reason)
        return True

    def record(self, node_id: str, deployment: str = "") -> ConnectionRecord:
        return ConnectionRecord(self.info.connection_id, node_id, self.info.connected_at_ms, self.last_active_ms,
                                self.info.source_ip, self.info.user_agent, self.info.domain_name,
                                self.info.authorizer, deployment)


def close_code(decided: CloseFrame | None, received: CloseFrame | None, sent: CloseFrame | None) -> CloseFrame:
    """The (code, reason) $disconnect reports, decided here only: what our side decided when it ended the
    connection, else the peer's close frame, else the close frame we sent, else 1006 (no close at all)."""
    return decided or received or sent or (1006, "")
