"""What the keepalive sweep costs a node holding N idle connections: CPU seconds per second of sweeping, as a
percentage of one core, for the incremental sweep (`KeepaliveSweep.tick`, what a node runs) and for a whole
pass every tick (what it ran before). In process, on real `Connection` objects and a real `LocalTable`; the
sockets are stand-ins that never ping (the connections are freshly active), so this is the visit cost itself.

    python -m loadtest.sweep_cost [--connections 100000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import Limits
from wsgw.gateway.connection import Connection
from wsgw.gateway.keepalive import KeepaliveSweep
from wsgw.gateway.local import LocalTable
from wsgw.metrics import Metrics


class QuietSocket:
    """Never asked anything: every connection stays within its limits."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the sweep touched the socket ({name})")


def build(n: int) -> tuple[KeepaliveSweep, list[float]]:
    clock = [0.0]
    table = LocalTable("node", Metrics(histograms=False))
    sink = QuietSocket()
    for i in range(n):
        info = ConnectionInfo(f"conn{i:08d}=", 0, "127.0.0.1", None, "h", "dev", "api")
        table.add(Connection(info, sink, 0.0))
    sweep = KeepaliveSweep(Limits(), table, lambda: clock[0], lambda *_: None)
    return sweep, clock


def measure(n: int, seconds: int) -> dict[str, float]:
    sweep, clock = build(n)
    interval, ticks = sweep.interval(), max(1, round(sweep.cycle() / sweep.interval()))
    rounds = max(1, round(seconds / interval))
    started = time.process_time()
    for _ in range(rounds):
        clock[0] += interval / 1e6            # time barely moves: nobody is due, only visits are counted
        sweep.tick(ticks)
    incremental = (time.process_time() - started) / (rounds * interval)
    started = time.process_time()
    whole_rounds = max(1, rounds // 4)
    for _ in range(whole_rounds):
        sweep.sweep()
    whole = (time.process_time() - started) / (whole_rounds * interval)
    return {"connections": n, "interval_s": interval, "ticks_per_cycle": ticks,
            "incremental_core_percent": 100 * incremental, "whole_pass_core_percent": 100 * whole}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.sweep_cost")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=30, help="simulated seconds of sweeping")
    args = parser.parse_args(argv)
    result = measure(args.connections, args.seconds)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
