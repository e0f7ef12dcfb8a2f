"""RSS growth per idle connection over the first N connections and again over the next N, for one server: the
second figure has no start-up slack (heap freed after start that absorbs the first connections), so the two
agreeing shows the idle-memory figure is not an artefact of N.

    python -m loadtest.idle_marginal 8000 wsgw-websockets     # or wsgw-picows, websockets-echo, picows-echo
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from picows import WSListener, WSTransport, ws_connect

from loadtest.procs import ServerProcess, baseline_server, raise_nofile_limit, wsgw_node

SERVERS = {
    "wsgw-websockets": lambda: wsgw_node("bench.yaml", engine="websockets"),
    "wsgw-picows": lambda: wsgw_node("bench.yaml", engine="picows"),
    "websockets-echo": lambda: baseline_server("websockets-echo"),
    "picows-echo": lambda: baseline_server("picows-echo"),
}


async def open_idle(url: str, n: int, held: list[WSTransport]) -> None:
    gate = asyncio.Semaphore(64)

    async def one() -> None:
        async with gate:
            transport, _ = await ws_connect(WSListener, url, websocket_handshake_timeout=60)
            held.append(transport)

    await asyncio.gather(*(one() for _ in range(n)))


async def measure(server: ServerProcess, n: int) -> tuple[float, float]:
    held: list[WSTransport] = []
    await asyncio.sleep(1.0)
    before = server.rss()
    await open_idle(server.url, n, held)
    await asyncio.sleep(2.0)
    middle = server.rss()
    await open_idle(server.url, n, held)
    await asyncio.sleep(2.0)
    after = server.rss()
    for transport in held:
        transport.disconnect()
    return (middle - before) / n, (after - middle) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.idle_marginal")
    parser.add_argument("connections", type=int, help="N: measured over N, then over N more")
    parser.add_argument("server", choices=sorted(SERVERS))
    args = parser.parse_args(argv)
    raise_nofile_limit(2 * args.connections)
    server = SERVERS[args.server]().start()
    try:
        first, second = asyncio.run(measure(server, args.connections))
    finally:
        server.stop()
    print(f"{args.server}: first {args.connections}: {first:,.0f} B/conn, next {args.connections}: "
          f"{second:,.0f} B/conn (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
