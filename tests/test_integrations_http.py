"""http_event (the AWS event POSTed) and HTTP_PROXY (the body passed through) integrations against real local
backends, through real WebSocket clients."""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.backends import Backend, backend
from tests.helpers import api_from, free_port, serve


def proxy(uri: str, **extra: Any) -> dict[str, Any]:
    return {"integration": {"type": "http_event", "uri": uri, **extra}, "routeResponse": True}


def proxy_api(b: Backend, **routes: Any) -> dict[str, Any]:
    return {"routes": {"echo": proxy(f"{b.url}/proxy/echo"), **routes}}


async def error_of(ws: Any) -> dict[str, Any]:
    frame = await ws.recv()
    assert isinstance(frame, str)
    parsed: dict[str, Any] = orjson.loads(frame)
    assert set(parsed) == {"message", "connectionId", "requestId"}
    return parsed


async def still_answers(ws: Any) -> None:
    await ws.send('{"action": "echo", "after": true}')
    assert json.loads(await ws.recv()) == {"action": "echo", "after": True}


async def test_http_event_posts_the_aws_event_and_relays_the_proxy_result() -> None:
    async with backend() as b, serve(proxy_api(b)) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"action": "echo", "n": 1}')
        assert json.loads(await ws.recv()) == {"action": "echo", "n": 1}
        seen = b.hits("/proxy/echo")[0]
        event = seen.json()
        assert seen.headers["Content-Type"] == "application/json"
        assert event["body"] == '{"action": "echo", "n": 1}'
        assert event["requestContext"]["routeKey"] == "echo"
        assert event["requestContext"]["eventType"] == "MESSAGE"
        assert event["requestContext"]["connectionId"] in server.gateway.connections
        assert seen.headers["X-Amz-Request-Id"] == event["requestContext"]["requestId"]


async def test_http_event_connect_status_refuses_the_handshake() -> None:
    api = {"routes": {"$connect": {"integration": {"type": "http_event", "uri": "http://127.0.0.1:1/x"}}}}
    async with backend() as b:
        api["routes"]["$connect"]["integration"]["uri"] = f"{b.url}/proxy/connect"
        async with serve(api) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.urls.websocket + "?status=403"):
                    pass
            assert refused.value.response.status_code == 403
            async with connect(server.urls.websocket + "?status=200") as ws:
                await ws.ping()
            assert b.hits("/proxy/connect")[0].json()["requestContext"]["eventType"] == "CONNECT"


async def test_backend_500_sends_internal_server_error_and_logs_the_cause(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "wsgw")
    async with backend() as b:
        api = proxy_api(b, fail=proxy(f"{b.url}/proxy/fail"))
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "fail"}')
            frame = await error_of(ws)
            assert frame["message"] == "Internal server error"
            await still_answers(ws)
            assert server.gateway.metrics.value("wsgw_integration_errors_total", kind="error") == 1
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert frame["requestId"] in logged
    assert "secret detail" in logged          # the cause goes to the log, never to the client


async def test_refused_connection_sends_internal_server_error() -> None:
    closed = free_port()
    async with backend() as b, serve(proxy_api(b, down=proxy(f"http://127.0.0.1:{closed}/x"))) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "down"}')
        assert (await error_of(ws))["message"] == "Internal server error"
        await still_answers(ws)


async def test_non_json_answer_sends_internal_server_error() -> None:
    async with backend() as b, serve(proxy_api(b, junk=proxy(f"{b.url}/proxy/garbage"))) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "junk"}')
        frame = await ws.recv()
        assert orjson.loads(frame)["message"] == "Internal server error"
        assert "html" not in frame
        await still_answers(ws)


async def test_redirect_to_another_host_is_not_followed() -> None:
    async with backend() as b, backend() as elsewhere:
        b.redirect_to = f"http://localhost:{elsewhere.port}/proxy/echo"
        api = proxy_api(b, away=proxy(f"{b.url}/proxy/redirect-away"), here=proxy(f"{b.url}/proxy/redirect-here"))
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "away"}')
            assert (await error_of(ws))["message"] == "Internal server error"
            assert elsewhere.seen == []
            await ws.send('{"action": "here", "same": "host"}')    # same host: followed, method and body kept
            assert json.loads(await ws.recv()) == {"action": "here", "same": "host"}
            assert len(b.hits("/proxy/echo")) == 1


async def test_slow_backend_times_out_with_aws_frame_and_connection_stays() -> None:
    async with backend() as b:
        api = proxy_api(b, hang={**proxy(f"{b.url}/proxy/hang", timeoutMs=300)})
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "hang"}')
            frame = await error_of(ws)
            assert frame["message"] == "Endpoint request timed out"
            await still_answers(ws)
            assert server.gateway.metrics.value("wsgw_integration_errors_total", kind="timeout") == 1


async def test_http_forwards_raw_body_with_identity_headers_and_stage_variables() -> None:
    async with backend() as b:
        api = {
            "stageVariables": {"backend": f"127.0.0.1:{b.port}", "key": "s3cret"},
            "routes": {"raw": {"integration": {
                "type": "http_proxy", "uri": "http://${stageVariables.backend}/raw/echo",
                "headers": {"X-Api-Key": "${stageVariables.key}", "X-Static": "yes"}}, "routeResponse": True}},
        }
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "raw", "text": "hi"}')
            assert json.loads(await ws.recv()) == {"action": "raw", "text": "hi"}
            seen = b.hits("/raw/echo")[0]
            assert seen.body == b'{"action": "raw", "text": "hi"}'
            assert seen.headers["X-Connection-Id"] in server.gateway.connections
            assert seen.headers["X-Route-Key"] == "raw"
            assert seen.headers["X-Event-Type"] == "MESSAGE"
            assert seen.headers["X-Stage"] == "dev"
            assert len(seen.headers["X-Request-Id"]) > 8
            assert seen.headers["X-Api-Key"] == "s3cret"
            assert seen.headers["X-Static"] == "yes"
            assert "X-Authorizer-Principal-Id" not in seen.headers


async def test_http_backend_5xx_sends_internal_server_error_and_4xx_body_passes() -> None:
    async with backend() as b:
        api = {"routes": {
            "five": {"integration": {"type": "http_proxy", "uri": f"{b.url}/raw/status/503"}, "routeResponse": True},
            "four": {"integration": {"type": "http_proxy", "uri": f"{b.url}/raw/status/404"}, "routeResponse": True},
        }}
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "five"}')
            assert (await error_of(ws))["message"] == "Internal server error"
            await ws.send('{"action": "four"}')
            assert await ws.recv() == "status page"


@pytest.mark.parametrize(("integration", "key", "fragment"), [
    ({"type": "http_event"}, "routes.r.integration.uri", "missing"),
    ({"type": "http_event", "uri": "ftp://host/x"}, "routes.r.integration.uri", "http://"),
    ({"type": "http_event", "uri": "/relative"}, "routes.r.integration.uri", "absolute"),
    ({"type": "http_proxy", "uri": "http://${stageVariables.nope}/"}, "routes.r.integration.uri", "'nope'"),
    ({"type": "http_proxy", "uri": "http://h/", "method": "TRACE"}, "routes.r.integration.method", "one of"),
    ({"type": "http_proxy", "uri": "http://h/", "headers": ["x"]}, "routes.r.integration.headers", "mapping"),
    ({"type": "http_proxy", "uri": "http://h/", "headers": {"Bad Name": "x"}}, "routes.r.integration.headers.Bad Name",
     "header name"),
    ({"type": "http_proxy", "uri": "http://h/", "headers": {"X-A": "a\r\nX-B: b"}}, "routes.r.integration.headers.X-A",
     "single-line"),
    ({"type": "http_event", "uri": "http://h/", "url": "x"}, "routes.r.integration.url", "unknown option"),
    ({"type": "http_event", "uri": "http://h/", "timeoutMs": 100, "connectTimeoutMs": 200},
     "routes.r.integration.connectTimeoutMs", "timeoutMs"),
    ({"type": "aws_lambda"}, "routes.r.integration.functionArn", "missing"),
    ({"type": "aws_lambda", "functionArn": "not a name!"}, "routes.r.integration.functionArn", "not a Lambda"),
    ({"type": "aws_lambda", "functionArn": "f", "region": "mars"}, "routes.r.integration.region", "region"),
    ({"type": "aws_lambda", "functionArn": "f", "endpointUrl": "nohost"}, "routes.r.integration.endpointUrl",
     "absolute"),
    ({"type": "aws_lambda", "functionArn": "f", "qualifier": "a b"}, "routes.r.integration.qualifier", "alias"),
    ({"type": "soap", "uri": "http://h/"}, "routes.r.integration.type", "http_proxy"),
])
def test_bad_integration_options_name_the_key(integration: dict[str, Any], key: str, fragment: str) -> None:
    from wsgw.config.node import NodeConfig
    from wsgw.errors import ConfigError
    from wsgw.server.node import build_node

    with pytest.raises(ConfigError) as error:       # at load (option names, types) or at build (URLs, ARNs)
        build_node(api_from({"routes": {"r": {"integration": integration}}}), NodeConfig()).discard()
    problem = error.value.problems[0]
    assert problem.key == key
    assert fragment in problem.message
