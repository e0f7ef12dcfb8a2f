"""`make soak`: minutes of churn against two real nodes sharing a real Redis, then RSS and fds must be flat.

Connections open, talk and close; pushes cross nodes; broadcasts go out; node B is restarted halfway. Node A is
measured from /proc after a warm-up and again once the load stopped and its sockets closed: its fds must be
back where they were and its RSS within a few MB (a leak grows with the minutes, noise does not).
Not part of `make test` (minutes); prints its figures and exits 1 when they are not flat.

    python -m tests.soak [--minutes 3] [--clients 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tests.helpers import APPS, ROOT, GatewayProcess, wait_for, write_config
from tests.redis_fixture import RedisServer, with_options

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "soakapp:ok"},
        "$disconnect": {"handler": "soakapp:ok"},
        "$default": {"handler": "soakapp:echo", "routeResponse": True},
        "whoami": {"integration": {"type": "mock", "response": '{"id": "$context.connectionId"}'},
                   "routeResponse": True},
    },
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    def __init__(self, nodes: list[GatewayProcess]) -> None:
        self.nodes = nodes
        self.stop = asyncio.Event()
        self.ids: dict[str, int] = {}          # live connection id → index of its node
        self.counts = {"opened": 0, "messages": 0, "pushes": 0, "push_200": 0, "broadcasts": 0, "errors": 0}

    async def client(self, index: int) -> None:
        """Open on a node, talk a little, close; again, until stopped."""
        rng = random.Random(index)
        while not self.stop.is_set():
            node_index = rng.randrange(len(self.nodes))
            try:
                ws: ClientConnection = await connect(self.nodes[node_index].ws_url, open_timeout=10)
            except (OSError, WebSocketException, TimeoutError):
                self.counts["errors"] += 1
                await asyncio.sleep(0.2)
                continue
            self.counts["opened"] += 1
            cid = ""
            try:
                await ws.send('{"action": "whoami"}')
                cid = str(json.loads(await asyncio.wait_for(ws.recv(), 10))["id"])
                self.ids[cid] = node_index
                for n in range(rng.randrange(1, 20)):
                    await ws.send(f"m{n}")
                    with contextlib.suppress(TimeoutError):
                        while (await asyncio.wait_for(ws.recv(), 10)) != f"m{n}":
                            pass                    # pushes and broadcasts arrive in between
                    self.counts["messages"] += 1
                    await asyncio.sleep(rng.random() * 0.2)
            except (OSError, WebSocketException, TimeoutError):
                self.counts["errors"] += 1
            finally:
                self.ids.pop(cid, None)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 10)

    async def pusher(self, session: aiohttp.ClientSession) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            if self.ids:
                cid, owner = rng.choice(list(self.ids.items()))
                via = self.nodes[1 - owner] if len(self.nodes) > 1 else self.nodes[0]
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.post(f"{via.http_url}/@connections/{cid}", data=b"push") as response:
                        await response.read()
                        self.counts["pushes"] += 1
                        self.counts["push_200"] += response.status == 200
            await asyncio.sleep(0.01)

    async def broadcaster(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.post(f"{self.nodes[0].http_url}/@broadcast", data=b"all") as response:
                    await response.read()
                    self.counts["broadcasts"] += 1
            await asyncio.sleep(1)


async def soak(minutes: float, clients: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer().start()
        url = with_options(redis_server.url, node_ttl=2)
        config = write_config(Path(tmp) / "api.yaml", API)
        env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}"}
        a = GatewayProcess(config, "--redis", url, "--log-level", "warning", env=env).start()
        b = GatewayProcess(config, "--redis", url, "--log-level", "warning", env=env).start()
        assert a.proc is not None
        pid = a.proc.pid
        load = Load([a, b])
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                tasks = [asyncio.create_task(load.client(i)) for i in range(clients)]
                tasks += [asyncio.create_task(load.pusher(session)), asyncio.create_task(load.broadcaster(session))]
                await asyncio.sleep(20)                              # warm-up: caches, pools, allocator arenas
                base_rss, base_fds = rss_mb(pid), fds(pid)
                print(f"after warm-up: node A RSS {base_rss:.1f} MB, {base_fds} fds", flush=True)
                total = minutes * 60
                start = time.monotonic()
                restarted = False
                while (elapsed := time.monotonic() - start) < total:
                    if not restarted and elapsed > total / 2:
                        b.stop()                                     # node B restarts halfway (SIGTERM)
                        b.port = 0
                        b.start()
                        restarted = True
                        print(f"{elapsed:.0f}s: node B restarted", flush=True)
                    await asyncio.sleep(10)
                    print(f"{elapsed:.0f}s: RSS {rss_mb(pid):.1f} MB, {fds(pid)} fds, {load.counts}", flush=True)
                load.stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(AssertionError):        # settled, or measured as it is after 30 s
                await wait_for(lambda: fds(pid) <= base_fds, timeout=30, interval=0.5)
            end_rss, end_fds = rss_mb(pid), fds(pid)
        finally:
            a.stop()
            b.stop()
            redis_server.cleanup()
    print(f"end: node A RSS {end_rss:.1f} MB ({end_rss - base_rss:+.1f}), {end_fds} fds ({end_fds - base_fds:+d}); "
          f"{load.counts}")
    flat = end_rss - base_rss <= 16 and end_fds <= base_fds + 2 and load.counts["push_200"] > 0
    print("flat" if flat else "NOT FLAT")
    return 0 if flat else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=40)
    args = parser.parse_args()
    sys.path.insert(0, str(APPS))
    return asyncio.run(soak(args.minutes, args.clients))


if __name__ == "__main__":
    raise SystemExit(main())
