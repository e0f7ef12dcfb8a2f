"""REQUEST authorizers the tests route to: the token (header or query) picks the answer; calls are recorded."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

CALLS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def reset() -> None:
    with LOCK:
        CALLS.clear()


def calls() -> int:
    with LOCK:
        return len(CALLS)


def _policy(effect: str, resource: str | list[str], principal: str = "user-1",
            context: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if context is not None:
        result["context"] = context
    return result


def _token(event: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    query = event.get("queryStringParameters") or {}
    return str(headers.get("authorization") or query.get("token") or "")


def _api_prefix(arn: str) -> str:
    """arn:aws:execute-api:region:account:api/stage/ — the part before the route."""
    api_and_stage = arn.rsplit("/", 1)[0]
    return api_and_stage + "/"


def decide(event: dict[str, Any], context: Any) -> dict[str, Any] | object:
    """Sync, like most Lambda authorizers; answers by token."""
    with LOCK:
        CALLS.append(event)
    token = _token(event)
    arn = event.get("methodArn") or event.get("routeArn") or ""
    if token == "allow":
        return _policy("Allow", arn, context={"user": "ada", "level": 3, "admin": False})
    if token == "deny":
        return _policy("Deny", arn)
    if token == "deny-wins":
        return {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn}]}}
    if token == "wildcard":
        return _policy("Allow", ["arn:aws:execute-api:us-east-1:000000000000:other/*", _api_prefix(arn) + "*"])
    if token == "other-route":
        return _policy("Allow", _api_prefix(arn) + "sendmessage")
    if token == "unauthorized":
        raise Exception("Unauthorized")
    if token == "boom":
        raise RuntimeError("authorizer exploded: secret detail")
    if token == "nested":
        return _policy("Allow", arn, context={"user": {"name": "ada"}})
    if token == "garbage":
        return ["not", "a", "policy"]
    if token == "no-statement":
        return {"principalId": "u"}
    return _policy("Deny", arn)


async def decide_async(event: dict[str, Any], context: Any) -> dict[str, Any] | object:
    return decide(event, context)


async def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with LOCK:
        CALLS.append(event)
    await asyncio.sleep(3600)
    return {}


def simple(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The HTTP API simple response, for the REST form of the event."""
    with LOCK:
        CALLS.append(event)
    return {"isAuthorized": event["identitySource"] == ["letmein"], "context": {"tier": {"name": "gold"}}}


def _stage_prefix(arn: str) -> str:
    """arn:aws:execute-api:region:account:api/stage/ — whatever method and path follow."""
    head, _, tail = arn.rpartition(":")
    api, stage = tail.split("/")[:2]
    return f"{head}:{api}/{stage}/"


def admin_denied(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow the whole stage except `GET /admin/*`: the IAM shape the percent-encoding bypass broke."""
    with LOCK:
        CALLS.append(event)
    prefix = _stage_prefix(event.get("methodArn") or event.get("routeArn") or "")
    return {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": prefix + "*"},
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": prefix + "GET/admin/*"}]}}


def http_simple_ws_deny(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """REST (routeArn): a simple "yes" with a nested context; WebSocket (methodArn): a Deny policy."""
    with LOCK:
        CALLS.append(event)
    if "routeArn" in event:
        return {"isAuthorized": True, "context": {"tier": {"name": "gold"}}}
    return _policy("Deny", event["methodArn"])


def allow_by_query(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow everyone; the principal is ?user= (groups and listing by principal use it)."""
    query = event.get("queryStringParameters") or {}
    return _policy("Allow", event["methodArn"], principal=str(query.get("user") or "anonymous"))
