"""The REST front over real HTTP (aiohttp and raw sockets) against an in-process gateway."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import testapp

from tests.helpers import raw_http, serve
from wsgw.authorizers import AUTHORIZER_TYPES, Authorizer, AuthOutcome, AuthRequest, RestAuthRequest
from wsgw.config import ApiConfig, AuthorizerSpec
from wsgw.integrations import Resources
from wsgw.server.http import HttpResponse

SCHEMA = {"type": "object", "required": ["text"], "additionalProperties": False,
          "properties": {"text": {"type": "string", "maxLength": 10}, "n": {"type": "integer"}}}

API: dict[str, Any] = {
    "stage": "dev",
    "stageVariables": {"room": "lobby"},
    "routes": {"$default": {"handler": "testapp:ok"}},
    "http": {"routes": {
        "GET /items/{id}": {"handler": "restapp:show"},
        "ANY /items/{id}": {"handler": "restapp:show"},
        "GET /files/{proxy+}": {"handler": "restapp:show"},
        "POST /echo": {"handler": "restapp:show"},
        "POST /validated": {"handler": "restapp:show", "requestSchema": SCHEMA},
        "GET /string": {"handler": "restapp:bare_string"},
        "GET /dict": {"handler": "restapp:bare_dict"},
        "GET /rich": {"handler": "restapp:rich"},
        "GET /garbage": {"handler": "restapp:not_a_response"},
        "GET /explode": {"handler": "restapp:explode"},
        "GET /hang": {"handler": "restapp:hang", "timeoutMs": 200},
        "GET /mock": {"integration": {"type": "mock", "statusCode": 200,
                                      "response": '{"route": "$context.routeKey"}'}},
    }},
    "limits": {"maxHttpBodyBytes": 4096},
}


@asynccontextmanager
async def front(raw: dict[str, Any] = API) -> AsyncIterator[tuple[str, aiohttp.ClientSession, int]]:
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{server.port}/dev", session, server.port


async def fetch(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with session.request(method, url, **kwargs) as response:
        body = await response.read()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        return response.status, parsed, response.headers


async def test_route_gets_a_payload_2_event_and_its_response_reaches_the_client() -> None:
    async with front() as (base, session, _):
        status, seen, headers = await fetch(session, "GET", f"{base}/items/a%20b?x=1&x=2&y=%C3%A9",
                                            headers={"Cookie": "c1=1; c2=2", "X-Dup": "a"})
        assert status == 200 and headers["apigw-requestid"]
        assert seen["version"] == "2.0"
        assert seen["routeKey"] == "GET /items/{id}"
        assert seen["rawPath"] == "/dev/items/a%20b"
        assert seen["rawQueryString"] == "x=1&x=2&y=%C3%A9"
        assert seen["pathParameters"] == {"id": "a b"}
        assert seen["queryStringParameters"] == {"x": "1,2", "y": "é"}
        assert seen["cookies"] == ["c1=1", "c2=2"]
        assert seen["stageVariables"] == {"room": "lobby"}
        ctx = seen["requestContext"]
        assert ctx["http"]["method"] == "GET" and ctx["http"]["sourceIp"] == "127.0.0.1"
        assert ctx["stage"] == "dev" and ctx["routeKey"] == "GET /items/{id}"
        assert ctx["requestId"] == headers["apigw-requestid"]
        assert "authorizer" not in ctx


async def test_any_catches_other_methods_and_greedy_takes_the_rest() -> None:
    async with front() as (base, session, _):
        status, seen, _ = await fetch(session, "DELETE", f"{base}/items/7")
        assert status == 200 and seen["routeKey"] == "ANY /items/{id}"
        status, seen, _ = await fetch(session, "GET", f"{base}/files/a/b/c.txt")
        assert seen["pathParameters"] == {"proxy": "a/b/c.txt"}


async def test_unmatched_paths_and_wrong_methods_are_404_not_found() -> None:
    async with front() as (base, session, port):
        for method, path in (("GET", "/nope"), ("GET", "/echo"), ("PUT", "/files/x"), ("GET", "/files/")):
            status, body, _ = await fetch(session, method, base + path)
            assert (status, body) == (404, {"message": "Not Found"}), (method, path)
        status, body, _ = await fetch(session, "GET", f"http://127.0.0.1:{port}/otherstage/items/1")
        assert status == 404


async def test_stage_root_is_426_unless_a_route_or_default_takes_it() -> None:
    async with front() as (base, session, _):
        assert (await fetch(session, "GET", base))[0] == 426
    with_root = {**API, "http": {"routes": {"GET /": {"handler": "restapp:bare_dict"}}}}
    async with front(with_root) as (base, session, _):
        assert (await fetch(session, "GET", base))[0] == 200
        assert (await fetch(session, "GET", base + "/"))[0] == 200
    with_default = {**API, "http": {"routes": {"$default": {"handler": "restapp:show"}}}}
    async with front(with_default) as (base, session, _):
        status, seen, _ = await fetch(session, "PATCH", f"{base}/any/thing")
        assert status == 200 and seen["routeKey"] == "$default" and "pathParameters" not in seen


async def test_bare_results_become_200_json() -> None:
    async with front() as (base, session, _):
        status, body, headers = await fetch(session, "GET", f"{base}/string")
        assert (status, body, headers["Content-Type"]) == (200, b"Hello from Lambda!", "application/json")
        status, body, _ = await fetch(session, "GET", f"{base}/dict")
        assert (status, body) == (200, {"message": "Hello from Lambda!"})
        status, body, _ = await fetch(session, "GET", f"{base}/mock")
        assert (status, body) == (200, {"route": "GET /mock"})


async def test_full_response_with_cookies_multi_value_headers_and_binary_body() -> None:
    async with front() as (base, session, _), session.get(f"{base}/rich") as response:
        assert response.status == 201
        assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
        assert response.headers.getall("x-many") == ["1", "2"]
        assert response.headers["x-one"] == "1"
        assert await response.read() == b"\x00\x01binary"


async def test_handler_failures_are_500_and_timeouts_503_with_no_detail_leaked() -> None:
    async with front() as (base, session, _):
        for path in ("/explode", "/garbage"):
            status, body, _ = await fetch(session, "GET", base + path)
            assert (status, body) == (500, {"message": "Internal Server Error"})
        status, body, _ = await fetch(session, "GET", f"{base}/hang")
        assert (status, body) == (503, {"message": "Service Unavailable"})
        assert (await fetch(session, "GET", f"{base}/dict"))[0] == 200       # the node is fine


async def test_binary_body_reaches_the_handler_base64_encoded() -> None:
    async with front() as (base, session, _):
        status, seen, _ = await fetch(session, "POST", f"{base}/echo", data=b"\x00\xff\x10",
                                      headers={"Content-Type": "application/octet-stream"})
        assert status == 200 and seen["isBase64Encoded"] is True
        assert base64.b64decode(seen["body"]) == b"\x00\xff\x10"
        status, seen, _ = await fetch(session, "POST", f"{base}/echo", json={"a": 1})
        assert seen["isBase64Encoded"] is False and json.loads(seen["body"]) == {"a": 1}


# ----- request validation --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    (b'{"text": 5}', "$.text"),
    (b'{"n": 1}', "$.text"),
    (b'{"text": "ok", "extra": 1}', "extra"),
    (b'{"text": "far too long for it"}', "$.text"),
    (b'{"text": "x", "n": "1"}', "$.n"),
    (b'{"text": ', "not JSON"),
    (b"", "a JSON body is required"),
    (b"[1]", "$"),
])
async def test_schema_violations_are_400_naming_the_field_and_the_handler_never_runs(body: bytes, field: str) -> None:
    async with front() as (base, session, _):
        status, answer, _ = await fetch(session, "POST", f"{base}/validated", data=body,
                                        headers={"Content-Type": "application/json"})
        assert status == 400, answer
        assert answer["message"].startswith("Invalid request body") and field in answer["message"]
        assert testapp.events_of("POST /validated") == []
        status, _, _ = await fetch(session, "POST", f"{base}/validated", json={"text": "fine", "n": 2})
        assert status == 200 and len(testapp.events_of("POST /validated")) == 1


# ----- authorizers (through the Authorizer interface only) -----------------------------------------


class HeaderAuthorizer(Authorizer):
    """Allows when X-Test-Auth says so; no header is 401 — the REQUEST authorizer's outcomes, minus the Lambda."""

    type_name = "request"
    seen: list[AuthRequest] = []

    @classmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> HeaderAuthorizer:
        return cls(spec)

    async def authorize(self, request: AuthRequest) -> AuthOutcome:
        HeaderAuthorizer.seen.append(request)
        token = next((v for k, v in request.headers if k.lower() == "x-test-auth"), None)
        if token is None:
            return AuthOutcome(401)
        if token == "allow":
            return AuthOutcome(200, {"user": "ada", "roles": ["admin"]})
        if token == "broken":
            raise RuntimeError("authorizer bug")
        return AuthOutcome(403)


AUTH_API: dict[str, Any] = {
    **API,
    "authorizers": {"users": {"type": "request", "handler": "testapp:ok",
                              "identitySource": ["$request.header.X-Test-Auth"]}},
    "http": {"routes": {"GET /secret/{id}": {"handler": "restapp:show", "authorizer": "users"},
                        "GET /public": {"handler": "restapp:show"}}},
}


async def test_authorizer_allows_denies_and_its_context_reaches_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(AUTHORIZER_TYPES, "request", HeaderAuthorizer)
    HeaderAuthorizer.seen = []
    async with front(AUTH_API) as (base, session, _):
        status, seen, _ = await fetch(session, "GET", f"{base}/secret/9?q=1", headers={"X-Test-Auth": "allow"})
        assert status == 200
        assert seen["requestContext"]["authorizer"] == {"lambda": {"user": "ada", "roles": ["admin"]}}
        request = HeaderAuthorizer.seen[-1]
        assert request.route_key == "GET /secret/{id}"
        assert request.method_arn == "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/GET/secret/9"
        assert request.query == [("q", "1")]
        assert isinstance(request, RestAuthRequest) and request.event["rawPath"] == "/dev/secret/9"
        for header, expected in (({"X-Test-Auth": "deny"}, (403, {"message": "Forbidden"})),
                                 ({}, (401, {"message": "Unauthorized"})),
                                 ({"X-Test-Auth": "broken"}, (500, {"message": "Internal Server Error"}))):
            status, body, _ = await fetch(session, "GET", f"{base}/secret/9", headers=header)
            assert (status, body) == expected
        assert len(testapp.events_of("GET /secret/{id}")) == 1        # the refused ones never reached it
        status, seen, _ = await fetch(session, "GET", f"{base}/public")
        assert status == 200 and "authorizer" not in seen["requestContext"]


# ----- CORS ----------------------------------------------------------------------------------------


CORS_API = {**API, "http": {**API["http"], "cors": {"allowOrigins": ["https://app.example"],
                                                     "allowMethods": ["GET", "POST"], "allowHeaders": ["x-token"],
                                                     "exposeHeaders": ["x-one"], "maxAge": 600}}}


async def test_cors_preflight_is_answered_without_an_options_route_and_headers_are_added() -> None:
    async with front(CORS_API) as (base, session, _):
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        status, body, headers = await fetch(session, "OPTIONS", f"{base}/echo", headers=preflight)
        assert (status, body) == (204, b"")
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert headers["Access-Control-Allow-Methods"] == "GET,POST"
        assert headers["Access-Control-Allow-Headers"] == "x-token"
        assert headers["Access-Control-Max-Age"] == "600"
        status, _, headers = await fetch(session, "OPTIONS", f"{base}/echo",
                                         headers={**preflight, "Origin": "https://evil.example"})
        assert status == 204 and "Access-Control-Allow-Origin" not in headers
        status, _, headers = await fetch(session, "GET", f"{base}/rich", headers={"Origin": "https://app.example"})
        assert headers.getall("Access-Control-Allow-Origin") == ["https://app.example"]   # the handler's is dropped
        assert headers["Access-Control-Expose-Headers"] == "x-one"
        status, _, headers = await fetch(session, "GET", f"{base}/rich", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers


# ----- bad input at the HTTP level -----------------------------------------------------------------


async def test_oversize_body_is_413_before_the_handler_runs() -> None:
    async with front() as (base, session, _):
        status, body, _ = await fetch(session, "POST", f"{base}/echo", data=b"x" * 5000)
        assert status == 413 and "Request Entity Too Large" in body["message"]
        assert testapp.events_of("POST /echo") == []


@pytest.mark.parametrize(("target", "why"), [
    ("/dev/items/%zz", "percent-encoding"),
    ("/dev/items/%C3", "UTF-8"),
    ("/dev/files/a/../../etc/passwd", "'..'"),
    ("/dev/files/a/%2e%2e/b", "'..'"),
    ("/dev/files/a%2F..%2Fb", "'..'"),
    ("/dev/items/1?x=%G1", "percent-encoding"),
    ("/dev/items/%00", "NUL"),
])
async def test_malformed_or_hostile_paths_are_400(target: str, why: str) -> None:
    async with front() as (_, _session, port):
        answer = await raw_http(port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer
        assert why in json.loads(body)["message"]
        assert testapp.EVENTS == []


async def test_duplicate_headers_are_joined_but_duplicate_host_is_400() -> None:
    async with front() as (_, _session, port):
        answer = await raw_http(port, b"GET /dev/items/1 HTTP/1.1\r\nHost: x\r\nX-Dup: a\r\nx-dup: b\r\n"
                                      b"Connection: close\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["headers"]["x-dup"] == "a,b"
        answer = await raw_http(port, b"GET /dev/items/1 HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400") and b"more than one host header" in answer


async def test_request_line_and_headers_beyond_10240_bytes_are_431() -> None:
    async with front() as (base, session, _):
        status, body, _ = await fetch(session, "GET", f"{base}/items/1", headers={"X-Big": "v" * 10_300})
        assert status == 431 and "Request Header Fields Too Large" in body["message"]
        assert (await fetch(session, "GET", f"{base}/items/1", headers={"X-Big": "v" * 9000}))[0] == 200


# ----- handlers cannot take over HTTP framing ------------------------------------------------------


FRAMING_API: dict[str, Any] = {**API, "http": {"routes": {
    "GET /framing": {"handler": "restapp:framing"},
    "GET /interim": {"handler": "restapp:interim"},
    "GET /inject": {"handler": "restapp:inject"},
    "GET /items/{id}": {"handler": "restapp:show"},
}}}


def split_response(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return int(lines[0].split(" ")[1]), headers, rest


async def test_handler_framing_and_hop_by_hop_headers_are_dropped_and_the_node_frames_the_body() -> None:
    async with front(FRAMING_API) as (_, _, port):
        # Two requests on one connection: if the handler's Content-Length leaked, the second response
        # would be read from the middle of the first body.
        raw = await raw_http(port, b"GET /dev/framing HTTP/1.1\r\nHost: x\r\n\r\n"
                                   b"GET /dev/items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, rest = split_response(raw)
    names = [name.lower() for name, _ in headers]
    assert status == 200
    assert names.count("content-length") == 1 and dict(headers)["Content-Length"] == str(len(b"hello world"))
    for dropped in ("transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection"):
        assert dropped not in names, dropped
    assert ("X-Kept", "yes") in headers
    assert rest.startswith(b"hello world")
    second_status, _, second_body = split_response(rest[len(b"hello world"):])
    assert second_status == 200 and json.loads(second_body)["pathParameters"] == {"id": "2"}


@pytest.mark.parametrize("status", [100, 101, 103, 199])
async def test_handler_1xx_status_is_a_malformed_result_500_and_never_an_interim_response(status: int) -> None:
    async with front(FRAMING_API) as (_, _, port):
        raw = await raw_http(port, f"GET /dev/interim?status={status} HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\n\r\n".encode())
    code, _, body = split_response(raw)
    assert code == 500 and json.loads(body) == {"message": "Internal Server Error"}
    assert raw.count(b"HTTP/1.1 ") == 1 and b"forged" not in raw


@pytest.mark.parametrize("where", ["name", "value", "lf", "multi", "cookie"])
async def test_crlf_in_handler_headers_is_refused_500_never_injected(where: str) -> None:
    async with front(FRAMING_API) as (_, _, port):
        raw = await raw_http(port, f"GET /dev/inject?where={where} HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\n\r\n".encode())
    code, headers, body = split_response(raw)
    assert code == 500 and json.loads(body) == {"message": "Internal Server Error"}
    assert b"evil" not in raw and "set-cookie" not in [name.lower() for name, _ in headers]


def test_serialized_responses_frame_themselves_whatever_headers_they_were_given() -> None:
    response = HttpResponse(200, b"body", [("Content-Length", "99"), ("transfer-encoding", "chunked"),
                                           ("X-A", "a\r\nX-Evil: 1"), ("X-B\n", "1"), ("X-C", "kept")])
    head, _, body = response.serialize(keep_alive=True).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b"body"
    assert [line for line in lines if line.lower().startswith(b"content-length")] == [b"Content-Length: 4"]
    assert b"X-C: kept" in lines and not any(b"chunked" in line or b"Evil" in line or b"X-B" in line
                                             for line in lines)


async def test_stage_throttling_answers_429_on_rest_routes() -> None:
    api = {**API, "throttling": {"rateLimit": 0.5, "burstLimit": 2}}
    async with front(api) as (base, session, _port):
        statuses = [(await fetch(session, "GET", base + "/string"))[0] for _ in range(4)]
        assert statuses[:2] == [200, 200]
        assert statuses[2:] == [429, 429]
        status, body, _headers = await fetch(session, "GET", base + "/string")
        assert (status, body) == (429, {"message": "Too Many Requests"})
