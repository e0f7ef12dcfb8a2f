"""The REST front with the real authorizer types: REQUEST (IAM policy and simple response) and JWT."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import authapp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import raw_http, serve
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


# ----- the ARN the authorizer judges is the path the router served -----------------------------------


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def raw_get(port: int, target: str, token: str) -> int:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
    return status_of(await raw_http(port, request.encode()))


@pytest.mark.parametrize("target", ["/dev/admin/1", "/dev/%61dmin/1", "/dev/%61%64%6D%69%6E/1", "/dev/admin/%31"])
async def test_a_deny_on_a_path_holds_however_the_path_is_percent_encoded(target: str) -> None:
    raw = {"authorizers": {"guard": {"type": "request", "handler": "authapp:admin_denied", "resultTtlInSeconds": 0,
                                     "identitySource": ["$request.header.Authorization"]}},
           "routes": {"$default": {"handler": "testapp:ok"}},
           "http": {"routes": {"GET /admin/{x}": {"handler": "restapp:show", "authorizer": "guard"},
                               "GET /things/{x}": {"handler": "restapp:show", "authorizer": "guard"}}}}
    async with serve(raw) as server:
        assert await raw_get(server.port, target, "t") == 403
        assert authapp.CALLS[-1]["routeArn"] == "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/GET/admin/1"
        assert await raw_get(server.port, target.replace("admin", "things").replace("%61dmin", "th%69ngs")
                             .replace("%61%64%6D%69%6E", "things"), "t") == 200
        assert authapp.CALLS[-1]["routeArn"].endswith("/dev/GET/things/1")


# ----- one authorizer on both fronts: decisions never cross from REST to WebSocket --------------------


async def test_a_cached_rest_simple_response_does_not_authorize_a_websocket_connect() -> None:
    raw = {"authorizers": {"both": {"type": "request", "handler": "authapp:http_simple_ws_deny",
                                    "resultTtlInSeconds": 300,
                                    "identitySource": ["route.request.header.Authorization"]}},
           "routes": {"$connect": {"handler": "testapp:ok", "authorizer": "both"},
                      "$default": {"handler": "testapp:ok"}},
           "http": {"routes": {"GET /r": {"handler": "restapp:show", "authorizer": "both"}}}}
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        status, body = await get(session, f"http://127.0.0.1:{server.port}/dev/r", headers={"Authorization": "B"})
        assert status == 200 and body["requestContext"]["authorizer"] == {"lambda": {"tier": {"name": "gold"}}}
        assert authapp.calls() == 1
        with pytest.raises(InvalidStatus) as caught:
            async with connect(server.urls.websocket, additional_headers={"Authorization": "B"}):
                pass
        assert caught.value.response.status_code == 403
        assert authapp.calls() == 2 and "methodArn" in authapp.CALLS[-1]     # WebSocket asked the function itself
        # and the other way round: the WebSocket decision (cached) does not answer the REST request
        assert (await get(session, f"http://127.0.0.1:{server.port}/dev/r", headers={"Authorization": "C"}))[0] == 200
        with pytest.raises(InvalidStatus):
            async with connect(server.urls.websocket, additional_headers={"Authorization": "C"}):
                pass
        assert authapp.calls() == 4
        # both entries are cached within the TTL
        assert (await get(session, f"http://127.0.0.1:{server.port}/dev/r", headers={"Authorization": "B"}))[0] == 200
        assert authapp.calls() == 4
