"""Group fan-out rate against the alternatives, presence latency, Redis memory per membership.

Starts its own redis-server and two `wsgw run --redis` nodes A and B; clients are minimal raw WebSocket clients
in this process (tests/test_groups_nodes.RawClient). Measured (no pass/fail; print a table):

- group deliveries/s: `POST @groups/{g}` on A, 1,000 members on A only, then split 500/500 over A and B;
- the same frames with N x `POST @connections/{id}` (64 concurrent) to the 1,000 members on A;
- `websockets.broadcast` to 1,000 clients of a bare websockets server in its own process (the ceiling);
- presence query latency with 10,000 members (count only, and a 100-member page);
- Redis `used_memory` per membership (10,000 joins).

    python -m loadtest.groups [--members 1000] [--rounds 20] [--presence-members 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.helpers import ROOT, GatewayProcess, free_port, write_config
from tests.redis_fixture import RedisServer
from tests.test_groups_nodes import API, RawClient, open_many
from wsgw.client import AsyncHttpPusher

BASELINE = """
import asyncio, sys
from websockets.asyncio.server import serve, broadcast
clients = set()
async def handler(ws):
    clients.add(ws)
    try:
        async for message in ws:
            if message.startswith("go "):
                rounds = int(message.split()[1])
                for i in range(rounds):
                    broadcast(clients - {ws}, "frame")
                    await asyncio.sleep(0)
    finally:
        clients.discard(ws)
async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), max_queue=None):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


async def drain(clients: list[RawClient], frames: int) -> None:
    await asyncio.gather(*(_read(c, frames) for c in clients))


async def _read(client: RawClient, frames: int) -> None:
    for _ in range(frames):
        await client.frame()


async def group_rate(pusher: AsyncHttpPusher, group: str, clients: list[RawClient], rounds: int) -> float:
    started = time.perf_counter()
    reading = asyncio.ensure_future(drain(clients, rounds))
    for i in range(rounds):
        await pusher.publish(group, f"frame {i}")
    await reading
    return len(clients) * rounds / (time.perf_counter() - started)


async def post_rate(base: str, clients: list[RawClient], rounds: int) -> float:
    gate = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as http:
        async def post(cid: str, i: int) -> None:
            async with gate, http.post(f"{base}/dev/@connections/{cid}", data=f"frame {i}") as response:
                assert response.status == 200

        started = time.perf_counter()
        reading = asyncio.ensure_future(drain(clients, rounds))
        for i in range(rounds):
            await asyncio.gather(*(post(c.cid, i) for c in clients))
        await reading
        return len(clients) * rounds / (time.perf_counter() - started)


async def baseline_rate(members: int, rounds: int) -> float:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(port)],  # noqa: ASYNC220 - a server we start once
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        clients = await open_many(port, members + 1, greeting=False)
        control = clients.pop()
        started = time.perf_counter()
        reading = asyncio.ensure_future(drain(clients, rounds))
        control.writer.write(RawClient.masked(f"go {rounds}".encode()))
        await reading
        rate = members * rounds / (time.perf_counter() - started)
        for client in [*clients, control]:
            client.close()
        return rate
    finally:
        proc.terminate()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    server = RedisServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="wsgw-groups-"))
    config = write_config(tmp / "api.yaml", API)
    env = {"PYTHONPATH": str(ROOT)}
    a = GatewayProcess(config, "--redis", server.url, env=env).start()
    b = GatewayProcess(config, "--redis", server.url, env=env).start()
    rows: list[tuple[str, str]] = []
    try:
        async with AsyncHttpPusher(f"{a.base}/dev") as via_a, AsyncHttpPusher(f"{b.base}/dev") as via_b:
            m, r = args.members, args.rounds
            on_a = await open_many(a.port, m)
            await asyncio.gather(*(via_a.join("one", c.cid) for c in on_a))
            rate = await group_rate(via_a, "one", on_a, r)
            rows.append((f"group publish, {m} members on one node", f"{rate:,.0f} deliveries/s"))
            half = on_a[: m // 2] + await open_many(b.port, m - m // 2)
            await asyncio.gather(*(via_a.join("split", c.cid) for c in half[: m // 2]),
                                 *(via_b.join("split", c.cid) for c in half[m // 2:]))
            rows.append((f"group publish, {m} members split over two nodes",
                         f"{await group_rate(via_a, 'split', half, r):,.0f} deliveries/s"))
            rows.append((f"{m} x POST @connections (64 concurrent), one node",
                         f"{await post_rate(a.base, on_a, max(1, r // 4)):,.0f} deliveries/s"))
            rows.append((f"websockets.broadcast, {m} clients, bare server",
                         f"{await baseline_rate(m, r):,.0f} deliveries/s"))
            for client in on_a + half:
                client.close()

            store = server.client()
            before = int(store.info("memory")["used_memory"])
            n = args.presence_members
            many = await open_many(a.port, n // 2) + await open_many(b.port, n - n // 2)
            connected = int(store.info("memory")["used_memory"])
            gate = asyncio.Semaphore(256)

            async def join(c: RawClient, pusher: AsyncHttpPusher) -> None:
                async with gate:
                    await pusher.join("big", c.cid)

            await asyncio.gather(*(join(c, via_a if i < n // 2 else via_b) for i, c in enumerate(many)))
            joined = int(store.info("memory")["used_memory"])
            rows.append(("Redis memory per connection (for scale)", f"{(connected - before) / n:,.0f} bytes"))
            rows.append(("Redis memory per membership", f"{(joined - connected) / n:,.0f} bytes"))
            for label, limit in (("count only", 1), ("100-member page", 100)):
                times = []
                for _ in range(200):
                    started = time.perf_counter()
                    await via_b.presence("big", limit=limit)
                    times.append((time.perf_counter() - started) * 1000)
                rows.append((f"presence at {n:,} members, {label}",
                             f"p50 {statistics.median(times):.2f} ms, p99 {percentile(times, 0.99):.2f} ms"))
            started = time.perf_counter()
            reading = asyncio.ensure_future(drain(many, 1))
            await via_a.publish("big", "all")
            await reading
            rows.append((f"one publish to {n:,} members over two nodes, all read",
                         f"{(time.perf_counter() - started) * 1000:.0f} ms"))
            for c in many:
                c.close()
    finally:
        a.stop()
        b.stop()
        server.cleanup()
    width = max(len(label) for label, _ in rows)
    print(f"\n| {'measure'.ljust(width)} | result |\n|{'-' * (width + 2)}|---|")
    for label, value in rows:
        print(f"| {label.ljust(width)} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--presence-members", type=int, default=10_000)
    asyncio.run(main(parser.parse_args()))
