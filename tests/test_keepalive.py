"""The incremental keepalive sweep: every connection visited once per cycle, a slice per tick, none twice."""

from __future__ import annotations

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import Limits
from wsgw.gateway.connection import Connection
from wsgw.gateway.keepalive import KeepaliveSweep
from wsgw.gateway.local import LocalTable
from wsgw.metrics import Metrics


class CountingSocket:
    def __init__(self) -> None:
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1


def table_of(n: int) -> tuple[LocalTable, list[CountingSocket]]:
    table = LocalTable("node", Metrics(histograms=False))
    sockets = []
    for i in range(n):
        sock = CountingSocket()
        sockets.append(sock)
        info = ConnectionInfo(f"c{i}=", 0, "127.0.0.1", None, "h", "dev", "api")
        table.add(Connection(info, sock, 0.0))  # type: ignore[arg-type]
    return table, sockets


def test_default_limits_visit_the_table_once_every_seven_and_a_half_seconds_in_one_second_ticks() -> None:
    sweep = KeepaliveSweep(Limits(), LocalTable("n", Metrics(histograms=False)), lambda: 0.0, lambda *_: None)
    assert (sweep.cycle(), sweep.interval()) == (7.5, 1.0)


def test_each_tick_visits_a_slice_and_a_cycle_visits_every_connection_once() -> None:
    table, sockets = table_of(1000)
    now = Limits().ping_interval_seconds + 1                 # every peer is quiet: a visit pings it
    sweep = KeepaliveSweep(Limits(), table, lambda: now, lambda *_: None)
    sweep.tick(8)
    assert sum(s.pings for s in sockets) == 125
    for _ in range(7):
        sweep.tick(8)
    assert [s.pings for s in sockets] == [1] * 1000


def test_a_connection_that_left_the_table_mid_cycle_is_not_visited() -> None:
    table, sockets = table_of(10)
    now = Limits().ping_interval_seconds + 1
    sweep = KeepaliveSweep(Limits(), table, lambda: now, lambda *_: None)
    sweep.tick(2)                                            # the cycle's copy is taken: 5 visited
    gone = [i for i, s in enumerate(sockets) if s.pings == 0]
    table.remove(f"c{gone[0]}=")
    sweep.tick(2)
    assert sockets[gone[0]].pings == 0
    assert sum(s.pings for s in sockets) == 9
