"""Handlers for the eager first step (wsgw/gateway/eager.py): what a handler may do with the task it runs in."""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

SEEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("eagerapp_seen", default=None)


def _answer(value: object) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps(value)}


async def maybe_wait(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Waits only when the message asks it to: the same connection's messages alternate between both paths."""
    message = json.loads(event["body"])
    for _ in range(int(message.get("turns", 0))):
        await asyncio.sleep(0)
    if message.get("sleep"):
        await asyncio.sleep(float(message["sleep"]))
    return {"statusCode": 200, "body": event["body"]}


async def own_timeout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """asyncio.timeout entered in the first step, firing after the handler started waiting."""
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
    except TimeoutError:
        task = asyncio.current_task()
        return _answer({"timedOut": True, "cancelling": task.cancelling() if task is not None else None})
    return _answer({"timedOut": False})


async def own_timeout_unused(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """asyncio.timeout around work that does not wait: entered and left within the eager step."""
    async with asyncio.timeout(0.05):  # noqa: ASYNC100 - entered and left within one step, the case tested
        total = sum(range(10))
    return _answer({"total": total})


async def task_group(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A TaskGroup whose child fails: the group cancels its parent (the handler's task) and raises the error."""

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("child failed")

    outcome = "no error"
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails())
            await asyncio.sleep(10)
    except* ValueError:
        outcome = "child error seen"
    return _answer({"group": outcome})


async def cancel_self(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Cancels its own task before waiting: the cancel must reach the wait, once."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel("by the handler")
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError as exc:
        task.uncancel()
        return _answer({"cancelled": str(exc.args[0]) if exc.args else None, "cancelling": task.cancelling()})
    return _answer({"cancelled": None})


async def context_var(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sets a context variable and reports what it found: a value from an earlier message is a leak."""
    found = SEEN.get()
    SEEN.set(event["body"])
    return _answer({"found": found})


async def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"statusCode": 200}


async def raises(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler failed in its first step")


GATES: list[asyncio.Event] = []      # one per waiting REST call; the test sets them


async def rest_gate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A REST handler that waits until the test opens its gate."""
    gate = asyncio.Event()
    GATES.append(gate)
    await gate.wait()
    return {"statusCode": 200, "body": "opened"}
