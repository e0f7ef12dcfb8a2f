"""Handlers of the benchmark API: as thin as a handler can be, so the figures are wsgw's own cost."""

from __future__ import annotations

import json
from typing import Any


async def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}


async def on_disconnect(event: dict[str, Any], context: Any) -> None:
    return None


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}


def sync_echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}


async def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"connectionId": event["requestContext"]["connectionId"]})}


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A REQUEST authorizer allowing any non-empty token (the cost measured is the authorizer round, not logic)."""
    token = (event.get("queryStringParameters") or {}).get("token", "")
    return {
        "principalId": token or "anonymous",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow" if token else "Deny", "Resource": event["methodArn"]},
        ]},
    }
