"""Several real `wsgw run --redis` processes: a node killed with -9 mid-load, Redis restarted under load,
1,000 concurrent pushes to live and gone connections, `--workers N` sharing one port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import APPS, ROOT, GatewayProcess, wait_for, write_config
from tests.redis_fixture import RedisServer, with_options
from wsgw.registry.redis_store import Keys
from wsgw.registry.redis_wire import RedisOptions

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
        "whoami": {"integration": {"type": "mock", "response": '{"id": "$context.connectionId"}'},
                   "routeResponse": True},
    },
}


class Client:
    """A WebSocket client that learns its connection id and records every frame pushed to it."""

    def __init__(self, ws: ClientConnection, cid: str) -> None:
        self.ws = ws
        self.cid = cid
        self.received: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, ws_url: str) -> Client:
        ws = await connect(ws_url)
        await ws.send('{"action": "whoami"}')
        cid = json.loads(await ws.recv())["id"]
        return cls(ws, cid)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                self.received.append(frame if isinstance(frame, str) else frame.decode())

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 5)


@pytest.fixture
def event_log(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


@contextlib.contextmanager
def nodes(tmp_path: Path, event_log: Path, redis_url: str, count: int, *extra: str,
          env_extra: dict[str, str] | None = None) -> Iterator[list[GatewayProcess]]:
    config = write_config(tmp_path / "api.yaml", API)
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}", "WSGW_TEST_EVENT_LOG": str(event_log), **(env_extra or {})}
    started: list[GatewayProcess] = []
    try:
        for _ in range(count):
            started.append(GatewayProcess(config, "--redis", redis_url, *extra, env=env).start())
        yield started
    finally:
        for node in started:
            node.stop()


def events(event_log: Path, route_key: str) -> list[dict[str, Any]]:
    if not event_log.exists():
        return []
    lines = event_log.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines if line.strip()]
    return [e for e in parsed if e["requestContext"]["routeKey"] == route_key]


def _store(url: str) -> Any:
    """A sync client for assertions: a cluster client when the URL points into a cluster."""
    plain = redis.Redis.from_url(url.split("?")[0])
    if plain.info("cluster").get("cluster_enabled"):
        plain.close()
        return redis.RedisCluster.from_url(url.split("?")[0])
    return plain


def health(node: GatewayProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{node.base}/health", timeout=5) as response:
        return dict(json.loads(response.read()))


@contextlib.asynccontextmanager
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=250),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def post(session: aiohttp.ClientSession, node: GatewayProcess, cid: str, data: str) -> int:
    async with session.post(f"{node.http_url}/@connections/{cid}", data=data.encode()) as response:
        await response.read()
        return int(response.status)


async def test_killing_the_owning_node_mid_load_answers_410_and_runs_each_disconnect_once(
        tmp_path: Path, event_log: Path, any_redis_url: str) -> None:
    redis_url = any_redis_url
    keys = Keys(RedisOptions.from_url(redis_url).key_prefix)
    store = _store(redis_url)
    with nodes(tmp_path, event_log, redis_url, 3) as (a, b, c):
        dead_node = health(a)["node"]
        on_a = [await Client.open(a.ws_url) for _ in range(20)]
        on_b = [await Client.open(b.ws_url) for _ in range(3)]
        results: list[tuple[str, str, int]] = []
        stop = asyncio.Event()

        async def load(session: aiohttp.ClientSession, via: GatewayProcess) -> None:
            n = 0
            while not stop.is_set():
                target = random.choice(on_a)
                n += 1
                payload = f"{via.port}-{n}"
                results.append((target.cid, payload, await post(session, via, target.cid, payload)))

        async with http() as session:
            loaders = [asyncio.create_task(load(session, via)) for via in (b, c) for _ in range(4)]
            await wait_for(lambda: len(results) >= 200, timeout=20)
            a.stop(signal.SIGKILL)
            killed_at = len(results)
            await wait_for(lambda: len(results) >= killed_at + 200, timeout=20)
            stop.set()
            await asyncio.gather(*loaders)
            # within the bound every connection of the dead node is gone, from every node
            for client in on_a:
                for via in (b, c):
                    assert await post(session, via, client.cid, "after death") == 410
            for client in on_b:
                assert await post(session, c, client.cid, "survivor") == 200
        assert {status for _, _, status in results} <= {200, 410}
        assert {status for _, _, status in results[killed_at + 50:]} == {410}
        # never a false 200: every acknowledged push reached its client
        for client in on_a:
            await client.close()
        delivered = {(cid, payload) for cid, payload, status in results if status == 200}
        received = {(client.cid, frame) for client in on_a for frame in client.received}
        assert delivered <= received
        # a survivor ran $disconnect (1006) once per connection of the dead node, after its heartbeat expired
        await wait_for(lambda: not store.hexists(keys.nodes, dead_node), timeout=15)
        ids = [e["requestContext"]["connectionId"] for e in events(event_log, "$disconnect")]
        assert sorted(cid for cid in ids if cid in {cl.cid for cl in on_a}) == sorted(cl.cid for cl in on_a)
        codes = {e["requestContext"]["disconnectStatusCode"] for e in events(event_log, "$disconnect")
                 if e["requestContext"]["connectionId"] in {cl.cid for cl in on_a}}
        assert codes == {1006}
        assert store.scard(keys.conns(dead_node)) == 0
        assert all(not store.exists(keys.conn(cl.cid)) for cl in on_a)
        for client in on_b:
            await client.close()
    store.close()


async def test_concurrent_pushes_to_live_and_gone_connections_answer_200_exactly_for_delivered_frames(
        tmp_path: Path, event_log: Path, any_redis_url: str) -> None:
    with nodes(tmp_path, event_log, any_redis_url, 2) as (a, b):
        live = [await Client.open(node.ws_url) for node in (a, b) for _ in range(15)]
        closed = [await Client.open(node.ws_url) for node in (a, b) for _ in range(5)]
        for client in closed:
            await client.close()
        gone_ids = [c.cid for c in closed] + [f"R29uZS{i:04d}Q=" for i in range(10)]
        targets = [c.cid for c in live] + gone_ids
        rng = random.Random(4)
        plan = [(rng.choice(targets), f"push-{i}", rng.choice((a, b))) for i in range(1000)]
        async with http() as session:
            statuses = await asyncio.gather(*(post(session, via, cid, data) for cid, data, via in plan))
        assert set(statuses) <= {200, 410}
        answered = {(cid, data): status for (cid, data, _), status in zip(plan, statuses, strict=True)}
        assert all(status == 410 for (cid, _), status in answered.items() if cid in gone_ids)
        delivered = {key for key, status in answered.items() if status == 200}
        assert len(delivered) == sum(1 for cid, _, _ in plan if cid not in gone_ids)
        await wait_for(lambda: sum(len(c.received) for c in live) >= len(delivered), timeout=15)
        received = {(c.cid, frame) for c in live for frame in c.received}
        assert received == delivered
        for client in live:
            await client.close()


async def test_nodes_recover_from_a_redis_restart_under_load_without_restarting(
        tmp_path: Path, event_log: Path, redis_server: RedisServer) -> None:
    url = with_options(redis_server.url, node_ttl=2)
    with nodes(tmp_path, event_log, url, 2) as (a, b):
        on_a = [await Client.open(a.ws_url) for _ in range(5)]
        on_b = [await Client.open(b.ws_url) for _ in range(5)]
        results: list[tuple[str, str, int]] = []
        stop = asyncio.Event()

        async def load(session: aiohttp.ClientSession) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                for target, via in ((random.choice(on_a), b), (random.choice(on_b), a)):
                    payload = f"{via.port}-{n}"
                    results.append((target.cid, payload, await post(session, via, target.cid, payload)))

        async with http() as session:
            loader = asyncio.create_task(load(session))
            await wait_for(lambda: len(results) >= 50, timeout=20)
            redis_server.stop()
            await wait_for(lambda: any(status == 503 for _, _, status in results[-5:]), timeout=10)
            # local traffic is unaffected while Redis is away
            await on_a[0].ws.send("local")
            await wait_for(lambda: "local" in on_a[0].received)
            redis_server.start()
            mark = len(results)
            await wait_for(lambda: len(results) > mark + 40 and all(s == 200 for _, _, s in results[-20:]),
                           timeout=20)
            stop.set()
            await loader
        seen = {status for _, _, status in results}
        assert seen <= {200, 503}, f"statuses seen: {sorted(seen)}"     # never "gone" for a live connection
        clients = on_a + on_b
        delivered = {(cid, payload) for cid, payload, status in results if status == 200}
        await wait_for(lambda: delivered <= {(c.cid, f) for c in clients for f in c.received}, timeout=10)
        for client in clients:
            await client.close()


@pytest.mark.parametrize("how", ["flag", "environment"])
async def test_workers_share_one_port_and_push_to_each_other(tmp_path: Path, event_log: Path,
                                                            redis_url: str, how: str) -> None:
    keys = Keys(RedisOptions.from_url(redis_url).key_prefix)
    store = redis.Redis.from_url(redis_url.split("?")[0])
    extra, env = (("--workers", "2"), None) if how == "flag" else ((), {"WSGW_WORKERS": "2"})
    with nodes(tmp_path, event_log, redis_url, 1, *extra, env_extra=env) as (server,):
        await wait_for(lambda: store.hlen(keys.nodes) == 2, timeout=20)
        clients = [await Client.open(server.ws_url) for _ in range(24)]
        node_ids = [n.decode() for n in store.hkeys(keys.nodes)]
        assert all(store.scard(keys.conns(node)) > 0 for node in node_ids), "SO_REUSEPORT spread no load"
        async with http() as session:
            for client in clients:
                assert await post(session, server, client.cid, f"hi {client.cid}") == 200
        await wait_for(lambda: all(c.received == [f"hi {c.cid}"] for c in clients), timeout=10)
        assert store.hlen(keys.nodes) == 2          # workers never supervise workers of their own
        for client in clients:
            await client.close()
    store.close()


def test_workers_without_redis_is_refused_naming_the_flag(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = write_config(tmp_path / "api.yaml", API)
    done = subprocess.run([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--workers", "2"],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=30,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}"})
    assert done.returncode == 2
    assert "--workers" in done.stderr and "--redis" in done.stderr


