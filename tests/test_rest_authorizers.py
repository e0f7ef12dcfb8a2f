"""The REST front with the real authorizer types: REQUEST (IAM policy and simple response) and JWT."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import authapp
import pytest

from tests.helpers import serve
from tests.test_authorizers_jwt import AUDIENCE, ISSUER, Key, claims, jwks_server
from tests.test_authorizers_jwt import keys as keys


def rest_api(authorizers: dict[str, Any]) -> dict[str, Any]:
    paths = {"policy": "GET /policy/{id}", "simple": "GET /simple", "jwt": "GET /jwt"}
    return {
        "authorizers": authorizers,
        "routes": {"$default": {"handler": "testapp:ok"}},
        "http": {"routes": {paths[name]: {"handler": "restapp:show", "authorizer": name} for name in authorizers}},
    }


REQUEST_AUTHORIZERS = {
    "policy": {"type": "request", "handler": "authapp:decide", "identitySource": ["$request.header.Authorization"],
               "resultTtlInSeconds": 0},
    "simple": {"type": "request", "handler": "authapp:simple", "identitySource": ["$request.querystring.key"],
               "resultTtlInSeconds": 0},
}


async def get(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        body = await response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body


@pytest.fixture(autouse=True)
def _fresh_authapp() -> None:
    authapp.reset()


async def test_request_authorizer_policy_guards_a_rest_route_and_its_context_reaches_the_handler() -> None:
    async with serve(rest_api(REQUEST_AUTHORIZERS)) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev"
        status, body = await get(session, base + "/policy/7", headers={"Authorization": "allow"})
        assert status == 200
        authorizer = body["requestContext"]["authorizer"]
        assert authorizer["lambda"]["user"] == "ada"
        assert (await get(session, base + "/policy/7", headers={"Authorization": "deny"}))[0] == 403
        assert (await get(session, base + "/policy/7", headers={"Authorization": "unauthorized"}))[0] == 401
        assert (await get(session, base + "/policy/7"))[0] == 401               # identity source missing
        status, body = await get(session, base + "/policy/7", headers={"Authorization": "boom"})
        assert status == 500 and b"secret detail" not in json.dumps(body).encode()


async def test_request_authorizer_simple_response_allows_or_refuses() -> None:
    async with serve(rest_api(REQUEST_AUTHORIZERS)) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev"
        assert (await get(session, base + "/simple?key=letmein"))[0] == 200
        assert (await get(session, base + "/simple?key=nope"))[0] == 403
        assert authapp.calls() == 2


async def test_jwt_authorizer_guards_a_rest_route_and_claims_reach_the_handler(keys: dict[str, Key]) -> None:
    async with jwks_server([keys["rsa"]]) as idp:
        jwt_authorizer = {"type": "jwt", "issuer": ISSUER, "audience": [AUDIENCE],
                          "jwksUri": idp.url + "/jwks.json", "identitySource": ["$request.header.Authorization"]}
        async with serve(rest_api({"jwt": jwt_authorizer})) as server, aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/dev/jwt"
            token = keys["rsa"].sign(claims())
            status, body = await get(session, url, headers={"Authorization": f"Bearer {token}"})
            assert status == 200
            assert body["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "user-42"
            assert (await get(session, url, headers={"Authorization": "Bearer not.a.token"}))[0] == 401
            assert (await get(session, url))[0] == 401
