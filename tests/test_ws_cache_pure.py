"""WebSocket route caching's pure parts with plain values: `caching:` on a WebSocket route parsed once and its
errors naming the key, `$request.body` paths (hostile ones refused), message keys, connection principals."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import api_from
from wsgw.cache.keys import connection_principal, ws_cache_key
from wsgw.config import parse_api
from wsgw.config.caching import BodyPath, StageCaching, WsRouteCaching, parse_body_path, ws_route_policy
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.server.node import build_node, uncached_routes


def path(text: str) -> BodyPath:
    parsed = parse_body_path(text)
    assert isinstance(parsed, BodyPath), parsed
    return parsed


def problems(route: dict[str, Any], route_key: str = "lookup") -> dict[str, str]:
    raw = {"caching": {"cacheClusterEnabled": True},
           "routes": {"$default": {"handler": "testapp:ok"}, route_key: {"handler": "testapp:ok", **route}}}
    with pytest.raises(ConfigError) as info:
        api_from(raw)
    return {p.key: p.message for p in info.value.problems}


def test_body_paths_are_names_and_indexes() -> None:
    assert path("$request.body.action").steps == ("action",)
    assert path("$request.body.items[0].id").steps == ("items", 0, "id")
    assert path("$request.body.grid[1][2]").steps == ("grid", 1, 2)
    assert path("$request.body.a-b_c.d").steps == ("a-b_c", "d")


@pytest.mark.parametrize("hostile", [
    "$request.body", "$request.body.", "$request.body..a", "$request.body.a[*]", "$request.body.a[-1]",
    "$request.body.*", "$request.body.a[?(@.x)]", "$request.body['a']", "$request.body.a b", "request.body.a",
    "$request.body." + "a" * 300, "$request.body." + ".".join(["a"] * 40), "$request.body.a[1:3]",
    "$request.body.a\nb", "$request.body.a[99999999]",
])
def test_hostile_or_unsupported_body_paths_are_refused_with_a_reason(hostile: str) -> None:
    assert isinstance(parse_body_path(hostile), str)


def test_a_websocket_route_reads_caching_once() -> None:
    api = api_from({"caching": {"cacheClusterEnabled": True, "cacheTtlInSeconds": 120},
                    "routes": {"$default": {"handler": "testapp:ok"},
                               "lookup": {"handler": "testapp:ok", "routeResponse": True,
                                          "caching": {"cacheKeyParameters": ["$request.body.id"],
                                                      "principalInKey": False}}}})
    caching = api.routes["lookup"].caching
    assert caching == WsRouteCaching(True, None, (path("$request.body.id"),), False)
    policy = ws_route_policy(api.caching, caching)
    assert policy is not None and policy.ttl_seconds == 120 and not policy.principal_in_key
    assert api.routes["$default"].caching is None


def test_a_websocket_route_is_cached_only_when_it_asks_and_the_stage_has_a_cache() -> None:
    on = StageCaching(cluster_enabled=True)
    assert ws_route_policy(on, None) is None                         # the stage's defaults are REST's
    assert ws_route_policy(StageCaching(), WsRouteCaching()) is None     # no cache cluster
    assert ws_route_policy(on, WsRouteCaching(ttl_seconds=0)) is None
    policy = ws_route_policy(on, WsRouteCaching(ttl_seconds=5))
    assert policy is not None and policy.ttl_seconds == 5


def test_caching_errors_name_the_key() -> None:
    assert "routeResponse: true" in problems({"caching": {}})["routes.lookup.caching"]
    found = problems({"routeResponse": True, "caching": {
        "cacheTtlInSeconds": 3601, "cacheKeyParameters": ["$request.body.a[*]", "route.request.header.Auth", 7],
        "cachingEnable": True, "principalInKey": "no"}})
    assert "3600" in found["routes.lookup.caching.cacheTtlInSeconds"]
    assert "did you mean" in found["routes.lookup.caching.cachingEnable"]
    assert "true or false" in found["routes.lookup.caching.principalInKey"]
    assert "routes.lookup.caching.cacheKeyParameters" in found
    connect = problems({"caching": {}}, route_key="$connect")
    assert "no route response" in connect["routes.$connect.caching"]
    assert "must be a mapping" in problems({"routeResponse": True, "caching": True})["routes.lookup.caching"]


def test_connect_request_headers_are_refused_with_why() -> None:
    found = problems({"routeResponse": True, "caching": {"cacheKeyParameters": ["route.request.header.Auth"]}})
    assert "not kept with the connection" in found["routes.lookup.caching.cacheKeyParameters"]


def key(body: str, paths: tuple[str, ...] = ("$request.body.id",), principal: str | None = "lambda:alice",
        route: str = "lookup", binary: bool = False) -> str:
    try:                     # as the message path parses it (binary frames are decoded first)
        document = orjson.loads(base64.b64decode(body) if binary else body)
    except (orjson.JSONDecodeError, ValueError):
        document = None
    return ws_cache_key(route, body, binary, document, tuple(path(p) for p in paths), principal)


def test_body_paths_decide_what_is_the_same_message() -> None:
    assert key('{"action":"lookup","id":1,"nonce":"a"}') == key('{"id": 1, "action": "lookup", "nonce": "b"}')
    assert key('{"id":1}') != key('{"id":2}')
    assert key('{"id":1}') != key('{"id":"1"}')                   # JSON types differ
    assert key('{}') != key('{"id":null}')                        # absent differs from null
    assert key('{"id":{"a":1,"b":2}}') == key('{"id":{"b":2,"a":1}}')     # member order is not meaning
    assert key('{"items":[{"id":3}]}', ("$request.body.items[0].id",)) != key(
        '{"items":[{"id":4}]}', ("$request.body.items[0].id",))


def test_without_body_paths_the_whole_body_is_the_key() -> None:
    assert key('{"id":1,"n":1}', ()) != key('{"id":1,"n":2}', ())
    assert key("hello", ()) == key("hello", ())


def test_a_body_that_is_not_a_json_object_is_keyed_by_all_of_it() -> None:
    assert key("not json") != key("other text")                   # never one shared "absent" answer
    assert key("[1,2]") != key("[1,3]")
    deep = "[" * 5000 + "]" * 5000                                  # beyond the parser's depth: not an object
    assert key(deep) != key("[]")
    assert key("aGk=", binary=True) != key("aGk=")                 # a binary frame is not the text


def test_route_and_principal_are_in_the_key() -> None:
    assert key('{"id":1}') != key('{"id":1}', principal="lambda:bob")
    assert key('{"id":1}') != key('{"id":1}', principal=None)
    assert key('{"id":1}') != key('{"id":1}', route="other")


def test_a_connection_principal_is_its_authorizer_principal_not_its_latency() -> None:
    alice = connection_principal({"principalId": "alice", "integrationLatency": 3, "role": "x"}, None)
    assert alice == connection_principal({"principalId": "alice", "integrationLatency": 9, "role": "x"}, None)
    assert alice != connection_principal({"principalId": "bob", "integrationLatency": 3}, None)
    assert connection_principal({"team": "a", "integrationLatency": 1}, None) != connection_principal(
        {"team": "b", "integrationLatency": 1}, None)
    assert connection_principal(None, "AKIDEXAMPLE") == "iam:AKIDEXAMPLE"
    assert connection_principal(None, None) is None


def test_routes_asking_for_caching_on_a_stage_without_a_cache_are_named_at_build(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "cachehandlers.py").write_text("def echo(event, context):\n    return {'statusCode': 200}\n")
    raw = {"routes": {"$default": {"handler": "cachehandlers:echo", "routeResponse": True,
                                   "caching": {"cacheTtlInSeconds": 60}}},
           "http": {"routes": {"GET /x": {"handler": "cachehandlers:echo", "caching": {"cachingEnabled": True}},
                               "GET /y": {"handler": "cachehandlers:echo"}}}}
    api = parse_api(raw, tmp_path)
    assert uncached_routes(api) == ["routes.$default.caching", "http.routes.GET /x.caching"]
    with caplog.at_level("WARNING", logger="wsgw.server"):
        node = build_node(api, NodeConfig(host="127.0.0.1", port=0))
    node.resources.stop_threads()
    assert "routes.$default.caching, http.routes.GET /x.caching ask for caching" in caplog.text
    with_cache = parse_api({**raw, "caching": {"cacheClusterEnabled": True}}, tmp_path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="wsgw.server"):
        build_node(with_cache, NodeConfig(host="127.0.0.1", port=0)).resources.stop_threads()
    assert "ask for caching" not in caplog.text
