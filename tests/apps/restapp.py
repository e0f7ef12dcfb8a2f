"""Handlers for the REST front tests (payload format 2.0); they record what they saw in testapp.EVENTS."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import testapp


def show(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the parts of the event the tests check."""
    testapp.record(event, context)
    keys = ("routeKey", "rawPath", "rawQueryString", "pathParameters", "queryStringParameters", "cookies",
            "headers", "body", "isBase64Encoded", "stageVariables", "version")
    seen = {k: event[k] for k in keys if k in event}
    seen["requestContext"] = event["requestContext"]
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(seen)}


def bare_string(event: dict[str, Any], context: Any) -> str:
    return "Hello from Lambda!"


def bare_dict(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"message": "Hello from Lambda!"}


def rich(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Status, cookies, multi-value headers, a CORS header the gateway must drop, a base64 body."""
    return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"],
            "headers": {"x-one": "1", "access-control-allow-origin": "https://evil.example"},
            "multiValueHeaders": {"x-many": ["1", "2"]},
            "body": base64.b64encode(b"\x00\x01binary").decode(), "isBase64Encoded": True}


def not_a_response(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": "teapot"}


def explode(event: dict[str, Any], context: Any) -> dict[str, Any]:
    testapp.record(event, context)
    raise RuntimeError("secret detail")


async def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    testapp.record(event, context)
    await asyncio.sleep(3600)
    return {"statusCode": 200}


def framing(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Tries to take over HTTP framing with hop-by-hop and length headers (the gateway must drop them)."""
    return {"statusCode": 200, "body": "hello world",
            "headers": {"Content-Length": "5", "Transfer-Encoding": "chunked", "Connection": "close",
                        "Keep-Alive": "timeout=999", "TE": "trailers", "Trailer": "X-Sum", "Upgrade": "h2c",
                        "Proxy-Connection": "keep-alive", "X-Kept": "yes"},
            "multiValueHeaders": {"content-length": ["1", "2"], "transfer-encoding": ["gzip", "chunked"]}}


FORGED = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: 1\r\n\r\nforged"


def interim(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A 1xx status (from ?status=) with a body that looks like a second response."""
    return {"statusCode": int(event["queryStringParameters"]["status"]), "body": FORGED}


def inject(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A CR/LF in the header part ?where= names: a header name, a value, a multi-value, a cookie."""
    evil = "x\r\nSet-Cookie: evil=1"
    where = event["queryStringParameters"]["where"]
    response: dict[str, Any] = {"statusCode": 200, "body": "ok"}
    if where == "name":
        response["headers"] = {"X-A\r\nSet-Cookie: evil=1\r\nX-B": "1"}
    elif where == "value":
        response["headers"] = {"X-A": evil}
    elif where == "lf":
        response["headers"] = {"X-A": "x\nSet-Cookie: evil=1"}
    elif where == "multi":
        response["multiValueHeaders"] = {"X-A": ["fine", evil]}
    else:
        response["cookies"] = ["a=1", evil]
    return response
