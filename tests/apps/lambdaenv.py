"""Reports the Lambda-like environment a handler sees; module state counts calls, as in a warm Lambda."""

from __future__ import annotations

import json
import os
from typing import Any

NAMES = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
         "AWS_EXECUTION_ENV", "AWS_REGION", "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_LAMBDA_LOG_GROUP_NAME",
         "GREETING", "SHARED", "ROUTE_ONLY")
AT_IMPORT = {name: os.environ.get(name) for name in NAMES}
CALLS = {"count": 0}


def _report(context: Any) -> dict[str, Any]:
    CALLS["count"] += 1
    return {"statusCode": 200, "body": json.dumps({
        "env": {name: os.getenv(name) for name in NAMES},
        "in_listing": "ROUTE_ONLY" in dict(os.environ),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "calls": CALLS["count"],
    })}


def report(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _report(context)


async def report_async(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _report(context)


def at_import(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps(AT_IMPORT)}


BARRIER = __import__("threading").Barrier(2, timeout=10)


def meet_then_report(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Two of these run at once in different pool threads; each must still see its own function's values."""
    BARRIER.wait()
    return {"statusCode": 200, "body": json.dumps([os.environ["AWS_LAMBDA_FUNCTION_NAME"], os.getenv("ROUTE_ONLY")])}
