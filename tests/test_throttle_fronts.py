"""Throttling that holds: REST routes have buckets of their own, never a WebSocket route's (the REST
`$default` vs WebSocket `$default` collision), and `scope: cluster` buckets hold across nodes through Redis."""

from __future__ import annotations

from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from tests.helpers import serve
from wsgw.config.throttling import BucketSpec
from wsgw.throttle import Throttler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rest_and_websocket_routes_of_the_same_key_have_separate_buckets() -> None:
    throttler = Throttler(None, {"$default": BucketSpec(0, 1)}, None, Clock(),
                          rest_routes={"$default": BucketSpec(0, 2)})
    assert [throttler.admit_route("$default", "http") for _ in range(3)] == [True, True, False]
    assert throttler.admit_route("$default") is True          # the WebSocket route's own token is untouched
    assert throttler.admit_route("$default") is False


async def test_a_busy_websocket_default_route_does_not_throttle_the_rest_default_route() -> None:
    raw = {
        "routes": {"$default": {"handler": "testapp:echo", "routeResponse": True,
                                "throttling": {"rateLimit": 0.001, "burstLimit": 1}}},
        "http": {"routes": {"$default": {"handler": "restapp:show"}}},
    }
    async with serve(raw) as server, connect(server.urls.websocket) as ws, aiohttp.ClientSession() as session:
        await ws.send("one")
        assert await ws.recv() == "one"
        await ws.send("two")
        assert "Too Many Requests" in str(await ws.recv())
        base = server.urls.websocket.replace("ws://", "http://")
        for _ in range(3):
            async with session.get(f"{base}/anything") as response:
                assert response.status == 200


async def test_a_rest_route_has_its_own_throttling() -> None:
    raw: dict[str, Any] = {
        "routes": {"$default": {"handler": "testapp:echo"}},
        "http": {"routes": {"GET /hot": {"handler": "restapp:show", "throttling": {"rateLimit": 0.001,
                                                                                 "burstLimit": 2}},
                            "GET /cold": {"handler": "restapp:show"}}},
    }
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        statuses = []
        for _ in range(3):
            async with session.get(f"{base}/hot") as response:
                statuses.append(response.status)
                body = await response.json()
        assert statuses == [200, 200, 429] and body == {"message": "Too Many Requests"}
        async with session.get(f"{base}/cold") as response:
            assert response.status == 200


async def test_cluster_scope_is_one_bucket_for_every_node(redis_url: str) -> None:
    raw: dict[str, Any] = {
        "routes": {"$default": {"handler": "testapp:echo"}},
        "http": {"routes": {"GET /shared": {"handler": "restapp:show", "throttling": {
            "rateLimit": 0.001, "burstLimit": 3, "scope": "cluster"}}}},
    }
    async with serve(raw, redis_url=redis_url) as one, serve(raw, redis_url=redis_url) as two, \
            aiohttp.ClientSession() as session:
        statuses = []
        for server in (one, two, one, two, one):
            base = server.urls.websocket.replace("ws://", "http://")
            async with session.get(f"{base}/shared") as response:
                statuses.append(response.status)
        assert statuses == [200, 200, 200, 429, 429]


async def test_node_scope_stays_per_node(redis_url: str) -> None:
    raw: dict[str, Any] = {
        "throttling": {"rateLimit": 0.001, "burstLimit": 1},
        "routes": {"$connect": {"handler": "testapp:ok"}, "$default": {"handler": "testapp:echo"}},
    }
    async with serve(raw, redis_url=redis_url) as one, serve(raw, redis_url=redis_url) as two, \
            connect(one.urls.websocket), connect(two.urls.websocket):
        pass
