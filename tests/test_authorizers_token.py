"""TOKEN authorizers: AWS's TOKEN event, identityValidationExpression, the cache by token, on $connect, on REST
routes, and a Lambda-style function reached through the Lambda Invoke API as one in another account would be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tokenapp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.backends import backend
from tests.helpers import api_from, serve
from wsgw.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "aws" / "token_authorizer_event.json"
OTHER_ACCOUNT_ARN = "arn:aws:lambda:eu-west-1:999999999999:function:bearer-check"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    tokenapp.reset()


def token_api(authorizer: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {"type": "token", "handler": "tokenapp:handler", "identitySource": "$request.header.Authorization",
            "identityValidationExpression": "^Bearer [-0-9a-zA-Z._~+/]+=*$", "resultTtlInSeconds": 300}
    spec.update(authorizer or {})
    return {
        "authorizers": {"bearer": spec},
        "routes": {"$connect": {"handler": "testapp:ok", "authorizer": "bearer"},
                   "$default": {"handler": "testapp:echo", "routeResponse": True}},
        "http": {"routes": {"GET /items/{id}": {"handler": "restapp:show", "authorizer": "bearer"}}},
    }


async def refused_status(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, additional_headers=headers):
            pass
    return caught.value.response.status_code


async def test_the_function_receives_aws_token_event_on_connect() -> None:
    aws = json.loads(FIXTURE.read_text())
    async with serve(token_api()) as server, connect(server.urls.websocket,
                                                     additional_headers={"Authorization": "Bearer allow"}):
        event = tokenapp.CALLS[0]
        assert set(event) == set(aws)
        assert event["type"] == aws["type"] == "TOKEN"
        assert event["authorizationToken"] == "Bearer allow"
        assert event["methodArn"] == "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/$connect"


async def test_missing_or_malformed_token_is_401_without_calling_the_function() -> None:
    async with serve(token_api()) as server:
        assert await refused_status(server.urls.websocket, {}) == 401
        assert await refused_status(server.urls.websocket, {"Authorization": "Basic abc"}) == 401
        assert await refused_status(server.urls.websocket, {"Authorization": "Bearer a b"}) == 401
        assert tokenapp.CALLS == []


async def test_decisions_are_cached_by_token() -> None:
    async with serve(token_api()) as server:
        for _ in range(3):
            async with connect(server.urls.websocket, additional_headers={"Authorization": "Bearer allow"}):
                pass
        assert len(tokenapp.CALLS) == 1
        async with connect(server.urls.websocket, additional_headers={"Authorization": "Bearer allow2"}):
            pass
        assert len(tokenapp.CALLS) == 2


async def test_deny_is_403_and_unauthorized_is_401_and_other_errors_500() -> None:
    async with serve(token_api({"resultTtlInSeconds": 0})) as server:
        url = server.urls.websocket
        assert await refused_status(url, {"Authorization": "Bearer deny"}) == 403
        assert await refused_status(url, {"Authorization": "Bearer unauthorized"}) == 401
        assert await refused_status(url, {"Authorization": "Bearer garbage"}) == 500


async def test_the_policy_context_reaches_websocket_handlers() -> None:
    async with serve(token_api()) as server, connect(server.urls.websocket,
                                                     additional_headers={"Authorization": "Bearer allow"}):
        conn = next(iter(server.gateway.connections.values()))
        assert conn.info.authorizer is not None
        assert conn.info.authorizer["principalId"] == "user-7"
        assert conn.info.authorizer["tier"] == "gold"


async def test_token_authorizer_guards_a_rest_route_with_the_route_arn() -> None:
    async with serve(token_api()) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        async with session.get(f"{base}/items/42", headers={"Authorization": "Bearer allow"}) as response:
            assert response.status == 200
            shown = await response.json()
        assert tokenapp.CALLS[0]["methodArn"].endswith("/dev/GET/items/42")
        assert shown["requestContext"]["authorizer"]["lambda"]["tier"] == "gold"
        async with session.get(f"{base}/items/42") as response:
            assert response.status == 401
            assert await response.json() == {"message": "Unauthorized"}
        async with session.get(f"{base}/items/42", headers={"Authorization": "Bearer deny"}) as response:
            assert response.status == 403


async def test_method_request_header_spelling_is_accepted() -> None:
    async with serve(token_api({"identitySource": "method.request.header.X-Token",
                                "identityValidationExpression": None})) as server:
        async with connect(server.urls.websocket, additional_headers={"X-Token": "allow"}):
            pass
        assert tokenapp.CALLS[0]["authorizationToken"] == "allow"


def test_a_token_authorizer_reads_exactly_one_header() -> None:
    raw = token_api({"identitySource": ["$request.header.A", "$request.querystring.b"]})
    with pytest.raises(ConfigError) as caught:
        api_from(raw)
    assert "authorizers.bearer.identitySource" in str(caught.value)
    raw = token_api({"identityValidationExpression": "(unclosed"})
    with pytest.raises(ConfigError, match="identityValidationExpression"):
        api_from(raw)


async def test_a_lambda_in_another_account_is_reached_through_invoke() -> None:
    calls: list[dict[str, Any]] = []

    def bearer_check(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        if event["authorizationToken"] == "Bearer unauthorized":
            raise Exception("Unauthorized")
        return tokenapp.policy("Allow" if event["authorizationToken"] == "Bearer allow" else "Deny",
                               event["methodArn"])

    async with backend(functions={"bearer-check": bearer_check}) as b:
        raw = token_api()
        spec = raw["authorizers"]["bearer"]
        del spec["handler"]
        spec["integration"] = {"type": "aws_lambda", "functionArn": OTHER_ACCOUNT_ARN, "endpointUrl": b.url}
        spec["resultTtlInSeconds"] = 0
        async with serve(raw) as server:
            async with connect(server.urls.websocket, additional_headers={"Authorization": "Bearer allow"}):
                pass
            assert await refused_status(server.urls.websocket, {"Authorization": "Bearer deny"}) == 403
            assert await refused_status(server.urls.websocket, {"Authorization": "Bearer unauthorized"}) == 401
        assert [c["type"] for c in calls] == ["TOKEN"] * 3
        seen = b.seen[0]
        assert OTHER_ACCOUNT_ARN in seen.path.replace("%3A", ":")
        assert "/eu-west-1/lambda/aws4_request" in seen.headers["Authorization"]
