"""Real network partitions: a node in its own network namespace, reached by clients over one veth link and
reaching Redis over another; the Redis link is cut (`ip link set down`) and healed.

Nodes talk to each other only through Redis, so a node cut off from Redis is also cut off from its peers while
its clients still reach it. The documented bounds: the cut-off node stops answering 200 (and writing pushes)
within node_ttl of its last heartbeat, a survivor runs each of its connections' $disconnect once, and after
the heal the node re-joins, closes the reaped sockets (1001) without a second $disconnect, and serves again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import APPS, ROOT, GatewayProcess, wait_for, write_config
from tests.redis_fixture import RedisServer, with_options
from tests.test_redis_nodes import API, Client, event_log, http, post
from tests.test_redis_reaped import disconnects_of
from wsgw.registry.redis_store import Keys
from wsgw.registry.redis_wire import RedisOptions

__all__ = ["event_log"]

NODE_TTL = 2.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Namespace:
    name: str
    redis_link: str          # root side of the veth that carries Redis traffic: down = partition
    redis_host: str          # Redis as the namespace sees it
    node_host: str           # the node's address for clients in the root namespace


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    """A namespace with two veth links to the root namespace: 10.77.1.0/30 (Redis), 10.77.2.0/30 (clients)."""
    tag = f"{os.getpid() % 10000}"
    name, redis_link, client_link = f"wsgw-p{tag}", f"wr{tag}", f"wc{tag}"
    ip("netns", "add", name)
    try:
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        for link, subnet in ((redis_link, "10.77.1"), (client_link, "10.77.2")):
            ip("link", "add", link, "type", "veth", "peer", "name", link + "n")
            ip("link", "set", link + "n", "netns", name)
            ip("addr", "add", f"{subnet}.1/30", "dev", link)
            ip("link", "set", link, "up")
            ip("netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/30", "dev", link + "n")
            ip("netns", "exec", name, "ip", "link", "set", link + "n", "up")
        yield Namespace(name, redis_link, "10.77.1.1", "10.77.2.2")
    finally:
        for link in (redis_link, client_link):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


async def pushes_until(session: aiohttp.ClientSession, node: GatewayProcess, cid: str, stop: asyncio.Event,
                       log: list[tuple[float, str, int]]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        text = f"p{n}"
        try:
            status = await post(session, node, cid, text)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        log.append((time.monotonic(), text, status))
        await asyncio.sleep(0.05)


async def test_a_node_cut_off_from_redis_and_its_peers_gives_no_false_200_no_ghost_no_double_disconnect(
        tmp_path: Path, event_log: Path, namespace: Namespace) -> None:
    redis_server = RedisServer(bind=f"127.0.0.1 {namespace.redis_host}").start()
    keys = Keys(RedisOptions.from_url(redis_server.url).key_prefix)
    store = redis_server.client()
    config = write_config(tmp_path / "api.yaml", API)
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}", "WSGW_TEST_EVENT_LOG": str(event_log)}
    inside_url = with_options(f"redis://{namespace.redis_host}:{redis_server.port}/0", node_ttl=NODE_TTL)
    a = GatewayProcess(config, "--redis", inside_url, "--host", namespace.node_host, env=env,
                       prefix=("ip", "netns", "exec", namespace.name))
    b = GatewayProcess(config, "--redis", with_options(redis_server.url, node_ttl=NODE_TTL), env=env)
    try:
        a.start()
        b.start()
        async with http() as session:
            cut_off = await Client.open(a.ws_url)
            assert await post(session, b, cut_off.cid, "before") == 200
            await wait_for(lambda: cut_off.received == ["before"])

            ip("link", "set", namespace.redis_link, "down")           # the partition
            cut_at = time.monotonic()
            stop = asyncio.Event()
            direct: list[tuple[float, str, int]] = []
            via_peer: list[tuple[float, str, int]] = []
            loads = [asyncio.create_task(pushes_until(session, a, cut_off.cid, stop, direct)),
                     asyncio.create_task(pushes_until(session, b, cut_off.cid, stop, via_peer))]
            # the survivor reaps the cut-off node's connection once its heartbeat key expired
            await wait_for(lambda: disconnects_of(event_log, cut_off.cid) == [1006], timeout=NODE_TTL * 10)
            await wait_for(lambda: len(direct) > 10 and direct[-1][0] > cut_at + NODE_TTL + 1, timeout=30)
            stop.set()
            await asyncio.gather(*loads)

            # no false 200: every push answered 200 reached the client; the cut-off node stopped answering 200
            # within node_ttl (plus a heartbeat period) of the cut, and the survivor answers 410 once it reaped
            answered = {text for _, text, status in direct + via_peer if status == 200}
            await wait_for(lambda: answered <= set(cut_off.received), timeout=5)
            last_200 = max((at for at, _, status in direct if status == 200), default=cut_at)
            assert last_200 - cut_at <= NODE_TTL + 0.5, last_200 - cut_at
            assert {status for _, _, status in direct if status != 200} <= {503}
            assert via_peer[-1][2] == 410

            ip("link", "set", namespace.redis_link, "up")             # the heal
            await asyncio.wait_for(cut_off.ws.wait_closed(), 30)      # re-joined: the reaped socket is closed
            assert cut_off.ws.close_code == 1001
            fresh = await wait_for_client(a.ws_url)
            assert await post(session, b, fresh.cid, "after heal") == 200
            await wait_for(lambda: fresh.received == ["after heal"])
            await fresh.close()
            await wait_for(lambda: len(disconnects_of(event_log, fresh.cid)) == 1, timeout=10)
            # no double $disconnect, no ghost
            assert disconnects_of(event_log, cut_off.cid) == [1006]
            assert not store.exists(keys.conn(cut_off.cid))
            # (503 for a moment after the heal: a node that just got Redis back cannot yet tell gone from
            # not-re-registered-yet, so it does not guess 410)
            for _ in range(int(NODE_TTL * 25)):
                ghost = await post(session, a, cut_off.cid, "ghost?")
                if ghost != 503:
                    break
                await asyncio.sleep(0.2)
            assert ghost == 410
    finally:
        a.stop()
        b.stop()
        store.close()
        redis_server.cleanup()


async def wait_for_client(url: str) -> Client:
    """The re-joined node admits again once its first heartbeat under its new id got through."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await Client.open(url)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
