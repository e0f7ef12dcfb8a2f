"""The built-in JWT authorizer over real handshakes, with a JWKS served by a real local aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import testapp
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from tests.helpers import ROOT, api_from, free_port, raw_http, serve, wait_for
from wsgw.authorizers import RestAuthRequest
from wsgw.authorizers.jwt import JwtAuthorizer
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.errors import ConfigError
from wsgw.headers import Headers
from wsgw.server.app import GatewayServer
from wsgw.server.budgets import Budgets

ISSUER = "https://auth.example.test/"
AUDIENCE = "chat"


@dataclass
class Key:
    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def _rsa(kid: str) -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Key(kid, "RS256", private, jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True))


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    """Generated once per module: RSA generation is the slow part."""
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ed_private = ed25519.Ed25519PrivateKey.generate()
    return {
        "rsa": _rsa("rsa-1"),
        "rsa2": _rsa("rsa-2"),
        "ec": Key("ec-1", "ES256", ec_private, jwt.algorithms.ECAlgorithm.to_jwk(ec_private.public_key(),
                                                                                 as_dict=True)),
        "ed": Key("ed-1", "EdDSA", ed_private, jwt.algorithms.OKPAlgorithm.to_jwk(ed_private.public_key(),
                                                                                  as_dict=True)),
    }


@dataclass
class JwksServer:
    """A real HTTP server for the JWKS and the OIDC discovery document; counts JWKS requests."""

    keys: list[Key]
    fetches: int = 0
    mode: str = "ok"                   # ok | hang | down
    url: str = ""
    hung: list[asyncio.Event] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {"keys": [{**k.jwk, "kid": k.kid, "use": "sig"} for k in self.keys]}

    async def jwks(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.mode == "hang":
            release = asyncio.Event()
            self.hung.append(release)
            await release.wait()
        if self.mode == "down":
            return web.Response(status=503, text="down")
        return web.json_response(self.document())

    async def discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url + "/", "jwks_uri": self.url + "/jwks.json"})


@asynccontextmanager
async def jwks_server(keys: list[Key]) -> AsyncIterator[JwksServer]:
    server = JwksServer(list(keys))
    app = web.Application()
    app.router.add_get("/jwks.json", server.jwks)
    app.router.add_get("/.well-known/openid-configuration", server.discovery)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        for release in server.hung:
            release.set()
        await runner.cleanup()


def api(jwks_uri: str, **options: Any) -> dict[str, Any]:
    authorizer: dict[str, Any] = {
        "type": "jwt", "issuer": ISSUER, "audience": [AUDIENCE], "jwksUri": jwks_uri,
        "identitySource": ["route.request.header.Authorization", "route.request.querystring.token",
                           "route.request.header.Sec-WebSocket-Protocol"],
        **options,
    }
    return {
        "authorizers": {"tokens": authorizer},
        "routes": {
            "$connect": {"handler": "testapp:ok", "authorizer": "tokens"},
            "$disconnect": {"handler": "testapp:ok"},
            "$default": {"handler": "testapp:echo", "routeResponse": True},
        },
    }


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "iat": now, "exp": now + 300,
                            "email": "ada@example.test", "scope": "chat:read chat:write"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@asynccontextmanager
async def gateway(keys: list[Key], **options: Any) -> AsyncIterator[tuple[GatewayServer, JwksServer]]:
    async with jwks_server(keys) as idp, serve(api(idp.url + "/jwks.json", **options)) as server:
        yield server, idp


async def status_of(server: GatewayServer, headers: dict[str, str] | None = None, path: str = "",
                    subprotocols: list[str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.urls.websocket + path, additional_headers=headers or {},
                           subprotocols=subprotocols):  # type: ignore[arg-type]
            pass
    body = caught.value.response.body or b""
    assert b"Traceback" not in body and b"Signature" not in body
    return caught.value.response.status_code


async def talk(server: GatewayServer, token: str) -> None:
    async with connect(server.urls.websocket, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would (pyjwt refuses to make these)."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    signature = "" if secret is None else b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return signing_input + "." + signature


# ----- accepted tokens ---------------------------------------------------------------------------------


async def test_valid_bearer_token_connects_and_claims_reach_every_event(keys: dict[str, Key]) -> None:
    token = keys["rsa"].sign(claims())
    async with gateway([keys["rsa"]]) as (server, _):
        await talk(server, token)
        await wait_for(lambda: testapp.events_of("$disconnect"))
    for route in ("$connect", "$default", "$disconnect"):
        authorizer = testapp.events_of(route)[0]["requestContext"]["authorizer"]
        assert authorizer["principalId"] == "user-42"
        assert authorizer["jwt"]["claims"]["email"] == "ada@example.test"
        assert authorizer["jwt"]["claims"]["sub"] == "user-42"
        assert authorizer["jwt"]["scopes"] == ["chat:read", "chat:write"]
        assert isinstance(authorizer["integrationLatency"], int)


@pytest.mark.parametrize("name", ["ec", "ed"])
async def test_ec_and_eddsa_tokens_are_accepted(keys: dict[str, Key], name: str) -> None:
    async with gateway([keys["rsa"], keys[name]]) as (server, _):
        await talk(server, keys[name].sign(claims()))


async def test_token_in_query_parameter(keys: dict[str, Key]) -> None:
    token = keys["rsa"].sign(claims())
    async with gateway([keys["rsa"]]) as (server, _), connect(server.urls.websocket + f"?token={token}") as ws:
        await ws.send("q")
        assert await ws.recv() == "q"


async def test_token_in_subprotocol_answers_the_real_subprotocol_never_the_token(keys: dict[str, Key]) -> None:
    token = keys["rsa"].sign(claims())
    async with gateway([keys["rsa"]]) as (server, _):
        async with connect(server.urls.websocket, subprotocols=["chat.v1", token]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat.v1"
            assert ws.response is not None
            assert token not in str(ws.response.headers)
            await ws.send("sp")
            assert await ws.recv() == "sp"
        handshake = (f"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Protocol: {token}\r\n\r\n").encode()
        answer = await raw_http(server.port, handshake, read_until_close=False)
        assert answer.startswith(b"HTTP/1.1 101")
        assert token.encode() not in answer and b"Sec-WebSocket-Protocol" not in answer


async def test_jwks_from_a_file_path(keys: dict[str, Key], tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**keys["rsa"].jwk, "kid": "rsa-1"}]}))
    async with serve(api(str(path))) as server:
        await talk(server, keys["rsa"].sign(claims()))


async def test_jwks_found_through_oidc_discovery(keys: dict[str, Key]) -> None:
    async with jwks_server([keys["rsa"]]) as idp:
        raw = api("unused")
        del raw["authorizers"]["tokens"]["jwksUri"]
        raw["authorizers"]["tokens"]["issuer"] = idp.url + "/"
        async with serve(raw) as server:
            await talk(server, keys["rsa"].sign(claims(iss=idp.url + "/")))
        assert idp.fetches == 1


async def test_client_id_stands_in_for_a_missing_aud(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]]) as (server, _):
        await talk(server, keys["rsa"].sign(claims(aud=None, client_id=AUDIENCE)))
        assert await status_of(server, {"Authorization": keys["rsa"].sign(claims(aud=None, client_id="x"))}) == 401


# ----- refused tokens ----------------------------------------------------------------------------------


def bad_tokens(keys: dict[str, Key]) -> dict[str, str]:
    rsa_key = keys["rsa"]
    pem = rsa_key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    good = rsa_key.sign(claims())
    head, _, signature = good.split(".")
    tampered_payload = b64(json.dumps(claims(sub="admin")).encode())
    return {
        "malformed": "not-a-jwt",
        "three garbage parts": "aaa.bbb.ccc",
        "alg none": forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(), None),
        "HS256 with the RSA public key as secret": forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
                                                          claims(), pem),
        "expired": rsa_key.sign(claims(exp=int(time.time()) - 60)),
        "no exp": rsa_key.sign(claims(exp=None)),
        "nbf in the future": rsa_key.sign(claims(nbf=int(time.time()) + 600)),
        "iat in the future": rsa_key.sign(claims(iat=int(time.time()) + 600)),
        "wrong iss": rsa_key.sign(claims(iss="https://evil.example.test/")),
        "wrong aud": rsa_key.sign(claims(aud="other")),
        "unknown kid": keys["rsa2"].sign(claims()),
        "right kid, wrong key": jwt.encode(claims(), keys["rsa2"].private, algorithm="RS256",
                                           headers={"kid": "rsa-1"}),
        "tampered payload": f"{head}.{tampered_payload}.{signature}",
        "ES256 header on an RSA kid": keys["ec"].sign(claims(), kid="rsa-1"),
    }


async def test_every_bad_token_is_401_and_the_node_keeps_serving(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"], keys["ec"]]) as (server, _):
        for name, token in bad_tokens(keys).items():
            for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": token}):
                assert await status_of(server, headers) == 401, name
        assert await status_of(server) == 401                       # no token at all
        assert await status_of(server, {"Authorization": "Bearer "}) == 401
        assert testapp.events_of("$connect") == []
        await talk(server, keys["rsa"].sign(claims()))


async def test_leeway_accepts_a_token_that_just_expired(keys: dict[str, Key]) -> None:
    token = keys["rsa"].sign(claims(exp=int(time.time()) - 5))
    async with gateway([keys["rsa"]], leewaySeconds=120) as (server, _):
        await talk(server, token)


async def test_missing_required_scope_is_403(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]], scopes=["chat:admin", "chat:write"]) as (server, _):
        await talk(server, keys["rsa"].sign(claims(scope="chat:write")))
        await talk(server, keys["rsa"].sign(claims(scope=None, scp=["chat:admin"])))
        headers = {"Authorization": keys["rsa"].sign(claims(scope="chat:read"))}
        assert await status_of(server, headers) == 403
        assert await status_of(server, {"Authorization": keys["rsa"].sign(claims(scope=None))}) == 403


async def test_algorithm_outside_the_allowlist_is_401(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"], keys["ec"]], algorithms=["RS256"]) as (server, _):
        assert await status_of(server, {"Authorization": keys["ec"].sign(claims())}) == 401
        await talk(server, keys["rsa"].sign(claims()))


async def test_100kb_token_is_refused_by_the_listener_and_the_node_keeps_serving(keys: dict[str, Key]) -> None:
    huge = "eyJ" + "A" * 100_000 + ".e30.sig"
    near_header_limit = "eyJ" + "A" * (Budgets().head_bytes - 2048) + ".e30.sig"
    near_url_limit = "eyJ" + "A" * (Budgets().url_bytes - 512) + ".e30.sig"
    async with gateway([keys["rsa"]]) as (server, _):
        for headers, path, expected in (({"Authorization": f"Bearer {huge}"}, "", 431),
                                        ({}, f"?token={huge}", 414)):
            with contextlib.suppress(InvalidMessage, OSError):   # the node may close before the client wrote all
                assert await status_of(server, headers, path) == expected
        assert await status_of(server, {"Authorization": f"Bearer {near_header_limit}"}) == 401
        assert await status_of(server, path=f"?token={near_url_limit}") == 401
        await talk(server, keys["rsa"].sign(claims()))


# ----- keys: caching, rotation, an identity provider that is down --------------------------------------


async def test_keys_are_cached_and_unknown_kids_refetch_at_most_once_per_interval(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]], jwksRefreshSeconds=3600) as (server, idp):
        for _ in range(3):
            await talk(server, keys["rsa"].sign(claims()))
        assert idp.fetches == 1
        idp.keys.append(keys["rsa2"])                        # rotated, but we fetched moments ago
        for _ in range(3):
            assert await status_of(server, {"Authorization": keys["rsa2"].sign(claims())}) == 401
        assert idp.fetches == 1


async def test_rotated_key_is_picked_up_by_refetching_on_an_unknown_kid(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]], jwksRefreshSeconds=0) as (server, idp):
        await talk(server, keys["rsa"].sign(claims()))
        idp.keys = [keys["rsa2"]]
        await talk(server, keys["rsa2"].sign(claims()))
        assert idp.fetches == 2


async def test_concurrent_connects_share_one_jwks_fetch(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]]) as (server, idp):
        await asyncio.gather(*(talk(server, keys["rsa"].sign(claims())) for _ in range(10)))
        assert idp.fetches == 1


async def test_jwks_endpoint_that_hangs_gives_500_quickly_and_fails_fast_after(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]], jwksTimeoutMs=200) as (server, idp):
        idp.mode = "hang"
        token = keys["rsa"].sign(claims())
        assert await status_of(server, {"Authorization": token}) == 500
        assert await status_of(server, {"Authorization": token}) == 500
        assert idp.fetches == 1                               # the second connect did not wait on it again
        status, _, _ = (await raw_http(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                       read_until_close=False)).partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK"


async def test_keys_loaded_before_keep_working_when_the_jwks_goes_down(keys: dict[str, Key]) -> None:
    async with gateway([keys["rsa"]], jwksRefreshSeconds=0) as (server, idp):
        await talk(server, keys["rsa"].sign(claims()))
        idp.mode = "down"
        assert await status_of(server, {"Authorization": keys["rsa2"].sign(claims())}) == 401   # refetch failed
        await talk(server, keys["rsa"].sign(claims()))
        assert idp.fetches == 2                               # a known kid needs no refetch


# ----- the REST front's form ---------------------------------------------------------------------------


async def test_rest_front_gets_the_http_api_jwt_context(keys: dict[str, Key]) -> None:
    raw = api("unused")
    async with jwks_server([keys["rsa"]]) as idp:
        raw["authorizers"]["tokens"]["jwksUri"] = idp.url + "/jwks.json"
        raw["authorizers"]["tokens"]["identitySource"] = ["$request.header.Authorization"]
        async with serve(raw) as server:
            authorizer = server.gateway.authorizers["tokens"]
            info = ConnectionInfo("c", 0, "10.0.0.1", None, "x", "dev", "wsgwlocal0")
            arn = "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/GET/rooms"
            token = Headers([("authorization", "Bearer " + keys["rsa"].sign(claims()))])
            request = RestAuthRequest(info, token, [], {}, "r", 0, "GET /rooms", arn, {"version": "2.0"})
            outcome = await authorizer.authorize(request)
    assert outcome.status == 200 and outcome.context is not None
    assert set(outcome.context) == {"jwt"}
    jwt_context = outcome.context["jwt"]
    assert isinstance(jwt_context, dict) and jwt_context["claims"]["sub"] == "user-42"


# ----- configuration -----------------------------------------------------------------------------------


def problems_for(**options: Any) -> list[str]:
    raw = api("https://idp.example.test/jwks.json")
    raw["authorizers"]["tokens"].update(options)
    for name in [k for k, v in options.items() if v is None]:
        del raw["authorizers"]["tokens"][name]
    with pytest.raises(ConfigError) as caught:
        JwtAuthorizer.from_spec(api_from(raw).authorizers["tokens"], api_from(raw), None)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(("options", "key"), [
    ({"algorithms": ["none"]}, "authorizers.tokens.algorithms"),
    ({"algorithms": ["HS256"]}, "authorizers.tokens.algorithms"),
    ({"algorithms": ["RS1024"]}, "authorizers.tokens.algorithms"),
    ({"issuer": None}, "authorizers.tokens.issuer"),
    ({"audience": None}, "authorizers.tokens.audience"),
    ({"audience": []}, "authorizers.tokens.audience"),
    ({"jwksUri": "no/such/jwks.json"}, "authorizers.tokens.jwksUri"),
    ({"jwksUri": "ftp://idp/jwks.json"}, "authorizers.tokens.jwksUri"),
    ({"jwksUri": None, "issuer": "not-a-url"}, "authorizers.tokens.jwksUri"),
    ({"leewaySeconds": -1}, "authorizers.tokens.leewaySeconds"),
    ({"resultTtlInSeconds": 60}, "authorizers.tokens.resultTtlInSeconds"),
    ({"identitySource": ["stageVariables.token"]}, "authorizers.tokens.identitySource"),
    ({"audiences": ["x"]}, "authorizers.tokens.audiences"),
])
def test_bad_options_are_config_errors_naming_the_key(options: dict[str, Any], key: str) -> None:
    problems = problems_for(**options)
    assert any(p.startswith(key + ":") for p in problems), problems


def test_default_token_source_is_the_authorization_header() -> None:
    raw = api("https://idp.example.test/jwks.json")
    del raw["authorizers"]["tokens"]["identitySource"]
    parsed = api_from(raw)
    authorizer = JwtAuthorizer.from_spec(parsed.authorizers["tokens"], parsed, None)  # type: ignore[arg-type]
    assert [s.text for s in authorizer.sources] == ["route.request.header.Authorization"]


# ----- the example in wsgw.jwt.yaml (handlers/jwt_demo.py) ---------------------------------------------


async def test_example_jwt_config_with_the_demo_issuer() -> None:
    from handlers.jwt_demo import DemoIssuer
    from handlers.jwt_demo import serve as serve_issuer

    port = free_port()
    issuer = DemoIssuer(f"http://127.0.0.1:{port}/")
    idp = serve_issuer(issuer, "127.0.0.1", port)
    try:
        raw = yaml.safe_load((ROOT / "wsgw.jwt.yaml").read_text())
        raw["authorizers"]["tokens"]["issuer"] = issuer.issuer
        async with serve(api_from(raw, ROOT)) as server:
            async with connect(server.urls.websocket + f"?token={issuer.token('ada')}") as ws:
                await ws.send('{"action": "whoami"}')
                answer = json.loads(await ws.recv())
            assert answer["principalId"] == "ada" and answer["claims"]["name"] == "ada"
            async with connect(server.urls.websocket, subprotocols=["chat", issuer.token("bob")]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "chat"
            assert await status_of(server, {"Authorization": issuer.token("eve", scope="other")}) == 403
    finally:
        idp.shutdown()
        idp.server_close()


async def test_connect_handler_echoing_the_offered_subprotocol_never_answers_the_token(keys: dict[str, Key]) -> None:
    """AWS's usual $connect idiom echoes Sec-WebSocket-Protocol; when the only offer was the token, nothing is."""
    token = keys["rsa"].sign(claims())
    async with jwks_server([keys["rsa"]]) as idp:
        raw = api(idp.url + "/jwks.json")
        raw["routes"]["$connect"] = {"handler": "testapp:connect_by_query", "authorizer": "tokens"}
        async with serve(raw) as server:
            handshake = (f"GET /dev?protocol={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {token}\r\n\r\n").encode()
            answer = await raw_http(server.port, handshake, read_until_close=False)
            assert answer.startswith(b"HTTP/1.1 101")
            assert b"Sec-WebSocket-Protocol" not in answer
