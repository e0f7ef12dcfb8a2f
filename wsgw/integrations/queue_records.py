"""What the queue integrations (`redis_stream`, `nats`, `amqp`) share: the record they publish (the body, or a
template's output, plus the identity as fields/headers), the answer a route response gets once the broker took
it, and one connection per broker URL shared by the node's routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import orjson

from wsgw.aws.templates import Template, TemplateError
from wsgw.integrations.base import IntegrationFailed, Resources
from wsgw.integrations.records import body_bytes, body_text, identity

C = TypeVar("C")


def record(event: dict[str, Any], template: Template | None, what: str) -> tuple[bytes, dict[str, str]]:
    """The payload (body as sent, or the template rendered over it) and the identity fields."""
    fields = identity(event)
    if template is None:
        if event.get("isBase64Encoded"):
            fields["isBase64Encoded"] = "true"      # the payload is the binary frame itself
        return body_bytes(event), fields
    try:
        rendered = template.render(body_text(event), event.get("requestContext") or {},
                                   event.get("stageVariables") or {})
    except TemplateError as exc:
        raise IntegrationFailed(f"{what}: template: {exc}") from None
    return rendered.encode(), fields


def queued(broker_id: str | int | None) -> dict[str, Any]:
    """The route's answer once the broker confirmed: `{"queued": true, "id": …}`."""
    body: dict[str, Any] = {"queued": True}
    if broker_id is not None:
        body["id"] = broker_id
    return {"statusCode": 200, "body": orjson.dumps(body).decode()}


class Shared(Generic[C]):
    """One client per broker URL for the whole node (kept in Resources.shared, closed with it); opened on first
    use, inside the running loop; a failed open is retried by the next call."""

    def __init__(self, open_client: Callable[[], Awaitable[C]], close_client: Callable[[C], Awaitable[None]]) -> None:
        self._open = open_client
        self._close = close_client
        self._client: C | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> C:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                self._client = await self._open()
        return self._client

    def forget(self) -> None:
        self._client = None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._close(client)


def shared(resources: Resources, key: str, make: Callable[[], Shared[C]]) -> Shared[C]:
    found = resources.shared.get(key)
    if found is None:
        found = resources.shared[key] = make()
    assert isinstance(found, Shared)
    return found
