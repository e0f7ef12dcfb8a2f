"""The response cache's pure parts with plain values: keys, principals, the memory store's byte bound and TTL
on a clock the test moves, route policies, invalidation rules, and `caching:` parsing naming its keys."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import api_from
from wsgw.cache import CachedResponse, CacheNamespace, MemoryResponseCache
from wsgw.cache.keys import cache_key, principal_of
from wsgw.config.caching import KeyParameter, RouteCaching, StageCaching
from wsgw.errors import ConfigError
from wsgw.headers import Headers
from wsgw.rest.caching import Invalidation, asks_invalidation, invalidation, route_policy

NS = CacheNamespace("api", "dev", "v1")


def key(**overrides: Any) -> str:
    args: dict[str, Any] = dict(query=[("type", "admin"), ("dept", "A")], headers=[("Accept", "json")],
                                path_parameters={"id": "1"}, parameters=(KeyParameter("querystring", "type"),),
                                principal="lambda:alice")
    args.update(overrides)
    route, method, path = args.pop("route", "GET /users/{id}"), args.pop("method", "GET"), args.pop("path", "/users/1")
    return cache_key(route, method, path, **args)


def test_key_parameters_decide_what_is_the_same_request() -> None:
    # AWS's example: `type` in the key, `department` not: ?type=admin&department=B is served A's answer.
    assert key() == key(query=[("type", "admin"), ("dept", "B")])
    assert key() != key(query=[("type", "regular"), ("dept", "A")])
    assert key() != key(query=[("dept", "A")])                    # missing differs from any value ...
    assert key(query=[]) != key(query=[("type", "")])             # ... even the empty one


def test_the_path_principal_route_and_method_are_always_in_the_key() -> None:
    assert key() != key(path="/users/2")
    assert key() != key(principal="lambda:bob")
    assert key() != key(principal=None)
    assert key() != key(method="HEAD")
    assert key() != key(route="GET /users/{other}")


def test_header_key_parameters_ignore_case_and_join_repeats() -> None:
    by_header = (KeyParameter("header", "accept-language"),)
    one = key(parameters=by_header, headers=[("Accept-Language", "de"), ("accept-language", "fr")])
    assert one == key(parameters=by_header, headers=[("ACCEPT-LANGUAGE", "de"), ("Accept-Language", "fr")])
    assert one != key(parameters=by_header, headers=[("Accept-Language", "de")])


def test_values_cannot_forge_another_key_by_shifting_separators() -> None:
    two = (KeyParameter("querystring", "a"), KeyParameter("querystring", "b"))
    assert key(parameters=two, query=[("a", "x|b"), ("b", "")]) != key(parameters=two, query=[("a", "x"), ("b", "b")])


def test_hostile_input_gives_a_short_key() -> None:
    huge = key(headers=[("accept", "x" * 100_000)], parameters=(KeyParameter("header", "accept"),),
               query=[(f"p{i}", "v") for i in range(5000)])
    assert len(huge) == 64 and int(huge, 16) >= 0


def test_principal_of_each_authorizer_kind() -> None:
    assert principal_of(None, None) is None
    assert principal_of({"lambda": {"user": "ada"}}, "alice") == "lambda:alice"
    assert principal_of({"jwt": {"claims": {"iss": "https://i", "sub": "s1"}, "scopes": []}}, None) == "jwt:https://i:s1"
    assert principal_of({"iam": {"accessKey": "AKIA1", "accountId": "1"}}, None) == "iam:AKIA1"
    # no identity field: the whole context, so two different contexts never share an entry
    assert principal_of({"lambda": {"a": 1}}, None) != principal_of({"lambda": {"a": 2}}, None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(size: int, status: int = 200) -> CachedResponse:
    return CachedResponse(status, (("content-type", "text/plain"),), b"x" * size)


async def test_memory_store_drops_least_recently_used_entries_to_stay_within_its_bytes() -> None:
    cost = entry(1000).size + len("k1")
    cache = MemoryResponseCache(NS, max_bytes=cost * 3, clock=Clock())
    for name in ("k1", "k2", "k3"):
        await cache.put(name, entry(1000), 60)
    assert await cache.get("k1") is not None          # k1 is now the most recently used
    await cache.put("k4", entry(1000), 60)
    assert await cache.get("k2") is None and cache.evictions == 1
    assert all([await cache.get(name) for name in ("k1", "k3", "k4")])
    assert cache.bytes <= cache.max_bytes


async def test_memory_store_refuses_an_entry_larger_than_its_bound_and_replaces_in_place() -> None:
    cache = MemoryResponseCache(NS, max_bytes=4096, clock=Clock())
    await cache.put("big", entry(5000), 60)
    assert await cache.get("big") is None and cache.bytes == 0
    await cache.put("k", entry(100), 60)
    await cache.put("k", entry(200), 60)
    assert len(cache) == 1 and cache.bytes == entry(200).size + 1


async def test_memory_store_ttl_on_the_clock_it_is_given() -> None:
    clock = Clock()
    cache = MemoryResponseCache(NS, max_bytes=1 << 20, clock=clock)
    await cache.put("k", entry(10), 300)
    clock.now += 299.9
    assert await cache.get("k") is not None
    clock.now += 0.2
    assert await cache.get("k") is None and cache.bytes == 0


def test_cached_response_round_trips_and_rejects_garbage() -> None:
    value = CachedResponse(201, (("a", "1"), ("Set-Cookie", "x=1")), b"\x00\xffbinary")
    assert CachedResponse.decode(value.encode()) == value
    for garbage in (b"", b"not json", b'{"s": 200}', b'{"s": 200, "h": [], "b": "%%%"}'):
        assert CachedResponse.decode(garbage) is None


def stage(**overrides: Any) -> StageCaching:
    return StageCaching(**{"cluster_enabled": True, **overrides})


def test_only_get_is_cached_by_default_and_a_route_may_opt_in() -> None:
    assert route_policy(stage(), None, "GET") is not None
    assert route_policy(stage(), None, "POST") is None
    post = route_policy(stage(), RouteCaching(caching_enabled=True), "POST")
    assert post is not None and "POST" in post.methods
    assert route_policy(stage(), RouteCaching(caching_enabled=False), "GET") is None
    any_route = route_policy(stage(), None, "ANY")
    assert any_route is not None and any_route.methods == frozenset({"GET"})


def test_no_cluster_or_a_zero_ttl_caches_nothing() -> None:
    assert route_policy(None, RouteCaching(caching_enabled=True), "GET") is None
    assert route_policy(StageCaching(), None, "GET") is None
    assert route_policy(stage(ttl_seconds=0), None, "GET") is None
    assert route_policy(stage(), RouteCaching(ttl_seconds=0), "GET") is None
    policy = route_policy(stage(ttl_seconds=60), RouteCaching(ttl_seconds=5), "GET")
    assert policy is not None and policy.ttl_seconds == 5


def test_cache_control_max_age_0_is_found_in_any_directive_position() -> None:
    assert asks_invalidation(Headers([("Cache-Control", "no-store, max-age=0")]))
    assert asks_invalidation(Headers([("cache-control", "public"), ("Cache-Control", 'max-age="0"')]))
    assert not asks_invalidation(Headers([("Cache-Control", "max-age=10")]))
    assert not asks_invalidation(Headers([("X-Cache-Control", "max-age=0")]))


@pytest.mark.parametrize(("require", "strategy", "allowed", "expected"), [
    (True, "FAIL_WITH_403", True, Invalidation.REFRESH),
    (True, "FAIL_WITH_403", False, Invalidation.REFUSE),
    (True, "SUCCEED_WITH_RESPONSE_HEADER", False, Invalidation.WARN),
    (True, "SUCCEED_WITHOUT_RESPONSE_HEADER", False, Invalidation.IGNORE),
    (False, "FAIL_WITH_403", False, Invalidation.REFRESH),      # AWS: without the requirement anyone may
])
def test_invalidation_follows_aws_rules(require: bool, strategy: str, allowed: bool, expected: Invalidation) -> None:
    policy = route_policy(stage(require_authorization=require, unauthorized_strategy=strategy), None, "GET")
    assert policy is not None
    assert invalidation(policy, True, allowed) is expected
    assert invalidation(policy, False, allowed) is Invalidation.NONE


@pytest.mark.parametrize(("caching", "route", "where", "says"), [
    ({"cacheClusterEnabled": "yes"}, None, "caching.cacheClusterEnabled", "true or false"),
    ({"cacheTtlInSeconds": 3601}, None, "caching.cacheTtlInSeconds", "0 to 3600"),
    ({"unauthorizedCacheControlHeaderStrategy": "IGNORE"}, None, "caching.unauthorizedCacheControlHeaderStrategy",
     "FAIL_WITH_403"),
    ({"store": "disk"}, None, "caching.store", "memory or redis"),
    ({"maxBytes": 10}, None, "caching.maxBytes", ">= 4096"),
    ({"cacheClusterSize": "0.5"}, None, "caching.cacheClusterSize", "unknown key"),
    (None, {"cacheKeyParameters": ["method.request.body.x"]}, "http.routes.GET /x.caching.cacheKeyParameters",
     "method.request.path|querystring|header"),
    (None, {"ttl": 5}, "http.routes.GET /x.caching.ttl", "unknown key"),
    (None, {"principalInKey": "no"}, "http.routes.GET /x.caching.principalInKey", "true or false"),
])
def test_caching_settings_are_checked_by_key(caching: Any, route: Any, where: str, says: str) -> None:
    raw: dict[str, Any] = {"routes": {"$default": {"handler": "testapp:ok"}},
                           "http": {"routes": {"GET /x": {"handler": "restapp:show"}}}}
    if caching is not None:
        raw["caching"] = caching
    if route is not None:
        raw["http"]["routes"]["GET /x"]["caching"] = route
    with pytest.raises(ConfigError) as info:
        api_from(raw)
    found = {p.key: p.message for p in info.value.problems}
    assert where in found and says in found[where], found


def test_caching_settings_parse_into_frozen_values() -> None:
    api = api_from({"routes": {"$default": {"handler": "testapp:ok"}},
                    "caching": {"cacheClusterEnabled": True, "cacheTtlInSeconds": 60, "methods": ["get", "HEAD"]},
                    "http": {"routes": {"GET /x": {"handler": "restapp:show", "caching": {
                        "cacheKeyParameters": ["method.request.querystring.type", "$request.header.Accept-Language",
                                               "request.path.id"]}}}}})
    assert api.caching == StageCaching(cluster_enabled=True, ttl_seconds=60, methods=("GET", "HEAD"))
    assert api.http is not None and api.http.routes[0].caching is not None
    assert api.http.routes[0].caching.key_parameters == (
        KeyParameter("querystring", "type"), KeyParameter("header", "accept-language"), KeyParameter("path", "id"))
