"""The keepalive sweep: one periodic pass over the local table closes idle and too-old connections, pings
quiet peers and drops those that never answer.

Every limit is measured on the loop's monotonic clock: a step of the wall clock (NTP, a suspended VM) must
neither close every connection at once nor keep them all forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wsgw.config import Limits
from wsgw.gateway.connection import Connection
from wsgw.gateway.local import LocalTable

log = logging.getLogger("wsgw.gateway")


class KeepaliveSweep:
    """Idle timeout, maximum connection age and pings for every local connection."""

    def __init__(self, limits: Limits, local: LocalTable, monotonic: Callable[[], float],
                 close: Callable[[Connection, int, str], None]) -> None:
        self.limits = limits
        self.local = local
        self.monotonic = monotonic
        self.close = close
        self._task: asyncio.Task[None] | None = None

    def interval(self) -> float:
        limits = self.limits
        shortest = min(limits.idle_timeout_seconds, limits.max_connection_seconds, limits.ping_interval_seconds,
                       limits.ping_timeout_seconds)
        return max(0.05, min(1.0, shortest / 4))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _forever(self) -> None:
        interval = self.interval()
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed")

    def sweep(self) -> None:
        """One pass: close idle and too-old connections; ping quiet peers and drop those that never answer."""
        now = self.monotonic()
        limits = self.limits
        for conn in self.local.all():
            if conn.close_decided is not None:
                continue
            if now - conn.opened_at >= limits.max_connection_seconds \
                    or now - conn.last_active >= limits.idle_timeout_seconds:
                self.close(conn, 1001, "Going away")
            elif conn.ping_sent_at is not None:
                if now - conn.ping_sent_at >= limits.ping_timeout_seconds:
                    conn.decide_close(1006, "")
                    conn.sink.abort()
            elif now - conn.last_seen >= limits.ping_interval_seconds:
                conn.ping_sent_at = now
                conn.sink.ping()
