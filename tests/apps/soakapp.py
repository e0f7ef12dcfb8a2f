"""Handlers for `make soak`: testapp's without the recording (testapp keeps every event in memory, which a
soak would report as growth)."""

from __future__ import annotations

from typing import Any


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}
