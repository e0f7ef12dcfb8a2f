"""A Lambda-style TOKEN authorizer as AWS's blueprint writes one: the token picks the answer; calls recorded."""

from __future__ import annotations

import threading
from typing import Any

CALLS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def reset() -> None:
    with LOCK:
        CALLS.clear()


def policy(effect: str, resource: str, principal: str = "user-7") -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17",
                           "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
        "context": {"tier": "gold", "n": 3},
    }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    with LOCK:
        CALLS.append(event)
    token = event["authorizationToken"].removeprefix("Bearer ")
    if token in ("allow", "allow2"):
        return policy("Allow", event["methodArn"])
    if token == "deny":
        return policy("Deny", event["methodArn"])
    if token == "unauthorized":
        raise Exception("Unauthorized")
    raise Exception("Error: Invalid token")
