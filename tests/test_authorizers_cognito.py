"""Cognito authorizers with a locally built key set: id and access tokens, wrong pool, wrong client, wrong
token_use (`bogus` refused), expired; groups and scopes as a route's authorizationScopes; claims where AWS puts
them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import api_from, serve
from wsgw.config.authorizers import cognito_issuer
from wsgw.errors import ConfigError

REGION = "eu-west-1"
POOL = "eu-west-1_AbCdEf"
POOL_ARN = f"arn:aws:cognito-idp:{REGION}:123456789012:userpool/{POOL}"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
CLIENT = "abc123client"


class Pool:
    """A user pool's signing key, its JWKS written to a file, and tokens shaped as Cognito issues them."""

    def __init__(self, folder: Path) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        jwk.update({"kid": "pool-key-1", "alg": "RS256", "use": "sig"})
        self.jwks = folder / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [jwk]}))

    def token(self, use: str = "access", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": "aaaa-bbbb", "iss": ISSUER, "token_use": use, "auth_time": now,
                                  "iat": now, "exp": now + 3600, "jti": "j-1", "cognito:groups": ["admins"]}
        if use == "id":
            claims.update({"aud": CLIENT, "email": "ada@example.com", "cognito:username": "ada"})
        else:
            claims.update({"client_id": CLIENT, "scope": "chat/read chat/write", "username": "ada"})
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": "pool-key-1"})


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Pool:
    return Pool(tmp_path_factory.mktemp("pool"))


def cognito_api(pool: Pool, **options: Any) -> dict[str, Any]:
    spec = {"type": "cognito", "userPoolArn": POOL_ARN, "jwksUri": str(pool.jwks), "appClientIds": [CLIENT],
            "tokenUse": ["id", "access"], **options}
    return {
        "authorizers": {"pool": spec},
        "routes": {"$connect": {"handler": "testapp:ok", "authorizer": "pool"},
                   "$default": {"handler": "testapp:echo", "routeResponse": True}},
        "http": {"routes": {
            "GET /me": {"handler": "restapp:show", "authorizer": "pool"},
            "GET /admin": {"handler": "restapp:show", "authorizer": "pool", "authorizationScopes": ["admins"]},
            "POST /write": {"handler": "restapp:show", "authorizer": "pool", "authorizationScopes": ["chat/write"]},
            "GET /ops": {"handler": "restapp:show", "authorizer": "pool", "authorizationScopes": ["ops"]},
        }},
    }


async def status_of(session: aiohttp.ClientSession, method: str, url: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.request(method, url, headers=headers) as response:
        return response.status, await response.json()


def test_the_pool_arn_names_the_issuer() -> None:
    assert cognito_issuer(POOL_ARN) == ISSUER
    assert cognito_issuer("arn:aws:cognito-idp:eu-west-1:123:userpool/x") is None


async def test_id_and_access_tokens_of_the_pool_are_accepted_and_claims_reach_the_handler(pool: Pool) -> None:
    async with serve(cognito_api(pool)) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        status, shown = await status_of(session, "GET", f"{base}/me", pool.token("id"))
        assert status == 200
        jwt_context = shown["requestContext"]["authorizer"]["jwt"]
        assert jwt_context["claims"]["email"] == "ada@example.com"
        assert jwt_context["claims"]["token_use"] == "id"
        status, shown = await status_of(session, "GET", f"{base}/me", pool.token("access"))
        assert status == 200
        assert set(shown["requestContext"]["authorizer"]["jwt"]["scopes"]) == {"chat/read", "chat/write", "admins"}


@pytest.mark.parametrize("why, token_args", [
    ("wrong pool", {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}),
    ("wrong client (access)", {"client_id": "someone-else"}),
    ("bogus token_use", {"token_use": "bogus"}),
    ("no token_use", {"token_use": None}),
    ("expired", {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000}),
])
async def test_tokens_not_of_this_pool_and_client_are_401(pool: Pool, why: str, token_args: dict[str, Any]) -> None:
    async with serve(cognito_api(pool)) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        assert await status_of(session, "GET", f"{base}/me", pool.token("access", **token_args)) == \
            (401, {"message": "Unauthorized"}), why


async def test_an_id_token_of_another_client_is_401(pool: Pool) -> None:
    async with serve(cognito_api(pool)) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        assert (await status_of(session, "GET", f"{base}/me", pool.token("id", aud="other")))[0] == 401
        # an id token carrying the right client only as client_id is not accepted either
        assert (await status_of(session, "GET", f"{base}/me", pool.token("id", aud="x", client_id=CLIENT)))[0] == 401


async def test_token_use_restricts_the_kind_of_token(pool: Pool) -> None:
    async with serve(cognito_api(pool, tokenUse=["access"])) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        assert (await status_of(session, "GET", f"{base}/me", pool.token("id")))[0] == 401
        assert (await status_of(session, "GET", f"{base}/me", pool.token("access")))[0] == 200


async def test_groups_and_scopes_are_authorization_scopes(pool: Pool) -> None:
    async with serve(cognito_api(pool)) as server, aiohttp.ClientSession() as session:
        base = server.urls.websocket.replace("ws://", "http://")
        assert (await status_of(session, "GET", f"{base}/admin", pool.token("id")))[0] == 200        # a group
        assert (await status_of(session, "POST", f"{base}/write", pool.token("access")))[0] == 200   # a scope
        assert await status_of(session, "GET", f"{base}/ops", pool.token("access")) == (403, {"message": "Forbidden"})
        no_groups = pool.token("access", **{"cognito:groups": None})
        assert (await status_of(session, "GET", f"{base}/admin", no_groups))[0] == 403


async def test_connect_takes_a_cognito_token_and_its_required_scopes(pool: Pool) -> None:
    raw = cognito_api(pool)
    raw["routes"]["$connect"]["authorizationScopes"] = ["admins"]
    async with serve(raw) as server:
        async with connect(server.urls.websocket, additional_headers={"Authorization": pool.token("id")}):
            conn = next(iter(server.gateway.connections.values()))
            assert conn.info.authorizer is not None
            assert conn.info.authorizer["principalId"] == "aaaa-bbbb"
        with pytest.raises(InvalidStatus) as caught:
            async with connect(server.urls.websocket, additional_headers={
                    "Authorization": pool.token("id", **{"cognito:groups": ["guests"]})}):
                pass
        assert caught.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as caught:
            async with connect(server.urls.websocket, additional_headers={
                    "Authorization": pool.token("access", token_use="bogus")}):
                pass
        assert caught.value.response.status_code == 401


def test_config_needs_the_pool_and_clients(pool: Pool) -> None:
    with pytest.raises(ConfigError) as caught:
        api_from({"authorizers": {"p": {"type": "cognito", "tokenUse": ["refresh"]}},
                  "routes": {"$default": {"handler": "testapp:ok"}}})
    text = str(caught.value)
    assert "authorizers.p.issuer" in text and "authorizers.p.appClientIds" in text and "authorizers.p.tokenUse" in text
    with pytest.raises(ConfigError, match="userPoolArn"):
        api_from({"authorizers": {"p": {"type": "cognito", "userPoolArn": "arn:nope", "appClientIds": ["a"]}},
                  "routes": {"$default": {"handler": "testapp:ok"}}})
    api = api_from({"authorizers": {"p": {"type": "cognito", "issuer": ISSUER + "/", "appClientIds": ["a"]}},
                    "routes": {"$default": {"handler": "testapp:ok"}}})
    options = api.authorizers["p"].options
    assert options.jwt.jwks_uri == f"{ISSUER}/.well-known/jwks.json"     # type: ignore[union-attr]
