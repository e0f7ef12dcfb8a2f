"""WebSocket messages/s for a cached route response (hit) against a miss and an uncached route, in one run.

Starts a `wsgw run` node (memory cache store) whose three routes call one async handler doing a small fixed
amount of work (a sum over 3,000 squares, ~0.2 ms) and answer with a route response: `hit` (cached, one key:
every message after the first is a hit), `miss` (cached by `$request.body.n`, a new n every message: key,
lookup, call and store each time) and `plain` (no cache: the reference). A client process of its own keeps
CONNECTIONS WebSockets, each sending one message and waiting for its answer, for SECONDS per target, in turn,
ROUNDS times. Usage:

    PYTHONPATH=. python -m loadtest.ws_cache [--seconds 3] [--connections 32] [--rounds 3]

Prints each target's median messages/s over the rounds with the spread (min..max) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time

from loadtest.rest_cache import Figures, measure

CONFIG = """
stage: dev
routeSelectionExpression: $request.body.action
caching: {cacheClusterEnabled: true, cacheTtlInSeconds: 3600, store: memory, maxBytes: 268435456}
routes:
  $default: {handler: bench_cache:work, routeResponse: true}
  hit:   {handler: bench_cache:work, routeResponse: true, caching: {cacheKeyParameters: [$request.body.k]}}
  miss:  {handler: bench_cache:work, routeResponse: true, caching: {cacheKeyParameters: [$request.body.n]}}
  plain: {handler: bench_cache:work, routeResponse: true}
"""
TARGETS = ("hit", "miss", "plain")


async def _drive(port: int, target: str, seconds: float, connections: int) -> int:
    """Messages answered in `seconds` over `connections` WebSockets, one in flight on each."""
    from websockets.asyncio.client import connect

    done = 0
    stop = time.monotonic() + seconds

    async def one(conn: int) -> None:
        nonlocal done
        async with connect(f"ws://127.0.0.1:{port}/dev") as ws:
            i = 0
            while time.monotonic() < stop:
                await ws.send(json.dumps({"action": target, "k": 1, "n": f"{os.getpid()}-{conn}-{i}"}))
                answer = json.loads(await ws.recv())
                if "total" not in answer:
                    raise RuntimeError(f"{target}: unexpected answer {answer!r}")
                done += 1
                i += 1

    await asyncio.gather(*(one(c) for c in range(connections)))
    return done


def _client(port: int, target: str, seconds: float, connections: int,
            out: multiprocessing.Queue[tuple[float, str]]) -> None:
    try:
        started = time.monotonic()
        done = asyncio.run(_drive(port, target, seconds, connections))
        out.put((done / (time.monotonic() - started), ""))
    except Exception as exc:    # reported by the parent
        out.put((0.0, f"{target}: {exc!r}"))


def run(seconds: float, connections: int, rounds: int) -> tuple[list[Figures], tuple[float, ...]]:
    return measure(CONFIG, list(TARGETS), _client, seconds, connections, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures, load = run(args.seconds, args.connections, args.rounds)
    print(f"{args.connections} WebSockets, {args.seconds:g} s per target, {args.rounds} rounds; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    by_name = {f.target: f for f in figures}
    for f in figures:
        print(f"  {f.target:6s} {f.median:9.0f} msg/s  ({min(f.rates):.0f}..{max(f.rates):.0f})")
    print(f"  hit ÷ miss: {by_name['hit'].median / by_name['miss'].median:.2f}   "
          f"miss ÷ plain: {by_name['miss'].median / by_name['plain'].median:.2f}   "
          f"hit ÷ plain: {by_name['hit'].median / by_name['plain'].median:.2f}")


if __name__ == "__main__":
    main()
