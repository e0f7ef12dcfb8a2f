"""Every integration type behind a REST route (issue 8), and behind a REQUEST authorizer (issue 5)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.backends import backend
from tests.helpers import serve

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:rest"


def rest_echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 201, "body": json.dumps({"version": event["version"], "routeKey": event["routeKey"],
                                                   "body": event.get("body")})}


async def test_http_event_http_proxy_and_aws_lambda_serve_rest_routes() -> None:
    async with backend(functions={"rest": rest_echo}) as b:
        api = {"routes": {"$default": {"handler": "testapp:ok"}}, "http": {"routes": {
            "POST /proxied": {"integration": {"type": "http_event", "uri": b.url + "/proxy/echo"}},
            "POST /raw": {"integration": {"type": "http_proxy", "uri": b.url + "/raw/echo"}},
            "POST /lambda": {"integration": {"type": "aws_lambda", "functionArn": ARN, "endpointUrl": b.url}},
        }}}
        async with serve(api) as server, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{server.port}/dev"
            json_body = {"content-type": "application/json"}
            async with session.post(base + "/proxied", data=b'{"n": 1}', headers=json_body) as response:
                assert (response.status, await response.text()) == (200, '{"n": 1}')
            assert b.hits("/proxy/echo")[0].json()["version"] == "2.0"          # the payload 2.0 event
            async with session.post(base + "/raw", data=b'{"n": 2}', headers=json_body) as response:
                assert (response.status, await response.json()) == (200, {"n": 2})
            async with session.post(base + "/lambda", data=b'{"n": 3}', headers=json_body) as response:
                assert response.status == 201
                assert json.loads(await response.text()) == {"version": "2.0", "routeKey": "POST /lambda",
                                                             "body": '{"n": 3}'}


def allow_by_token(event: dict[str, Any]) -> dict[str, Any]:
    token = (event.get("queryStringParameters") or {}).get("token")
    return {"statusCode": 200, "body": json.dumps({"principalId": "u", "policyDocument": {
        "Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke",
                                                "Effect": "Allow" if token == "ok" else "Deny",
                                                "Resource": event["methodArn"]}]}})}


async def test_request_authorizer_can_be_an_aws_lambda_function() -> None:
    def authorizer(event: dict[str, Any]) -> dict[str, Any]:
        return json.loads(allow_by_token(event)["body"])          # Lambda returns the policy itself

    async with backend(functions={"auth": authorizer}) as b:
        api = {"authorizers": {"fn": {"type": "request", "identitySource": ["route.request.querystring.token"],
                                      "resultTtlInSeconds": 0, "integration": {
                                          "type": "aws_lambda", "functionArn": ARN.replace("rest", "auth"),
                                          "endpointUrl": b.url}}},
               "routes": {"$connect": {"handler": "testapp:ok", "authorizer": "fn"},
                          "$default": {"handler": "testapp:echo", "routeResponse": True}}}
        async with serve(api) as server:
            async with connect(server.urls.websocket + "?token=ok") as ws:
                await ws.send("in")
                assert await ws.recv() == "in"
            try:
                async with connect(server.urls.websocket + "?token=no"):
                    raise AssertionError("a denied token connected")
            except InvalidStatus as refused:
                assert refused.response.status_code == 403
            assert len([seen for seen in b.seen if seen.path.endswith("/invocations")]) == 2
