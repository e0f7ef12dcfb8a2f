"""The per-connection inbox: messages handled one at a time in arrival order, $disconnect last, with
backpressure on the socket when they queue up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from wsgw.aws.ids import new_id
from wsgw.gateway.connection import Connection
from wsgw.gateway.eager import StandIn
from wsgw.metrics import Metrics

log = logging.getLogger("wsgw.gateway")

INBOX_HIGH_WATER = 64          # pause reading from a socket whose messages queue up beyond this
INBOX_LOW_WATER = 16           # ... and resume once its worker brought them down to this

HandleMessage = Callable[[Connection, str, bool, int], Awaitable[None]]


class Inboxes:
    """The queue lives on each Connection; this runs its worker. A worker task exists only while a queue is
    non-empty, so idle connections cost no task."""

    def __init__(self, handle_message: HandleMessage, run_disconnect: Callable[[Connection], Awaitable[None]],
                 message_failed: Callable[[Connection, str], None], max_queued: int, metrics: Metrics) -> None:
        self.handle_message = handle_message
        self.run_disconnect = run_disconnect
        self.message_failed = message_failed
        self.max_queued = max_queued
        self.metrics = metrics

    def push(self, conn: Connection, body: str, is_base64: bool, at_ms: int) -> bool:
        """Queue a message; False (nothing queued) when the inbox already holds max_queued messages."""
        if len(conn.inbox) >= self.max_queued:
            return False
        conn.inbox.append((body, is_base64, at_ms))
        if len(conn.inbox) > INBOX_HIGH_WATER and not conn.reading_paused:
            conn.reading_paused = True
            conn.sink.pause_reading()
        if conn.worker is None:
            self._start(conn)
        return True

    def finish(self, conn: Connection) -> asyncio.Future[Any]:
        """Queue $disconnect behind the messages already queued; done once the worker ran it."""
        conn.inbox.append(None)
        if conn.worker is None:               # a task of its own: $disconnect runs in the background
            conn.worker = StandIn(asyncio.get_running_loop())
            conn.worker.run_later(self._drain(conn))
        return conn.worker.completion()

    def drop_queued(self, conn: Connection) -> int:
        """Forget the messages waiting behind the running one; how many there were."""
        dropped = sum(1 for item in conn.inbox if item is not None)
        if dropped:
            conn.inbox.clear()
        return dropped

    def _start(self, conn: Connection) -> None:
        # Run at once (wsgw/gateway/eager.py): a handler that does not wait answers in this loop turn and no task
        # is made; one that waits continues in a task. Not tracked by the gateway while the connection is open
        # (a set add and a done callback per message showed in the profile); Gateway.on_closed tracks it, so
        # shutdown still waits for every $disconnect. Set before the run: the worker clears it when it ends.
        worker = conn.worker = StandIn(asyncio.get_running_loop())
        worker.run(self._drain(conn))

    async def _drain(self, conn: Connection) -> None:
        """Handle one connection's messages in the order they arrived, $disconnect last.

        Nothing a message does may end the worker early: a worker that died would leave the rest of the
        inbox unhandled and the socket's reading paused, a silent hang. Such an error is logged, counted and
        answered like a failed handler; the worker goes on with the next message."""
        try:
            while conn.inbox:
                item = conn.inbox.popleft()
                if item is None:
                    await self.run_disconnect(conn)
                    return
                try:
                    await self.handle_message(conn, *item)
                except Exception:
                    request_id = new_id()
                    log.exception("handling a message of %s failed (requestId %s)", conn.info.connection_id,
                                  request_id)
                    self.metrics.count(self.metrics.integration_errors, kind="internal")
                    self.message_failed(conn, request_id)
                if conn.reading_paused and len(conn.inbox) <= INBOX_LOW_WATER:
                    conn.reading_paused = False
                    conn.sink.resume_reading()
        finally:
            conn.worker = None
            if conn.reading_paused:              # never leave a socket unread behind a worker that stopped
                conn.reading_paused = False
                conn.sink.resume_reading()
