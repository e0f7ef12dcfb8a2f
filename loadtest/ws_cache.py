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

import asyncio
import json
import multiprocessing
import os
import time

from loadtest.rest_cache import Figures, main_for, measure

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
    main_for(__doc__, run, "WebSockets", "msg/s")


if __name__ == "__main__":
    main()
