"""The in-process handler of examples/integrations.yaml: answers with the message it got."""

from __future__ import annotations

from typing import Any


async def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}
