"""REQUEST authorizers on $connect over real handshakes: AWS's event, policies, statuses, the result cache."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import authapp
import pytest
import testapp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import ROOT, api_from, serve, wait_for
from wsgw.authorizers import AuthRequest, Front, RestAuthRequest, WebSocketAuthRequest
from wsgw.authorizers.request import RequestAuthorizer
from wsgw.aws.policy import parse_simple_response
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import load_api
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.headers import Headers
from wsgw.server.app import GatewayServer
from wsgw.server.node import build_node

FIXTURE = Path(__file__).parent / "fixtures" / "aws" / "websocket_authorizer_request.json"


def api(ttl: int = 300, sources: list[str] | None = None, handler: str = "authapp:decide",
        timeout_ms: int | None = None) -> dict[str, Any]:
    authorizer: dict[str, Any] = {
        "type": "request", "handler": handler, "resultTtlInSeconds": ttl,
        "identitySource": sources if sources is not None else ["route.request.header.Authorization"],
    }
    if timeout_ms is not None:
        authorizer["timeoutMs"] = timeout_ms
    return {
        "stageVariables": {"room": "lobby"},
        "authorizers": {"users": authorizer},
        "routes": {
            "$connect": {"handler": "testapp:ok", "authorizer": "users"},
            "$disconnect": {"handler": "testapp:ok"},
            "$default": {"handler": "testapp:echo", "routeResponse": True},
        },
    }


@pytest.fixture(autouse=True)
def _fresh_authapp() -> Iterator[None]:
    authapp.reset()
    yield


async def refused(server: GatewayServer, *, token: str | None = None, path: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": token} if token is not None else {}
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.urls.websocket + path, additional_headers=headers):
            pass
    return caught.value.response.status_code, caught.value.response.body or b""


async def still_serving(server: GatewayServer) -> None:
    """The node survived whatever the test threw at it: a good client connects and talks."""
    async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}) as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"


# ----- the event the authorizer receives ---------------------------------------------------------------


async def test_authorizer_receives_the_aws_request_event_for_connect() -> None:
    aws = json.loads(FIXTURE.read_text())
    async with serve(api(ttl=0)) as server, connect(server.urls.websocket + "?room=a&room=b",
                                                    additional_headers={"Authorization": "allow"}):
        event = authapp.CALLS[0]
    assert list(event) == list(aws)
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/$connect"
    assert set(aws["requestContext"]) <= set(event["requestContext"])
    assert event["requestContext"]["routeKey"] == "$connect"
    assert event["requestContext"]["eventType"] == "CONNECT"
    assert event["headers"]["Authorization"] == "allow"
    assert event["headers"]["Upgrade"] == "websocket"        # unlike the $connect event, kept for authorizers
    assert event["queryStringParameters"] == {"room": "b"}
    assert event["multiValueQueryStringParameters"] == {"room": ["a", "b"]}
    assert event["stageVariables"] == {"room": "lobby"}


async def test_allowed_context_reaches_connect_message_and_disconnect_events() -> None:
    async with serve(api()) as server:
        async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        await wait_for(lambda: testapp.events_of("$disconnect"))
    for route in ("$connect", "$default", "$disconnect"):
        authorizer = testapp.events_of(route)[0]["requestContext"]["authorizer"]
        assert authorizer["principalId"] == "user-1"
        assert authorizer["user"] == "ada"
        assert authorizer["level"] == 3
        assert authorizer["admin"] is False
        assert isinstance(authorizer["integrationLatency"], int)


async def test_sync_and_async_authorizers_both_work() -> None:
    for handler in ("authapp:decide", "authapp:decide_async"):
        async with serve(api(handler=handler)) as server, connect(
                server.urls.websocket, additional_headers={"Authorization": "allow"}) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"


# ----- statuses ----------------------------------------------------------------------------------------


async def test_missing_identity_source_is_401_without_calling_the_authorizer() -> None:
    async with serve(api()) as server:
        assert (await refused(server))[0] == 401
        assert (await refused(server, token=""))[0] == 401          # empty counts as missing, as on AWS
        assert authapp.calls() == 0
        assert testapp.events_of("$connect") == []


async def test_all_identity_sources_are_required() -> None:
    sources = ["route.request.header.Authorization", "route.request.querystring.room"]
    async with serve(api(sources=sources)) as server:
        assert (await refused(server, token="allow"))[0] == 401
        assert authapp.calls() == 0
        async with connect(server.urls.websocket + "?room=1", additional_headers={"Authorization": "allow"}):
            pass
        assert authapp.calls() == 1


@pytest.mark.parametrize(("token", "status"), [
    ("unauthorized", 401),        # raise Exception("Unauthorized")
    ("deny", 403),                # explicit Deny for the ARN
    ("deny-wins", 403),           # Allow * plus Deny for the ARN: the Deny wins
    ("other-route", 403),         # an Allow for another route's ARN only
    ("nobody", 403),              # a Deny for the ARN
    ("boom", 500),                # any other exception
    ("nested", 500),              # context with a nested object
    ("garbage", 500),             # not a policy at all
    ("no-statement", 500),        # no policyDocument
])
async def test_authorizer_answers_map_to_handshake_statuses(token: str, status: int) -> None:
    async with serve(api(ttl=0)) as server:
        code, body = await refused(server, token=token)
        assert code == status
        assert b"secret detail" not in body and b"Traceback" not in body
        assert testapp.events_of("$connect") == []                 # the $connect handler never ran
        await still_serving(server)


async def test_wildcard_resource_allows_the_connect() -> None:
    async with serve(api()) as server, connect(server.urls.websocket,
                                               additional_headers={"Authorization": "wildcard"}) as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"


async def test_hanging_authorizer_is_500_after_its_timeout_and_the_node_keeps_serving() -> None:
    raw = api(handler="authapp:hang", timeout_ms=100)
    async with serve(raw) as server:
        code, _ = await refused(server, token="allow")
        assert code == 500
        assert authapp.calls() == 1
        assert server.gateway.connections == {}
    async with serve(api()) as server:
        await still_serving(server)


async def test_many_hostile_answers_in_a_row_leave_the_node_serving() -> None:
    async with serve(api(ttl=0)) as server:
        results = await asyncio.gather(*(refused(server, token=t) for t in
                                         ["boom", "nested", "garbage", "unauthorized", "deny"] * 4))
        assert sorted({code for code, _ in results}) == [401, 403, 500]
        await still_serving(server)


# ----- the result cache --------------------------------------------------------------------------------


async def test_cache_calls_the_authorizer_once_per_identity_within_the_ttl_and_again_after() -> None:
    async with serve(api(ttl=1)) as server:
        for _ in range(5):
            async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}):
                pass
        assert authapp.calls() == 1
        authorizer = server.gateway.authorizers["users"]
        assert isinstance(authorizer, RequestAuthorizer) and authorizer.cache is not None
        cache = authorizer.cache
        await wait_for(lambda: cache.get((Front.WEBSOCKET.value, "allow")) is None, timeout=5)   # the TTL ran out
        for _ in range(3):
            async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}):
                pass
        assert authapp.calls() == 2
        cached = testapp.events_of("$connect")[-1]["requestContext"]["authorizer"]
        assert cached["integrationLatency"] == 0 and cached["user"] == "ada"


async def test_concurrent_connects_with_one_identity_share_one_call() -> None:
    async with serve(api()) as server:
        async def one() -> None:
            async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}):
                pass
        await asyncio.gather(*(one() for _ in range(20)))
        assert authapp.calls() == 1


async def test_cached_deny_is_still_403_and_each_identity_has_its_own_entry() -> None:
    async with serve(api()) as server:
        for _ in range(3):
            assert (await refused(server, token="deny"))[0] == 403
        assert authapp.calls() == 1
        async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}):
            pass
        assert authapp.calls() == 2


async def test_401_and_500_are_not_cached() -> None:
    async with serve(api()) as server:
        for token in ("unauthorized", "unauthorized", "boom", "boom"):
            await refused(server, token=token)
        assert authapp.calls() == 4


async def test_ttl_zero_calls_the_authorizer_on_every_connect() -> None:
    async with serve(api(ttl=0)) as server:
        for _ in range(3):
            async with connect(server.urls.websocket, additional_headers={"Authorization": "allow"}):
                pass
        assert authapp.calls() == 3


def auth_request(server: GatewayServer, *, arn: str, headers: list[tuple[str, str]],
                 http_event: dict[str, Any] | None = None) -> AuthRequest:
    info = ConnectionInfo("c1", 0, "10.0.0.1", None, "localhost", "dev", "wsgwlocal0")
    if http_event is None:
        return WebSocketAuthRequest(info, Headers(headers), [], {}, "req-1", 0, "GET /rooms", arn, [])
    return RestAuthRequest(info, Headers(headers), [], {}, "req-1", 0, "GET /rooms", arn, http_event)


async def test_cached_policy_is_re_evaluated_against_another_routes_arn() -> None:
    """The REST front reuses the cache: a policy cached on $connect allows only the ARNs it names."""
    raw = api(sources=["$request.header.Authorization"])
    async with serve(raw) as server:
        authorizer = server.gateway.authorizers["users"]
        prefix = "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/"
        first = await authorizer.authorize(auth_request(server, arn=prefix + "$connect",
                                                        headers=[("authorization", "wildcard")]))
        calls = authapp.calls()
        elsewhere = await authorizer.authorize(auth_request(server, arn=prefix + "GET/rooms",
                                                            headers=[("Authorization", "wildcard")]))
        outside = await authorizer.authorize(auth_request(
            server, arn="arn:aws:execute-api:us-east-1:000000000000:another/dev/$connect",
            headers=[("Authorization", "wildcard")]))
        assert (first.status, elsewhere.status) == (200, 200)
        assert outside.status == 403
        assert authapp.calls() == calls                       # both answered from the cache


async def test_rest_front_form_gets_the_http_api_event_and_simple_responses() -> None:
    raw = api(handler="authapp:simple", sources=["$request.header.X-Key"])
    async with serve(raw) as server:
        authorizer = server.gateway.authorizers["users"]
        arn = "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/GET/rooms"
        http_event = {"version": "2.0", "routeKey": "GET /rooms", "rawPath": "/dev/rooms", "headers": {
            "x-key": "letmein"}, "requestContext": {"http": {"method": "GET"}}, "body": "secret body"}
        allowed = await authorizer.authorize(auth_request(server, arn=arn, headers=[("x-key", "letmein")],
                                                          http_event=http_event))
        denied = await authorizer.authorize(auth_request(server, arn=arn, headers=[("x-key", "nope")],
                                                         http_event=http_event))
        missing = await authorizer.authorize(auth_request(server, arn=arn, headers=[], http_event=http_event))
    assert allowed.status == 200 and allowed.context == {"lambda": {"tier": {"name": "gold"}}}
    assert (denied.status, missing.status) == (403, 401)
    event = authapp.CALLS[0]
    assert event["type"] == "REQUEST" and event["routeArn"] == arn and event["identitySource"] == ["letmein"]
    assert event["version"] == "2.0" and "body" not in event


@pytest.mark.parametrize("source", ["route.request.querystring.token", "stageVariables.token",
                                    "context.identity.sourceIp"])
async def test_other_identity_sources_key_the_cache(source: str) -> None:
    raw = api(sources=[source])
    raw["stageVariables"] = {"token": "allow"}
    async with serve(raw) as server:
        for _ in range(2):
            async with connect(server.urls.websocket + "?token=allow"):
                pass
        assert authapp.calls() == 1


# ----- configuration -----------------------------------------------------------------------------------


def build_problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_node(api_from(raw), NodeConfig(port=0))
    return [str(p) for p in caught.value.problems]


def test_unknown_option_is_a_config_error_naming_the_key() -> None:
    raw = copy.deepcopy(api())
    raw["authorizers"]["users"]["resultCacheMaxEntrys"] = 5
    problems = build_problems(raw)
    assert len(problems) == 1
    assert problems[0].startswith("authorizers.users.resultCacheMaxEntrys: unknown key")
    assert "resultCacheMaxEntries" in problems[0]


def test_authorizer_handler_that_cannot_be_imported_is_a_config_error() -> None:
    problems = build_problems(api(handler="authapp:no_such_function"))
    assert problems[0].startswith("authorizers.users.handler:")


def test_bad_cache_size_is_a_config_error() -> None:
    raw = api()
    raw["authorizers"]["users"]["resultCacheMaxEntries"] = 0
    assert build_problems(raw)[0].startswith("authorizers.users.resultCacheMaxEntries:")


# ----- the example in wsgw.yaml (handlers/auth.py) -----------------------------------------------------


async def test_example_chat_config_admits_named_users_only() -> None:
    async with serve(load_api(ROOT / "wsgw.yaml")) as server:
        async with connect(server.urls.websocket + "?name=ada") as ws:
            await ws.send('{"action": "echo", "x": 1}')
            assert json.loads(await ws.recv()) == {"action": "echo", "x": 1}
        assert (await refused(server))[0] == 401                      # no ?name=: the gateway answers
        assert (await refused(server, path="?name=bad%20name"))[0] == 401   # the authorizer raises
        assert (await refused(server, path="?name=admin"))[0] == 403        # the authorizer denies


async def test_a_simple_decision_never_opens_a_websocket_even_from_the_cache() -> None:
    async with serve(api(ttl=300)) as server:
        authorizer = server.gateway.authorizers["users"]
        assert isinstance(authorizer, RequestAuthorizer) and authorizer.cache is not None
        simple = parse_simple_response({"isAuthorized": True, "context": {"tier": {"name": "gold"}}})
        assert simple is not None and simple.simple and simple.evaluate("anything")
        authorizer.cache.put((Front.WEBSOCKET.value, "smuggled"), simple)
        status, body = await refused(server, token="smuggled")
        assert status == 500 and b"Internal Server Error" in body
        assert authapp.calls() == 0 and server.gateway.connections == {}
        await still_serving(server)
