"""wsgw.client: a worker pushes over HTTP or straight through Redis, sync and async, with 200/410 semantics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import endpoint, open_client, serve, wait_for
from tests.redis_fixture import RedisServer
from wsgw.client import AsyncHttpPusher, AsyncRedisPusher, HttpPusher, PushError, RedisPusher

API: dict[str, Any] = {"routes": {"$default": {"handler": "testapp:echo", "routeResponse": True}}}
GONE_ID = "R29uZUNsaWVudA="


async def test_http_pushers_deliver_describe_and_close(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a, serve(API, redis_url=redis_url) as b:
        ws, cid = await open_client(a)
        sync = HttpPusher(endpoint(b))
        assert await asyncio.to_thread(sync.post, cid, "sync over http") is True
        assert await ws.recv() == "sync over http"
        assert await asyncio.to_thread(sync.post, GONE_ID, b"x") is False
        info = await asyncio.to_thread(sync.get, cid)
        assert info is not None and info["identity"]["sourceIp"] == "127.0.0.1"
        assert await asyncio.to_thread(sync.get, GONE_ID) is None
        sync.close()
        async with AsyncHttpPusher(endpoint(b)) as pusher:
            assert await pusher.post(cid, b"async over http") is True
            assert await ws.recv() == "async over http"
            assert await pusher.post(GONE_ID, b"x") is False
            assert await pusher.delete(cid) is True
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert await pusher.delete(cid) is False


async def test_redis_pushers_deliver_without_http(redis_url: str) -> None:
    async with serve(API, redis_url=redis_url) as a:
        ws, cid = await open_client(a)
        requests_before = a.gateway.metrics.render().decode().count("wsgw_http_requests_total")
        async with AsyncRedisPusher(redis_url) as pusher:
            assert await pusher.post(cid, "async via redis") is True
            assert await ws.recv() == "async via redis"
            assert await pusher.post(GONE_ID, b"x") is False
            record = await pusher.get(cid)
            assert record is not None and record["node"] == a.gateway.node_id
        with RedisPusher(redis_url) as sync:
            assert await asyncio.to_thread(sync.post, cid, b"sync via redis") is True
            assert await ws.recv() == "sync via redis"
            assert await asyncio.to_thread(sync.post, GONE_ID, b"x") is False
            assert await asyncio.to_thread(sync.delete, cid) is True
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert a.gateway.metrics.render().decode().count("wsgw_http_requests_total") == requests_before


async def test_redis_pusher_reports_unreachable_redis_as_503(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.stop()
    pusher = AsyncRedisPusher(url)
    with pytest.raises(PushError) as failed:
        await pusher.post(GONE_ID, b"x")
    assert failed.value.status == 503
    await pusher.close()


def test_http_pusher_refuses_a_non_http_endpoint() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        HttpPusher("redis://127.0.0.1:6379")


async def test_many_concurrent_first_pushes_all_wait_for_the_link(redis_url: str) -> None:
    """The first pushes of a fresh AsyncRedisPusher arrive together: none may see a half-started link (503)."""
    api = {"routes": {"$default": {"handler": "testapp:echo", "routeResponse": True}}}
    async with serve(api, redis_url=redis_url) as node, connect(node.urls.websocket) as ws:
        connection_id = (await wait_for(lambda: list(node.gateway.connections)))[0]
        pusher = AsyncRedisPusher(redis_url)
        try:
            results = await asyncio.gather(*(pusher.post(connection_id, str(i)) for i in range(64)))
        finally:
            await pusher.close()
        assert results == [True] * 64
        assert sorted([await ws.recv() for _ in range(64)], key=int) == [str(i) for i in range(64)]


async def test_http_pushers_report_an_unreachable_node_as_push_error_503() -> None:
    import socket

    with socket.socket() as probe:                  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}/dev"
    with pytest.raises(PushError) as sync_error:
        await asyncio.to_thread(HttpPusher(endpoint, timeout=2).post, "AAAAAAAAAAAAAAA=", b"x")
    assert sync_error.value.status == 503
    pusher = AsyncHttpPusher(endpoint, timeout=2)
    try:
        with pytest.raises(PushError) as async_error:
            await pusher.post("AAAAAAAAAAAAAAA=", b"x")
        assert async_error.value.status == 503
    finally:
        await pusher.close()
