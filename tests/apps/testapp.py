"""Handlers the tests route to; module state records what they saw."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import boto3

EVENTS: list[dict[str, Any]] = []
CONTEXTS: list[Any] = []
LOCK = threading.Lock()
RELEASE = threading.Event()


def record(event: dict[str, Any], context: Any) -> None:
    with LOCK:
        EVENTS.append(event)
        CONTEXTS.append(context)
    path = os.environ.get("WSGW_TEST_EVENT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(event) + "\n")


def events_of(route_key: str) -> list[dict[str, Any]]:
    with LOCK:
        return [e for e in EVENTS if e["requestContext"]["routeKey"] == route_key]


def reset() -> None:
    with LOCK:
        EVENTS.clear()
        CONTEXTS.clear()
    RELEASE.clear()


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    return {"statusCode": 200}


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    return {"statusCode": 200, "body": event["body"]}


def sync_echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    return {"statusCode": 200, "body": event["body"]}


def route_key(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    return {"statusCode": 200, "body": json.dumps({"route": event["requestContext"]["routeKey"]})}


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    raise RuntimeError("handler exploded: secret detail")


def garbage(event: dict[str, Any], context: Any) -> object:
    record(event, context)
    return {"statusCode": "teapot", "body": object()}


async def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    await asyncio.sleep(3600)
    return {"statusCode": 200}


def block_until_released(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    RELEASE.wait(30)
    return {"statusCode": 200, "body": event["body"]}


async def slow_echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    await asyncio.sleep(float(json.loads(event["body"]).get("delay", 0)))
    record(event, context)
    return {"statusCode": 200, "body": event["body"]}


def connect_by_query(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """$connect whose outcome the client picks: ?status=403, ?raise=1, ?protocol=chat, ?post=1."""
    record(event, context)
    query = event.get("queryStringParameters") or {}
    if query.get("raise"):
        raise RuntimeError("connect exploded")
    if query.get("post"):
        ctx = event["requestContext"]
        client = boto3.client("apigatewaymanagementapi", endpoint_url=f"http://{ctx['domainName']}/{ctx['stage']}")
        try:
            client.post_to_connection(ConnectionId=ctx["connectionId"], Data=b"too early")
            EVENTS.append({"requestContext": {"routeKey": "post-during-connect"}, "result": "200"})
        except client.exceptions.GoneException:
            EVENTS.append({"requestContext": {"routeKey": "post-during-connect"}, "result": "410"})
    response: dict[str, Any] = {"statusCode": int(query.get("status", 200))}
    if query.get("protocol"):
        response["headers"] = {"Sec-WebSocket-Protocol": query["protocol"]}
    if query.get("greet"):
        response["body"] = "welcome"
    return response


def post_back(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A sync handler that pushes to its own connection through boto3 — must not deadlock the node."""
    record(event, context)
    ctx = event["requestContext"]
    client = boto3.client("apigatewaymanagementapi", endpoint_url=f"http://{ctx['domainName']}/{ctx['stage']}")
    client.post_to_connection(ConnectionId=ctx["connectionId"], Data=b"pushed:" + event["body"].encode())
    info = client.get_connection(ConnectionId=ctx["connectionId"])
    return {"statusCode": 200, "body": json.dumps({"sourceIp": info["Identity"]["SourceIp"]})}


def context_info(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record(event, context)
    return {"statusCode": 200, "body": json.dumps({
        "function_name": context.function_name,
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "requestId": event["requestContext"]["requestId"],
    })}


def sleepy_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(0.05)
    record(event, context)
    return {"statusCode": 200}


def connect_and_join(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """$connect that joins the groups named in ?groups=a,b (with ?since=N) through the HTTP pusher, before
    the handshake completes; then publishes ?announce= into the first of them. ?via=PORT sends the calls to the
    node on that port instead of the one running the handshake."""
    from wsgw.client import HttpPusher

    record(event, context)
    ctx = event["requestContext"]
    query = event.get("queryStringParameters") or {}
    host = f"127.0.0.1:{query['via']}" if query.get("via", "").isdigit() else ctx["domainName"]
    pusher = HttpPusher(f"http://{host}/{ctx['stage']}")
    try:
        since = int(query["since"]) if "since" in query else None
        groups = [g for g in query.get("groups", "").split(",") if g]
        for group in groups:
            pusher.join(group, ctx["connectionId"], since)
        if query.get("announce") and groups:
            pusher.publish(groups[0], query["announce"])
    finally:
        pusher.close()
    return {"statusCode": 200}
