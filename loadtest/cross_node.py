"""Cross-node push rate and latency, and Redis memory per connection.

Starts its own redis-server (free port) and two `wsgw run --redis` nodes A and B, opens clients on A, and
POSTs on B to A's connections (B → Redis → A → socket): latency is POST sent → frame read by the client.
Then opens N connections on A and reads Redis `used_memory` before and after.

    python -m loadtest.cross_node [--pushes 20000] [--concurrency 64] [--clients 100] [--memory-connections 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import GatewayProcess, write_config
from tests.redis_fixture import RedisServer

API = {
    "routes": {
        "whoami": {"integration": {"type": "mock", "response": '{"id": "$context.connectionId"}'},
                   "routeResponse": True},
        "$default": {"integration": {"type": "mock", "response": "{}"}},
    },
}


async def open_client(url: str) -> tuple[ClientConnection, str]:
    ws = await connect(url, max_queue=None)
    await ws.send('{"action": "whoami"}')
    return ws, json.loads(await ws.recv())["id"]


async def push_phase(a: GatewayProcess, b: GatewayProcess, pushes: int, concurrency: int,
                     clients: int) -> dict[str, float]:
    """POST on node b to clients of node a (a is b for the same-node baseline)."""
    opened = [await open_client(a.ws_url) for _ in range(clients)]
    arrivals: dict[str, float] = {}

    async def read(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                arrivals[str(frame)] = time.perf_counter()

    readers = [asyncio.create_task(read(ws)) for ws, _ in opened]
    sent: dict[str, float] = {}
    statuses: dict[int, int] = {}
    counter = iter(range(pushes))

    async def poster(session: aiohttp.ClientSession) -> None:
        for n in counter:
            _, cid = opened[n % clients]
            payload = f"p{n}"
            sent[payload] = time.perf_counter()
            async with session.post(f"{b.http_url}/@connections/{cid}", data=payload.encode()) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(poster(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 10
    while len(arrivals) < statuses.get(200, 0) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    latencies = sorted((arrivals[p] - sent[p]) * 1000 for p in sent if p in arrivals)
    for ws, _ in opened:
        await ws.close()
    for task in readers:
        task.cancel()
    return {
        "pushes": pushes, "concurrency": concurrency, "ok": statuses.get(200, 0),
        "other_statuses": sum(v for k, v in statuses.items() if k != 200),
        "received": len(latencies), "rate_per_s": pushes / elapsed,
        "p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


async def memory_phase(a: GatewayProcess, store: redis.Redis, count: int) -> dict[str, float]:
    await asyncio.sleep(1.5)
    before = int(store.info("memory")["used_memory"])
    sockets: list[ClientConnection] = []
    for start in range(0, count, 250):
        sockets += await asyncio.gather(*(connect(a.ws_url) for _ in range(min(250, count - start))))
    await asyncio.sleep(1.5)                     # one heartbeat tick: everything registered and flushed
    after = int(store.info("memory")["used_memory"])
    keys = store.dbsize()
    sample = [k for k in store.scan_iter(match="*:conn", count=1000)][:200]
    hash_bytes = statistics.mean(int(store.memory_usage(k) or 0) for k in sample) if sample else 0.0
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"connections": count, "used_memory_before": before, "used_memory_after": after,
            "bytes_per_connection": (after - before) / count, "keys": keys,
            "conn_hash_memory_usage_bytes": hash_bytes}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--memory-connections", type=int, default=5000)
    args = parser.parse_args(argv)
    server = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="wsgw-cross-node-"))
    config = write_config(workdir / "api.yaml", API)
    nodes = [GatewayProcess(config, "--redis", server.url, "--log-level", "WARNING") for _ in range(2)]
    try:
        a, b = (node.start() for node in nodes)
        push = await push_phase(a, b, args.pushes, args.concurrency, args.clients)
        print(json.dumps({"cross_node_push": push}, indent=2), flush=True)
        local = await push_phase(a, a, args.pushes, args.concurrency, args.clients)
        print(json.dumps({"same_node_push_baseline": local}, indent=2), flush=True)
        store = server.client()
        memory = await memory_phase(a, store, args.memory_connections)
        print(json.dumps({"redis_memory": memory}, indent=2), flush=True)
        store.close()
    finally:
        for node in nodes:
            node.stop()
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
