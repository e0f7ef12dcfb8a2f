"""Stage response caching on the REST front over real HTTP: hits and misses, TTL, principals kept apart,
invalidation with and without the right, flushes through the management side, Redis going away, hostile cache
keys, two nodes sharing one Redis cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import cacheapp
import pytest

from tests.helpers import eventually, serve, wait_for
from tests.redis_fixture import RedisServer
from tests.stage_apps import write_site, write_version
from tests.test_rest_front import fetch
from tests.test_stages import serve_site
from wsgw.server.app import GatewayServer

AUTH = {"cache": {"type": "request", "handler": "cacheapp:authorize", "resultTtlInSeconds": 0,
                  "identitySource": ["$request.header.Authorization"]}}


def api(caching: dict[str, Any] | None = None, routes: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "stage": extra.pop("stage", "dev"),
        "routes": {"$default": {"handler": "testapp:ok"}},
        "authorizers": AUTH,
        "caching": {"cacheClusterEnabled": True, "cacheTtlInSeconds": 300, **(caching or {})},
        "http": {"routes": routes or {
            "GET /items/{id}": {"handler": "cacheapp:counted",
                                "caching": {"cacheKeyParameters": ["method.request.querystring.type"]}},
            "POST /items/{id}": {"handler": "cacheapp:counted"},
            "GET /status": {"handler": "cacheapp:status"},
            "GET /big": {"handler": "cacheapp:big", "caching": {"cacheKeyParameters": ["$request.querystring.size"]}},
            "GET /mine": {"handler": "cacheapp:counted", "authorizer": "cache"},
            "GET /shared": {"handler": "cacheapp:counted", "authorizer": "cache",
                            "caching": {"principalInKey": False}},
            "GET /short": {"handler": "cacheapp:counted", "caching": {"cacheTtlInSeconds": 1}},
            "GET /headers": {"handler": "cacheapp:counted",
                             "caching": {"cacheKeyParameters": ["method.request.header.X-Variant"]}},
            "GET /uncached": {"handler": "cacheapp:counted", "caching": {"cachingEnabled": False}},
            "GET /gated": {"handler": "cacheapp:gated", "timeoutMs": 20000},
            "GET /cookie": {"handler": "cacheapp:cookie"},
        }},
        **extra,
    }


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cacheapp.reset()
    yield


@asynccontextmanager
async def gateway(raw: dict[str, Any], **kwargs: Any) -> AsyncIterator[tuple[GatewayServer, aiohttp.ClientSession]]:
    async with serve(raw, **kwargs) as server, aiohttp.ClientSession() as session:
        yield server, session


async def call(session: aiohttp.ClientSession, server: GatewayServer, method: str, path: str,
               **kwargs: Any) -> tuple[int, Any, Any]:
    return await fetch(session, method, f"http://127.0.0.1:{server.port}/dev{path}", **kwargs)


def metric(server: GatewayServer, name: str, **labels: str) -> float:
    return server.gateway.metrics.value(name, **labels)


async def test_a_second_get_is_answered_from_the_cache_without_calling_the_integration() -> None:
    async with gateway(api()) as (server, session):
        status, first, headers = await call(session, server, "GET", "/items/1?type=admin&dept=A")
        assert status == 200 and headers["X-Wsgw-Cache"] == "miss" and headers["x-backend"] == "counted"
        status, again, headers = await call(session, server, "GET", "/items/1?type=admin&dept=B")
        assert status == 200 and headers["X-Wsgw-Cache"] == "hit" and again["seq"] == first["seq"]
        assert headers["x-backend"] == "counted" and "apigw-requestid" in headers
        assert cacheapp.calls() == 1
        # the key parameter and the path separate entries
        _, other, headers = await call(session, server, "GET", "/items/1?type=regular")
        assert headers["X-Wsgw-Cache"] == "miss" and other["seq"] != first["seq"]
        _, _, headers = await call(session, server, "GET", "/items/2?type=admin")
        assert headers["X-Wsgw-Cache"] == "miss" and cacheapp.calls() == 3
        assert metric(server, "wsgw_http_CacheHitCount_total", route="GET /items/{id}") == 1
        assert metric(server, "wsgw_http_CacheMissCount_total", route="GET /items/{id}") == 3


async def test_only_get_and_only_2xx_are_cached() -> None:
    async with gateway(api()) as (server, session):
        for _ in range(2):
            _, _, headers = await call(session, server, "POST", "/items/1", json={})
            assert "X-Wsgw-Cache" not in headers
        for _ in range(2):
            status, _, headers = await call(session, server, "GET", "/status?code=404")
            assert status == 404 and headers["X-Wsgw-Cache"] == "miss"
        for _ in range(2):
            await call(session, server, "GET", "/uncached")
        for _ in range(2):                      # an answer that sets a cookie is never replayed
            _, _, headers = await call(session, server, "GET", "/cookie")
            assert headers["X-Wsgw-Cache"] == "miss" and "session=" in headers["Set-Cookie"]
        assert cacheapp.calls() == 8
        await call(session, server, "GET", "/status?code=201")
        status, _, headers = await call(session, server, "GET", "/status?code=201")
        assert status == 201 and headers["X-Wsgw-Cache"] == "hit" and headers["x-backend-id"] == "b-7"


async def test_an_entry_expires_after_the_routes_ttl() -> None:
    async with gateway(api()) as (server, session):
        _, first, _ = await call(session, server, "GET", "/short")
        _, again, headers = await call(session, server, "GET", "/short")
        assert headers["X-Wsgw-Cache"] == "hit" and again["seq"] == first["seq"]

        async def probe() -> Any:
            return await call(session, server, "GET", "/short")

        _, later, headers = await eventually(probe, lambda r: r[2]["X-Wsgw-Cache"] == "miss", timeout=10,
                                             interval=0.1)
        assert later["seq"] != first["seq"]


async def test_one_callers_answer_never_reaches_another() -> None:
    async with gateway(api()) as (server, session):
        _, alice, _ = await call(session, server, "GET", "/mine", headers={"Authorization": "user-alice"})
        _, bob, headers = await call(session, server, "GET", "/mine", headers={"Authorization": "user-bob"})
        assert headers["X-Wsgw-Cache"] == "miss" and (alice["user"], bob["user"]) == ("user-alice", "user-bob")
        _, again, headers = await call(session, server, "GET", "/mine", headers={"Authorization": "user-alice"})
        assert headers["X-Wsgw-Cache"] == "hit" and again["user"] == "user-alice"
        # the authorizer still runs before the cache: a refused caller gets no cached answer
        status, body, _ = await call(session, server, "GET", "/mine", headers={"Authorization": "nobody"})
        assert status == 403 and body == {"message": "Forbidden"}
        status, _, _ = await call(session, server, "GET", "/mine")
        assert status == 401
        assert cacheapp.calls() == 2


async def test_a_route_may_share_answers_between_allowed_callers_but_never_with_refused_ones() -> None:
    async with gateway(api()) as (server, session):
        _, first, _ = await call(session, server, "GET", "/shared", headers={"Authorization": "user-alice"})
        _, other, headers = await call(session, server, "GET", "/shared", headers={"Authorization": "user-bob"})
        assert headers["X-Wsgw-Cache"] == "hit" and other["seq"] == first["seq"]
        status, _, _ = await call(session, server, "GET", "/shared", headers={"Authorization": "nobody"})
        assert status == 403 and cacheapp.calls() == 1


async def test_a_caller_allowed_invalidate_cache_refreshes_the_entry() -> None:
    async with gateway(api(caching={"unauthorizedCacheControlHeaderStrategy": "FAIL_WITH_403"})) as (server, session):
        admin = {"Authorization": "admin-ann"}
        _, first, _ = await call(session, server, "GET", "/shared", headers=admin)
        _, fresh, headers = await call(session, server, "GET", "/shared",
                                       headers={**admin, "Cache-Control": "max-age=0"})
        assert headers["X-Wsgw-Cache"] == "refresh" and fresh["seq"] != first["seq"]
        _, again, headers = await call(session, server, "GET", "/shared", headers={"Authorization": "user-bob"})
        assert headers["X-Wsgw-Cache"] == "hit" and again["seq"] == fresh["seq"]
        assert metric(server, "wsgw_http_cache_invalidations_total", result="refreshed") == 1


@pytest.mark.parametrize(("strategy", "status", "warned"), [
    ("FAIL_WITH_403", 403, False),
    ("SUCCEED_WITH_RESPONSE_HEADER", 200, True),
    ("SUCCEED_WITHOUT_RESPONSE_HEADER", 200, False),
])
async def test_a_caller_without_the_right_gets_the_unauthorized_strategy(strategy: str, status: int,
                                                                         warned: bool) -> None:
    raw = api(caching={"unauthorizedCacheControlHeaderStrategy": strategy})
    async with gateway(raw) as (server, session):
        user = {"Authorization": "user-bob"}
        _, first, _ = await call(session, server, "GET", "/mine", headers=user)
        got, body, headers = await call(session, server, "GET", "/mine", headers={**user, "Cache-Control": "max-age=0"})
        assert got == status
        if status == 200:
            assert headers["X-Wsgw-Cache"] == "hit" and body["seq"] == first["seq"]
        assert ("Warning" in headers) == warned
        # a route without an authorizer: nobody is authorized to invalidate
        await call(session, server, "GET", "/items/5")
        got, _, headers = await call(session, server, "GET", "/items/5", headers={"Cache-Control": "max-age=0"})
        assert got == status and cacheapp.calls() == 2


async def test_anyone_may_invalidate_when_the_stage_does_not_require_authorization() -> None:
    async with gateway(api(caching={"requireAuthorizationForCacheControl": False})) as (server, session):
        _, first, _ = await call(session, server, "GET", "/items/5")
        _, fresh, headers = await call(session, server, "GET", "/items/5", headers={"Cache-Control": "max-age=0"})
        assert headers["X-Wsgw-Cache"] == "refresh" and fresh["seq"] != first["seq"]


async def test_the_stage_cache_is_flushed_through_the_management_side() -> None:
    async with gateway(api()) as (server, session):
        for path in ("/items/1", "/items/2", "/short"):
            await call(session, server, "GET", path)
        status, body, _ = await call(session, server, "DELETE", "/@cache")
        assert status == 202 and body == {"flushed": 3}
        _, _, headers = await call(session, server, "GET", "/items/1")
        assert headers["X-Wsgw-Cache"] == "miss"
        status, body, _ = await call(session, server, "GET", "/@cache")
        assert status == 405
        assert metric(server, "wsgw_http_cache_flushes_total") == 1


async def test_a_flush_from_outside_the_management_networks_is_refused() -> None:
    raw = api(management={"allowFrom": ["10.0.0.0/8"]})
    async with gateway(raw) as (server, session):
        await call(session, server, "GET", "/items/1")
        status, body, _ = await call(session, server, "DELETE", "/@cache")
        assert status == 403 and "management.allowFrom" in body["message"]
        _, _, headers = await call(session, server, "GET", "/items/1")
        assert headers["X-Wsgw-Cache"] == "hit"


async def test_a_stage_without_a_cache_answers_a_flush_with_not_found() -> None:
    raw = api()
    raw["caching"] = {"cacheClusterEnabled": False}
    async with gateway(raw) as (server, session):
        status, body, _ = await call(session, server, "DELETE", "/@cache")
        assert status == 404 and "cacheClusterEnabled" in body["message"]
        _, _, headers = await call(session, server, "GET", "/items/1")
        assert "X-Wsgw-Cache" not in headers


async def test_hostile_cache_key_input_is_handled() -> None:
    async with gateway(api()) as (server, session):
        many = "&".join(f"p{i}=v" for i in range(900)) + "&type=t"
        await call(session, server, "GET", f"/items/1?{many}")
        _, _, headers = await call(session, server, "GET", f"/items/1?{many}")
        assert headers["X-Wsgw-Cache"] == "hit"
        variant = {"X-Variant": "v" * 9000}
        await call(session, server, "GET", "/headers", headers=variant)
        _, _, headers = await call(session, server, "GET", "/headers", headers=variant)
        assert headers["X-Wsgw-Cache"] == "hit"
        _, _, headers = await call(session, server, "GET", "/headers", headers={"X-Variant": "v" * 8999 + "w"})
        assert headers["X-Wsgw-Cache"] == "miss"
        status, _, headers = await call(session, server, "GET", "/headers", headers={"X-Variant": "v" * 11000})
        assert status == 431 and "X-Wsgw-Cache" not in headers
        # an answer over AWS's 1 MiB limit is served but never kept
        for _ in range(2):
            status, body, headers = await call(session, server, "GET", "/big?size=1048577")
            assert status == 200 and len(body) == 1048577 and headers["X-Wsgw-Cache"] == "miss"


async def test_the_memory_cache_stays_within_its_bytes() -> None:
    async with gateway(api(caching={"maxBytes": 8192})) as (server, session):
        for size in (3000, 3001, 3002, 3003):
            await call(session, server, "GET", f"/big?size={size}")
        _, _, headers = await call(session, server, "GET", "/big?size=3003")
        assert headers["X-Wsgw-Cache"] == "hit"
        _, _, headers = await call(session, server, "GET", "/big?size=3000")
        assert headers["X-Wsgw-Cache"] == "miss"
        assert metric(server, "wsgw_http_cache_evictions_total") >= 2
        cache = server.node.rest.cache
        assert cache is not None and cache.store.bytes <= 8192  # type: ignore[attr-defined]


async def test_two_nodes_share_one_redis_cache_and_stages_stay_apart(redis_url: str) -> None:
    async with serve(api(), redis_url=redis_url) as one, serve(api(), redis_url=redis_url) as two, \
            serve(api(stage="prod"), redis_url=redis_url) as prod, aiohttp.ClientSession() as session:
        _, first, headers = await call(session, one, "GET", "/items/7?type=a")
        assert headers["X-Wsgw-Cache"] == "miss"
        _, again, headers = await call(session, two, "GET", "/items/7?type=a")
        assert headers["X-Wsgw-Cache"] == "hit" and again["seq"] == first["seq"] and cacheapp.calls() == 1
        async with session.get(f"http://127.0.0.1:{prod.port}/prod/items/7?type=a") as response:
            assert response.headers["X-Wsgw-Cache"] == "miss"
        status, body, _ = await call(session, two, "DELETE", "/@cache")
        assert status == 202 and body == {"flushed": 1}
        _, _, headers = await call(session, one, "GET", "/items/7?type=a")
        assert headers["X-Wsgw-Cache"] == "miss"
        async with session.get(f"http://127.0.0.1:{prod.port}/prod/items/7?type=a") as response:
            assert response.headers["X-Wsgw-Cache"] == "hit"


@pytest.mark.parametrize("nodes", [1, 2])
async def test_concurrent_callers_of_one_key_call_the_backend_once(nodes: int, redis_url: str) -> None:
    """Single flight: the first caller fills the key, the others (on this node, and through the Redis lock on
    another node) wait for its answer instead of calling the integration too."""
    gate = asyncio.Event()
    cacheapp.GATE.append(gate)
    kwargs = {"redis_url": redis_url} if nodes == 2 else {}
    async with serve(api(), **kwargs) as one, serve(api(), **kwargs) as two, aiohttp.ClientSession() as session:
        servers = [one, two][:nodes]
        requests = [asyncio.ensure_future(call(session, servers[i % nodes], "GET", "/gated")) for i in range(12)]
        caches = [s.node.rest.cache for s in servers]
        await wait_for(lambda: cacheapp.calls() == 1 and sum(c.waiting for c in caches if c) == 11, timeout=10)
        gate.set()
        answers = await asyncio.gather(*requests)
        assert cacheapp.calls() == 1
        assert {body["seq"] for _, body, _ in answers} == {answers[0][1]["seq"]}
        assert sorted(h["X-Wsgw-Cache"] for _, _, h in answers) == ["hit"] * 11 + ["miss"]


async def test_when_the_filler_fails_the_waiters_call_for_themselves() -> None:
    async with gateway(api()) as (server, session):
        requests = [asyncio.ensure_future(call(session, server, "GET", "/status?code=500")) for _ in range(4)]
        answers = await asyncio.gather(*requests)
        assert [status for status, _, _ in answers] == [500] * 4
        assert cacheapp.calls() == 4


async def test_redis_going_away_bypasses_the_cache_and_never_fails_a_request(redis_server: RedisServer) -> None:
    raw = api(caching={"store": "redis"})
    async with gateway(raw, redis_url=redis_server.url) as (server, session):
        await call(session, server, "GET", "/items/1")
        _, _, headers = await call(session, server, "GET", "/items/1")
        assert headers["X-Wsgw-Cache"] == "hit"
        redis_server.stop()
        try:
            for _ in range(3):
                status, _, headers = await call(session, server, "GET", "/items/1")
                assert status == 200 and headers["X-Wsgw-Cache"] == "bypass"
            assert cacheapp.calls() == 4
            assert metric(server, "wsgw_http_cache_bypassed_total", route="GET /items/{id}") >= 3
            status, _, _ = await call(session, server, "DELETE", "/@cache")
            assert status == 503
        finally:
            redis_server.start()

        async def probe() -> Any:
            return await call(session, server, "GET", "/items/1")

        await eventually(probe, lambda r: r[2]["X-Wsgw-Cache"] == "hit", timeout=15, interval=0.2)


async def test_stages_versions_and_canaries_have_caches_apart_and_a_flush_reaches_the_canary(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    cache_on = {"caching": {"cacheClusterEnabled": True}}
    path = write_site(tmp_path / "wsgw.yaml", {
        "versions": {"v1": write_version(tmp_path, "v1", log, **cache_on),
                     "v2": write_version(tmp_path, "v2", log, **cache_on)},
        "stages": {"prod": {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50},
                            "caching": {"cacheTtlInSeconds": 600}},
                   "beta": {"version": "v1"}}})
    draw = [0.99]                                   # >= 0.5: the main version; 0.0: the canary
    async with serve_site(path, rnd=lambda: draw[0]) as server, aiohttp.ClientSession() as session:
        async def get(stage: str, canary: bool = False) -> tuple[str, str]:
            draw[0] = 0.0 if canary else 0.99
            async with session.get(f"http://127.0.0.1:{server.port}/{stage}/info") as response:
                body = json.loads(await response.read())
                return body["version"], response.headers["X-Wsgw-Cache"]

        assert await get("prod") == ("v1", "miss")
        assert await get("prod") == ("v1", "hit")
        assert await get("prod", canary=True) == ("v2", "miss")
        assert await get("prod", canary=True) == ("v2", "hit")
        assert await get("beta") == ("v1", "miss")
        async with session.delete(f"http://127.0.0.1:{server.port}/prod/@cache") as response:
            assert response.status == 202
        assert await get("prod") == ("v1", "miss")
        assert await get("prod", canary=True) == ("v2", "miss")
        assert await get("beta") == ("v1", "hit")
