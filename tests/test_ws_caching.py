"""WebSocket route caching over real WebSockets: a hit answers the route response without calling the handler,
entries expire with their TTL, connections authorized as different users never share an answer, `$request.body`
paths make the key, hostile bodies are answered, and two nodes share one Redis cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import cacheapp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import eventually, serve, wait_for
from wsgw.server.app import GatewayServer

AUTH = {"cache": {"type": "request", "handler": "cacheapp:authorize", "resultTtlInSeconds": 0,
                  "identitySource": ["route.request.header.Authorization"]}}
ROUTE = {"handler": "cacheapp:ws_counted", "routeResponse": True}


def api(stage: str = "dev", **caching: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "routeSelectionExpression": "$request.body.action",
        "authorizers": AUTH,
        "caching": {"cacheClusterEnabled": True, "cacheTtlInSeconds": 300, **caching},
        "routes": {
            "$connect": {"handler": "cacheapp:ws_connect", "authorizer": "cache"},
            "$default": {**ROUTE, "caching": {}},                               # the whole body is the key
            "lookup": {**ROUTE, "caching": {"cacheKeyParameters": ["$request.body.id", "$request.body.page[0]"]}},
            "short": {**ROUTE, "caching": {"cacheTtlInSeconds": 1, "cacheKeyParameters": ["$request.body.id"]}},
            "shared": {**ROUTE, "caching": {"principalInKey": False, "cacheKeyParameters": ["$request.body.id"]}},
            "plain": ROUTE,
            "gated": {"handler": "cacheapp:ws_gated", "routeResponse": True,
                      "caching": {"principalInKey": False, "cacheKeyParameters": ["$request.body.id"]}},
        },
    }


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cacheapp.reset()
    yield


@asynccontextmanager
async def clients(server: GatewayServer, *users: str) -> AsyncIterator[list[ClientConnection]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(connect(server.urls.websocket,
                                                       additional_headers={"Authorization": user}))
               for user in users]


async def ask(ws: ClientConnection, message: dict[str, Any] | str) -> Any:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def metric(server: GatewayServer, name: str, route: str) -> float:
    return server.gateway.metrics.value(name, route=route)


async def test_a_hit_sends_the_kept_route_response_without_calling_the_handler() -> None:
    async with serve(api()) as server, clients(server, "user-1") as (ws,):
        first = await ask(ws, {"action": "lookup", "id": 7, "nonce": "a"})
        again = await ask(ws, {"nonce": "b", "id": 7, "action": "lookup"})      # other members are not the key
        assert again == first and cacheapp.calls() == 1
        other = await ask(ws, {"action": "lookup", "id": 8})
        assert other["seq"] != first["seq"] and cacheapp.calls() == 2
        paged = await ask(ws, {"action": "lookup", "id": 7, "page": [2, 5]})      # a list index path
        assert paged["seq"] not in (first["seq"], other["seq"])
        assert (await ask(ws, {"action": "lookup", "id": 7, "page": [2, 6]}))["seq"] == paged["seq"]
        assert metric(server, "wsgw_websocket_CacheHitCount_total", "lookup") == 2
        assert metric(server, "wsgw_websocket_CacheMissCount_total", "lookup") == 3
        plain = [await ask(ws, {"action": "plain"}) for _ in range(2)]             # a route without caching
        assert plain[0]["seq"] != plain[1]["seq"]


async def test_an_entry_expires_with_its_ttl() -> None:
    async with serve(api()) as server, clients(server, "user-1") as (ws,):
        first = await ask(ws, {"action": "short", "id": 1})
        assert (await ask(ws, {"action": "short", "id": 1}))["seq"] == first["seq"]

        async def probe() -> Any:
            return await ask(ws, {"action": "short", "id": 1})

        await eventually(probe, lambda answer: answer["seq"] != first["seq"], timeout=15, interval=0.2)


async def test_connections_authorized_as_different_users_never_share_an_answer() -> None:
    async with serve(api()) as server, clients(server, "user-1", "user-2", "user-1") as (alice, bob, alice2):
        mine = await ask(alice, {"action": "lookup", "id": 1})
        theirs = await ask(bob, {"action": "lookup", "id": 1})
        assert (mine["user"], theirs["user"]) == ("user-1", "user-2") and theirs["seq"] != mine["seq"]
        assert await ask(alice2, {"action": "lookup", "id": 1}) == mine       # same principal, other connection
        shared = await ask(alice, {"action": "shared", "id": 1})
        assert await ask(bob, {"action": "shared", "id": 1}) == shared        # principalInKey: false


async def test_concurrent_messages_of_one_key_call_the_handler_once() -> None:
    gate = asyncio.Event()
    cacheapp.GATE.append(gate)
    async with serve(api()) as server, clients(server, "user-1", "user-2", "user-3", "user-4") as conns:
        for ws in conns:
            await ws.send(json.dumps({"action": "gated", "id": 1}))
        cache = server.gateway.dispatcher.cache
        assert cache is not None
        await wait_for(lambda: cacheapp.calls() == 1 and cache.cache.waiting == 3, timeout=10)
        gate.set()
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for ws in conns]
        assert cacheapp.calls() == 1 and len({a["seq"] for a in answers}) == 1


async def test_error_results_are_not_kept() -> None:
    async with serve(api()) as server, clients(server, "user-1") as (ws,):
        answers = [await ask(ws, {"action": "lookup", "id": 3, "code": 500}) for _ in range(2)]
        assert answers[0]["seq"] != answers[1]["seq"] and cacheapp.calls() == 2


@pytest.mark.parametrize("hostile", [
    "not json at all", "[" * 3000 + "]" * 3000, '{"action": "lookup", "id": 123456789012345678901234567890}',
    '{"action": "lookup", "id": {"deep": ' * 200 + "1" + "}" * 201, '{"action": "lookup", "id": "\\ud800"}',
    '{"action":"lookup","page":"not a list"}', '{"action":"lookup","id":' + '"x' * 10000 + '"}',
])
async def test_hostile_bodies_are_answered_and_never_share_an_answer(hostile: str) -> None:
    async with serve(api()) as server, clients(server, "user-1") as (ws,):
        await ws.send(hostile)
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send(hostile + " ")
        second = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert "seq" in first and "seq" in second
        assert first["seq"] != second["seq"] or first.get("route") == second.get("route") == "lookup"


async def test_two_nodes_share_one_redis_cache_and_a_stage_flush_empties_it(redis_url: str) -> None:
    async with serve(api(), redis_url=redis_url) as one, serve(api(), redis_url=redis_url) as two, \
            serve(api(stage="prod"), redis_url=redis_url) as prod, \
            clients(one, "user-1") as (a,), clients(two, "user-1") as (b,), clients(prod, "user-1") as (c,):
        first = await ask(a, {"action": "lookup", "id": 5})
        assert await ask(b, {"action": "lookup", "id": 5}) == first and cacheapp.calls() == 1
        assert (await ask(c, {"action": "lookup", "id": 5}))["seq"] != first["seq"]        # stages apart
        assert await one.node.rest.flush_cache() == 1
        assert (await ask(b, {"action": "lookup", "id": 5}))["seq"] != first["seq"]
