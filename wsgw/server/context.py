"""What every TCP connection of one node shares, whichever protocol serves it at the moment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from wsgw.gateway import Gateway
from wsgw.request import HttpRequest
from wsgw.server.budgets import Budgets
from wsgw.server.http import HttpResponse

if TYPE_CHECKING:
    from wsgw.server.websocket import WebSocketSocket


class OpenSocket(Protocol):
    """A socket the node still has open (HTTP or, after the upgrade, WebSocket)."""

    @property
    def transport(self) -> asyncio.Transport | None: ...

    def shutdown(self) -> None:
        """The node is stopping: close now if idle (WebSockets are closed by the gateway)."""
        ...


# (upgrade request, transport, bytes already read, open sockets) → the refusal to answer, or None once a management
# WebSocket (the inspector, wsgw/server/inspector.py) took the transport over
OpenManagement = Callable[[HttpRequest, asyncio.Transport, bytes, set[OpenSocket]], HttpResponse | None]


@dataclass(slots=True)
class ListenerContext:
    gateway: Gateway                  # the port's settings and HTTP metrics (its first stage's gateway)
    handle_http: Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]
    body_limit_for: Callable[[str], tuple[int, HttpResponse]]   # raw path → (limit, 413 response)
    open_sockets: set[OpenSocket]
    open_inspector: OpenManagement | None = None                # upgrades to /{stage}/@inspect/ws
    # the gateway an upgrade request is served by (its API, stage and version), or the refusal (404)
    pick: Callable[[HttpRequest], Gateway | HttpResponse] | None = None
    budgets: Budgets = field(default_factory=Budgets)
    engine: type[WebSocketSocket] | None = None                 # the frame engine (None: the reference one)
