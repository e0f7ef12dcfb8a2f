"""What every consumer shares: delivering one push with the semantics of POST @connections (delivered / gone,
forwarded through the registry to the node holding the connection) or of a group publish."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from wsgw.consumers.push import Poison, Push, read_push

log = logging.getLogger("wsgw.consumers")


class PushTarget(Protocol):
    """The gateway, as the consumers see it."""

    async def post(self, connection_id: str, data: bytes) -> bool: ...

    async def publish_group(self, group: str, data: bytes, exclude: str | None) -> int: ...


class Consumer(Protocol):
    """One source of pushes, started after the gateway and stopped before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NodePlace:
    """What a consumer may need of the node it runs in: the registry's Redis (None off Redis) and the node's id."""

    registry_url: str | None
    node_id: str


async def deliver(target: PushTarget, push: Push) -> int | bool:
    """True/False (delivered/gone) for a connection, the number of sockets for a group. Raises when the
    registry cannot say (the push is not acknowledged, so it comes again)."""
    # As for POST @connections: bytes that are UTF-8 go out as a text frame, others as binary.
    if push.connection_id is not None:
        return await target.post(push.connection_id, push.data)
    assert push.group is not None
    return await target.publish_group(push.group, push.data, None)


async def take(payload: bytes, headers: Mapping[str, str], max_bytes: int,
               dead: Callable[[str], Awaitable[None]]) -> Push | None:
    """The push in a message; None once a poison one was handed to `dead` with its reason (never retried)."""
    try:
        return read_push(payload, headers, max_bytes)
    except Poison as exc:
        await dead(str(exc))
        return None
