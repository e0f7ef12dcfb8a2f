"""The Redis registry with two in-process nodes: push, describe and close a connection from the node that does
not hold it; Redis going away and coming back; a real 3-master cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import testapp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import endpoint, management_client, open_client, serve, wait_for
from tests.redis_fixture import RedisServer, with_options
from wsgw.registry import RegistryUnavailable, open_registry
from wsgw.server.app import GatewayServer

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
}


async def test_post_get_delete_on_one_node_reach_a_connection_held_by_another(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        ws, cid = await open_client(a)
        client = management_client(endpoint(b))
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"from node b")
        assert await ws.recv() == "from node b"
        info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        assert info["ConnectedAt"].year >= 2024
        await asyncio.to_thread(client.delete_connection, ConnectionId=cid)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1000
        await wait_for(lambda: testapp.events_of("$disconnect"))
        assert [e["requestContext"]["disconnectStatusCode"] for e in testapp.events_of("$disconnect")] == [1000]
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"late")


async def test_unknown_connection_is_gone_from_every_node(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        for server in (a, b):
            client = management_client(endpoint(server))
            for call in (lambda c=client: c.post_to_connection(ConnectionId="Tm9uZXhpc3RlbnQ=", Data=b"x"),
                         lambda c=client: c.get_connection(ConnectionId="Tm9uZXhpc3RlbnQ="),
                         lambda c=client: c.delete_connection(ConnectionId="Tm9uZXhpc3RlbnQ=")):
                with pytest.raises(client.exceptions.GoneException):
                    await asyncio.to_thread(call)


async def test_pushes_from_one_caller_arrive_in_the_order_posted(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        ws, cid = await open_client(a)
        for i in range(200):
            assert await b.gateway.post(cid, f"m{i}".encode())
        assert [await ws.recv() for _ in range(200)] == [f"m{i}" for i in range(200)]


async def test_messages_do_not_touch_redis_and_last_active_is_flushed_in_batches(redis_url: str) -> None:
    base = redis_url.split("?")[0]
    stats = redis.Redis.from_url(base)

    def redis_calls() -> int:
        return sum(int(v["calls"]) for v in stats.info("commandstats").values())

    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        ws, cid = await open_client(a)
        first = await b.gateway.get(cid)
        assert first is not None
        await asyncio.sleep(0.01)                         # a later millisecond for lastActiveAt
        calls_before = redis_calls()
        for i in range(300):
            await ws.send(f"hello {i}")
        conn = a.gateway.connections[cid]
        try:
            async with asyncio.timeout(20):
                for _ in range(300):
                    await ws.recv()
        except TimeoutError:
            raise AssertionError(f"answers stopped: inbox {len(conn.inbox)}, worker {conn.worker}, reading "
                                 f"paused {conn.reading_paused}, node {a.gateway.node_id}, "
                                 f"registered {list(a.gateway.connections)}") from None
        calls_during = redis_calls() - calls_before
        # 300 messages: only the nodes' periodic heartbeat/flush commands (their number grows with elapsed time
        # on a loaded machine, not with messages); one command per message would be 300 or more
        assert calls_during < 150, calls_during
        stored = await wait_for(lambda: int(stats.hget(f"{a.gateway.registry.keys.conn(cid)}", "lastActiveAt")
                                            or 0) > first.last_active_ms, timeout=5)
        assert stored
    stats.close()


async def test_registry_refuses_bad_redis_options() -> None:
    for url in ("redis://127.0.0.1:1/0?node_ttl=abc", "redis://127.0.0.1:1/0?node_ttl=0",
                "redis://127.0.0.1:1/0?key_prefix={x}", "http://127.0.0.1:6379"):
        with pytest.raises(ValueError, match="--redis"):
            open_registry(url)


async def test_redis_outage_keeps_local_traffic_and_fails_remote_work_fast(redis_server: RedisServer) -> None:
    url = with_options(redis_server.url, node_ttl=2)
    async with serve(API, redis_url=url) as a, serve(API, redis_url=url) as b:
        ws_a, cid_a = await open_client(a)
        ws_b, cid_b = await open_client(b)
        redis_server.stop()
        # local: messages and pushes to a node's own sockets keep working
        await ws_a.send("still here")
        assert await ws_a.recv() == "still here"
        assert await a.gateway.post(cid_a, b"local push")
        assert await ws_a.recv() == "local push"
        # remote push and new connections: a clear 503, quickly
        started = time.monotonic()
        status = await asyncio.to_thread(_http_status, endpoint(b), "POST", cid_a)
        assert status == 503
        with pytest.raises(InvalidStatus) as refused:
            async with connect(b.urls.websocket, open_timeout=10):
                pass
        assert refused.value.response.status_code == 503
        assert time.monotonic() - started < 5
        # Redis back, empty: both nodes re-register their live connections by themselves
        redis_server.start()
        for sender, cid, ws in ((b, cid_a, ws_a), (a, cid_b, ws_b)):
            delivered = await _push_until_delivered(sender, cid, b"after restart")
            assert [await ws.recv() for _ in range(delivered)] == ["after restart"] * delivered
        async with connect(b.urls.websocket) as ws_new:
            await ws_new.send("new")
            assert await ws_new.recv() == "new"


async def _push_until_delivered(sender: GatewayServer, cid: str, data: bytes, timeout: float = 15) -> int:
    """Post until one push is delivered; every answer meanwhile is 'unavailable' (never 'gone'). → pushes made."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert await sender.gateway.post(cid, data), "a live connection was reported gone"
            return 1
        except RegistryUnavailable:
            assert time.monotonic() < deadline, "nodes did not re-register after the Redis restart"
            await asyncio.sleep(0.05)


def _http_status(base: str, method: str, cid: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{base}/@connections/{cid}", data=b"x" if method == "POST" else None,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_cluster_push_get_delete_across_nodes(redis_cluster: Any) -> None:
    url = with_options(redis_cluster.url, node_ttl=2)
    async with serve(API, redis_url=url) as a, serve(API, redis_url=url) as b:
        assert a.gateway.registry.health()["redisMode"] == "cluster"
        clients = [await open_client(a) for _ in range(6)]
        for ws, cid in clients:
            assert await b.gateway.post(cid, f"to {cid}".encode())
            assert await ws.recv() == f"to {cid}"
            record = await b.gateway.get(cid)
            assert record is not None and record.node_id == a.gateway.node_id
        assert not await b.gateway.post("Tm9uZXhpc3RlbnQ=", b"x")
        ws, cid = clients[0]
        assert await b.gateway.delete(cid)
        await asyncio.wait_for(ws.wait_closed(), 5)
        for ws, _ in clients[1:]:
            await ws.close()
