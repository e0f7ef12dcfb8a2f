"""The keepalive sweep: a periodic, incremental pass over the local table closes idle and too-old connections,
pings quiet peers and drops those that never answer.

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
    """Idle timeout, maximum connection age and pings for every local connection.

    Incremental: each tick (at most a second apart) visits the next slice of the table, so the whole table is
    visited once per `cycle()` — a quarter of the shortest limit — and a tick's work is the table's size over
    the ticks in a cycle, not the whole table (100,000 idle connections: 4,000 visits a tick by default, not
    100,000). A limit is acted on within one cycle of passing, as before within one tick."""

    def __init__(self, limits: Limits, local: LocalTable, monotonic: Callable[[], float],
                 close: Callable[[Connection, int, str], None]) -> None:
        self.limits = limits
        self.local = local
        self.monotonic = monotonic
        self.close = close
        self._task: asyncio.Task[None] | None = None
        self._round: list[Connection] = []     # this cycle's connections not visited yet (visited from the end)
        self._slice = 1                        # connections visited per tick in this cycle

    def cycle(self) -> float:
        """Seconds in which every connection is visited once."""
        limits = self.limits
        shortest = min(limits.idle_timeout_seconds, limits.max_connection_seconds, limits.ping_interval_seconds,
                       limits.ping_timeout_seconds)
        return max(0.05, shortest / 4)

    def interval(self) -> float:
        return min(1.0, self.cycle())

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _forever(self) -> None:
        interval = self.interval()
        ticks = max(1, round(self.cycle() / interval))
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick(ticks)
            except Exception:
                log.exception("sweep failed")

    def tick(self, ticks_per_cycle: int) -> None:
        """Visit the next 1/ticks_per_cycle of the table (a new cycle starts from a fresh copy of it)."""
        pending = self._round
        if not pending:
            pending = self._round = list(self.local.connections.values())
            if not pending:
                return
            self._slice = -(-len(pending) // ticks_per_cycle)   # a cycle's ticks share its table evenly
        count = min(self._slice, len(pending))
        batch = pending[-count:]
        del pending[-count:]
        self._visit(batch)

    def sweep(self) -> None:
        """One whole pass now (tests, and anyone who must not wait for a cycle)."""
        self._visit(self.local.all())

    def _visit(self, conns: list[Connection]) -> None:
        """Close idle and too-old connections; ping quiet peers and drop those that never answer."""
        now = self.monotonic()
        limits = self.limits
        max_age, idle = limits.max_connection_seconds, limits.idle_timeout_seconds
        ping_interval, ping_timeout = limits.ping_interval_seconds, limits.ping_timeout_seconds
        table = self.local.connections
        for conn in conns:
            if conn.close_decided is not None or table.get(conn.info.connection_id) is not conn:
                continue                       # closed since this cycle began
            if now - conn.opened_at >= max_age or now - conn.last_active >= idle:
                self.close(conn, 1001, "Going away")
            elif conn.ping_sent_at is not None:
                if now - conn.ping_sent_at >= ping_timeout:
                    conn.decide_close(1006, "")
                    conn.sink.abort()
            elif now - conn.last_seen >= ping_interval:
                conn.ping_sent_at = now
                conn.sink.ping()
