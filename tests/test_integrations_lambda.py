"""aws_lambda against a local Invoke-compatible endpoint (POST /2015-03-31/functions/{name}/invocations)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import orjson
from websockets.asyncio.client import connect

from tests.backends import Backend, backend
from tests.helpers import serve

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:chat"


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"got": json.loads(event["body"]),
                                                   "route": event["requestContext"]["routeKey"]})}


def boom(event: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("function exploded: secret detail")


def lambda_api(b: Backend, function: str = ARN, **extra: Any) -> dict[str, Any]:
    integration = {"type": "aws_lambda", "functionArn": function, "endpointUrl": b.url, **extra}
    return {"routes": {"$default": {"integration": integration, "routeResponse": True}}}


async def test_invoke_sends_the_event_signed_and_relays_the_result() -> None:
    async with backend(functions={"chat": echo}) as b, serve(lambda_api(b)) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "hello"}')
        assert json.loads(await ws.recv()) == {"got": {"action": "hello"}, "route": "$default"}
        seen = b.seen[0]
        assert unquote(seen.path) == f"/2015-03-31/functions/{ARN}/invocations"
        assert seen.headers["X-Amz-Invocation-Type"] == "RequestResponse"
        authorization = seen.headers["Authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=")
        assert "/eu-west-1/lambda/aws4_request" in authorization      # region taken from the ARN
        event = seen.json()
        assert event["requestContext"]["connectionId"] in server.gateway.connections
        assert event["body"] == '{"action": "hello"}'


async def test_function_error_sends_internal_server_error_and_keeps_connection() -> None:
    async with backend(functions={"chat": echo, "boom": boom}) as b:
        api = lambda_api(b)
        api["routes"]["explode"] = {"integration": {"type": "aws_lambda", "functionArn": "boom",
                                                    "endpointUrl": b.url}, "routeResponse": True}
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send('{"action": "explode"}')
            frame = await ws.recv()
            assert isinstance(frame, str)
            assert orjson.loads(frame)["message"] == "Internal server error"
            assert "secret" not in frame
            await ws.send('{"action": "again"}')
            assert json.loads(await ws.recv())["got"] == {"action": "again"}
            assert server.gateway.metrics.value("wsgw_integration_errors_total", kind="error") == 1


async def test_unknown_function_sends_internal_server_error() -> None:
    async with backend(functions={}) as b, serve(lambda_api(b, "missing")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "x"}')
        assert orjson.loads(await ws.recv())["message"] == "Internal server error"
        assert unquote(b.seen[0].path) == "/2015-03-31/functions/missing/invocations"


async def test_qualifier_and_plain_name_reach_the_endpoint() -> None:
    async with backend(functions={"chat": echo}) as b, serve(lambda_api(b, "chat", qualifier="live")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"n": 1}')
        assert json.loads(await ws.recv())["got"] == {"n": 1}
        assert b.seen[0].path == "/2015-03-31/functions/chat/invocations"
        assert "/us-east-1/lambda/aws4_request" in b.seen[0].headers["Authorization"]   # the API's region


async def test_hung_function_times_out_with_aws_frame() -> None:
    async def hang(event: dict[str, Any]) -> None:
        import asyncio
        await asyncio.sleep(3600)

    async with backend(functions={"chat": hang}) as b, serve(lambda_api(b, timeoutMs=200)) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"n": 1}')
        assert orjson.loads(await ws.recv())["message"] == "Endpoint request timed out"
