"""Handlers for the response cache and parameter mapping tests: every call is counted, so a test can tell a
cache hit (no call) from a miss; the authorizer names the caller by its token and grants cache invalidation
to `admin-*` tokens."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

CALLS: list[dict[str, Any]] = []
LOCK = threading.Lock()
_SEQ = [0]


def reset() -> None:
    with LOCK:
        CALLS.clear()
        GATE.clear()


def calls(path: str | None = None) -> int:
    with LOCK:
        return sum(1 for e in CALLS if path is None or e.get("rawPath") == path)


def counted(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A small fixed amount of work, then an answer that is different on every call (a sequence number)."""
    total = sum(i * i for i in range(200))
    with LOCK:
        CALLS.append(event)
        _SEQ[0] += 1
        seq = _SEQ[0]
    auth = (event.get("requestContext") or {}).get("authorizer") or {}
    body = {"seq": seq, "work": total, "path": event.get("rawPath"), "query": event.get("queryStringParameters"),
            "user": (auth.get("lambda") or {}).get("user"), "headers": event.get("headers")}
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-backend": "counted"},
            "body": json.dumps(body)}


GATE: list[asyncio.Event] = []      # a test puts an Event here; `gated` answers once it is set


async def gated(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Holds the call until the test opens the gate, so concurrent callers of one key overlap for sure."""
    with LOCK:
        CALLS.append(event)
        _SEQ[0] += 1
        seq = _SEQ[0]
    await GATE[0].wait()
    return {"statusCode": 200, "body": json.dumps({"seq": seq})}


def status(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers the status asked for in ?code= (never cached unless 2xx)."""
    with LOCK:
        CALLS.append(event)
        _SEQ[0] += 1
        seq = _SEQ[0]
    code = int((event.get("queryStringParameters") or {}).get("code", "200"))
    return {"statusCode": code, "headers": {"x-backend-id": "b-7"}, "body": json.dumps({"seq": seq, "code": code})}


def cookie(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with LOCK:
        CALLS.append(event)
    return {"statusCode": 200, "cookies": ["session=for-this-caller-only"], "body": "{}"}


def big(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with LOCK:
        CALLS.append(event)
    size = int((event.get("queryStringParameters") or {}).get("size", "10"))
    return {"statusCode": 200, "body": "x" * size}


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Token `user-N` or `admin-N` allowed to invoke (principal = the token); admins also InvalidateCache."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    token = str(headers.get("authorization", ""))
    arn = event.get("routeArn") or event.get("methodArn") or ""
    actions = ["execute-api:Invoke"]
    if token.startswith("admin-"):
        actions.append("execute-api:InvalidateCache")
    if not token.startswith(("user-", "admin-")):
        return {"principalId": token or "anonymous", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn}]}}
    return {"principalId": token, "context": {"user": token},
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": actions, "Effect": "Allow", "Resource": arn}]}}


def ws_counted(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A WebSocket route's answer, different on every call; `{"code": N}` in the message answers status N."""
    with LOCK:
        CALLS.append(event)
        _SEQ[0] += 1
        seq = _SEQ[0]
    auth = (event.get("requestContext") or {}).get("authorizer") or {}
    try:
        message = json.loads(event.get("body") or "")
    except (ValueError, RecursionError):
        message = None
    code = message.get("code", 200) if isinstance(message, dict) else 200
    return {"statusCode": code, "body": json.dumps({"seq": seq, "user": auth.get("user"),
                                                    "route": event["requestContext"]["routeKey"]})}


def ws_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}


async def ws_gated(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A WebSocket route held until the test opens the gate, so concurrent messages of one key overlap."""
    with LOCK:
        CALLS.append(event)
        _SEQ[0] += 1
        seq = _SEQ[0]
    await GATE[0].wait()
    return {"statusCode": 200, "body": json.dumps({"seq": seq})}
