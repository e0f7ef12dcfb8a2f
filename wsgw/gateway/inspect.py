"""The inspector's taps (`GET /{stage}/@inspect`): what one node's connections and groups send and receive, copied
into the bounded queue of each inspector watching them.

Nothing here is on the hot path while nobody inspects: a connection is tapped by swapping its sink for a
TappedSink (its outbound frames) and setting `Connection.tap` (its inbound messages, one None check in
Gateway.on_message); a group by an entry in `Groups.taps` (one truthiness check per publish). Untapping puts
everything back. Frames are copied truncated to PREVIEW_BYTES; a queue that is full drops its oldest events
and counts them, so a slow inspector costs memory it was given and nothing else.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wsgw.gateway.connection import Connection
from wsgw.gateway.sink import SocketSink

if TYPE_CHECKING:
    from wsgw.gateway.core import Gateway

PREVIEW_BYTES = 4096            # of each frame copied to an inspector
QUEUE_EVENTS = 1000             # events an inspector may have waiting to be written
MAX_TAPS = 32                   # connections + groups one inspector may tail at once

Event = dict[str, Any]


def preview(data: bytes | str) -> tuple[str, bool]:
    """The start of a frame as text for the page, and whether it was cut."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    cut = len(raw) > PREVIEW_BYTES
    return raw[:PREVIEW_BYTES].decode("utf-8", "replace"), cut


def frame_payload(frame: bytes) -> bytes:
    """The payload of one unmasked, unfragmented server frame (what encode_frame makes for send_encoded)."""
    length = frame[1] & 0x7F
    offset = 2 if length < 126 else 4 if length == 126 else 10
    return frame[offset:]


class Watcher:
    """One inspector's bounded queue; `wake` tells its socket there is something to write."""

    def __init__(self, wake: Callable[[], None], limit: int = QUEUE_EVENTS) -> None:
        self.events: deque[Event] = deque(maxlen=limit)
        self.dropped = 0
        self.wake = wake
        self.connections: set[str] = set()
        self.groups: set[str] = set()

    def put(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(event)
        self.wake()

    @property
    def taps(self) -> int:
        return len(self.connections) + len(self.groups)


class ConnectionTap:
    """The watchers of one connection (set as Connection.tap while any)."""

    __slots__ = ("connection_id", "now", "watchers")

    def __init__(self, connection_id: str, now: Callable[[], int]) -> None:
        self.connection_id = connection_id
        self.watchers: list[Watcher] = []
        self.now = now

    def copy(self, direction: str, data: bytes | str) -> None:
        text, cut = preview(data)
        event: Event = {"type": "frame", "connectionId": self.connection_id, "direction": direction, "data": text,
                        "at": self.now()}
        if cut:
            event["truncated"] = True
        for watcher in self.watchers:
            watcher.put(event)

    def closed(self) -> None:
        """The connection ended: its watchers are told, and forget it."""
        event: Event = {"type": "closed", "connectionId": self.connection_id, "at": self.now()}
        for watcher in self.watchers:
            watcher.connections.discard(self.connection_id)
            watcher.put(event)
        self.watchers.clear()


class TappedSink:
    """A connection's sink while it is tailed: every frame that reaches the socket is also copied out."""

    def __init__(self, inner: SocketSink, tap: ConnectionTap) -> None:
        self.inner = inner
        self.tap = tap

    def accept(self, subprotocol: str | None) -> bool:
        return self.inner.accept(subprotocol)

    def send(self, data: bytes | str) -> bool:
        sent = self.inner.send(data)
        if sent:
            self.tap.copy("out", data)
        return sent

    def send_encoded(self, frame: bytes) -> bool:
        sent = self.inner.send_encoded(frame)
        if sent:
            self.tap.copy("out", frame_payload(frame))
        return sent

    def close(self, code: int, reason: str) -> None:
        self.inner.close(code, reason)

    def abort(self) -> None:
        self.inner.abort()

    def ping(self) -> None:
        self.inner.ping()

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()


def group_event(group: str, data: bytes, seq: int | None, now_ms: int) -> Event:
    text, cut = preview(data)
    event: Event = {"type": "frame", "group": group, "seq": seq, "data": text, "at": now_ms}
    if cut:
        event["truncated"] = True
    return event


class Inspector:
    """This node's connections and groups as the inspector page shows them, and its taps."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.watchers: set[Watcher] = set()

    # ----- what is here ----------------------------------------------------------------------------

    def snapshot(self) -> Event:
        """This node's connections (with their groups) and the groups its connections are in."""
        gateway = self.gateway
        groups_of = gateway.groups.local_groups_of
        connections = [{
            "connectionId": conn.id,
            "principalId": (conn.info.authorizer or {}).get("principalId"),
            "sourceIp": conn.info.source_ip,
            "userAgent": conn.info.user_agent,
            "connectedAt": conn.info.connected_at_ms,
            "lastActiveAt": conn.last_active_ms,
            "groups": groups_of(conn.id),
        } for conn in gateway.local.all()]
        groups = [{"group": group, "localMembers": count} for group, count in gateway.groups.local_counts()]
        return {"type": "snapshot", "node": gateway.node_id, "stage": gateway.api.stage,
                "connections": connections, "groups": groups}

    # ----- watchers and taps -----------------------------------------------------------------------

    def watch(self, wake: Callable[[], None]) -> Watcher:
        watcher = Watcher(wake)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        for connection_id in list(watcher.connections):
            self.untail_connection(watcher, connection_id)
        for group in list(watcher.groups):
            self.untail_group(watcher, group)
        self.watchers.discard(watcher)

    def tail_connection(self, watcher: Watcher, connection_id: str) -> str | None:
        """Copy one local connection's frames to the watcher; the reason when it cannot."""
        if connection_id in watcher.connections:
            return None
        if watcher.taps >= MAX_TAPS:
            return f"at most {MAX_TAPS} tails at once"
        conn = self.gateway.local.get(connection_id)
        if conn is None:
            return "no such connection on this node"
        tap = conn.tap
        if tap is None:
            tap = conn.tap = ConnectionTap(connection_id, self.gateway.epoch_ms)
            conn.sink = TappedSink(conn.sink, tap)
        tap.watchers.append(watcher)
        watcher.connections.add(connection_id)
        return None

    def untail_connection(self, watcher: Watcher, connection_id: str) -> None:
        watcher.connections.discard(connection_id)
        conn = self.gateway.local.get(connection_id)
        if conn is None or conn.tap is None:
            return
        if watcher in conn.tap.watchers:
            conn.tap.watchers.remove(watcher)
        if not conn.tap.watchers:
            _untap(conn)

    def tail_group(self, watcher: Watcher, group: str) -> str | None:
        if group in watcher.groups:
            return None
        if watcher.taps >= MAX_TAPS:
            return f"at most {MAX_TAPS} tails at once"
        self.gateway.groups.taps.setdefault(group, []).append(watcher)
        watcher.groups.add(group)
        return None

    def untail_group(self, watcher: Watcher, group: str) -> None:
        watcher.groups.discard(group)
        taps = self.gateway.groups.taps
        watchers = taps.get(group)
        if watchers is not None and watcher in watchers:
            watchers.remove(watcher)
            if not watchers:
                del taps[group]

    # ----- sending ---------------------------------------------------------------------------------

    async def send_to_connection(self, connection_id: str, data: bytes) -> bool:
        """One frame to a connection on any node (as POST @connections would)."""
        return await self.gateway.post(connection_id, data)

    async def send_to_group(self, group: str, data: bytes) -> int:
        """One frame to every member of a group on every node (as POST @groups would)."""
        return await self.gateway.groups.publish(group, data)


def _untap(conn: Connection) -> None:
    sink = conn.sink
    if isinstance(sink, TappedSink):
        conn.sink = sink.inner
    conn.tap = None
