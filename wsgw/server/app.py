"""One running node: the gateway plus a listening socket; started by the CLI and by tests (port 0)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

from wsgw.config import ApiConfig
from wsgw.gateway import Gateway
from wsgw.http_config import parse_http
from wsgw.observe.access_log import AccessLog
from wsgw.observe.settings import TracingSettings
from wsgw.observe.tracing import Tracing
from wsgw.registry import Registry, open_registry
from wsgw.rest.front import RestFront
from wsgw.server.dual import DualAcceptor
from wsgw.server.listener import HttpConnection, ListenerContext, OpenSocket
from wsgw.server.router import HttpRouter
from wsgw.tls import TlsSettings
from wsgw.tls.trust import patch_environment, trust_in_process


@dataclass(slots=True)
class Urls:
    websocket: str
    connections: str
    health: str


class GatewayServer:
    """Owns the listening socket; `start()` returns once the node accepts connections."""

    def __init__(self, api: ApiConfig, host: str = "127.0.0.1", port: int = 8080,
                 registry: Registry | None = None, redis_url: str | None = None,
                 reuse_port: bool = False, node_id: str | None = None, tls: TlsSettings | None = None) -> None:
        self.api = api
        self.tls = tls
        self.dual: DualAcceptor | None = None
        self._undo_env: list[Callable[[], None]] = []
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.gateway = Gateway(api, registry or open_registry(redis_url), node_id=node_id)
        gateway = self.gateway
        self.rest = RestFront(api, parse_http(api), resources=gateway.resources, authorizers=gateway.authorizers,
                              throttle=gateway.throttle, metrics=gateway.metrics, deadline=gateway.deadlines.within)
        self.access = access_log_for(api)
        gateway.use_access_log(self.access)
        self.rest.access = self.access
        self.tracing = self._traced(api.observe.tracing)
        self.router = HttpRouter(gateway, self.rest)
        self.open_sockets: set[OpenSocket] = set()
        self.context = ListenerContext(self.gateway, self.router.handle, self.router.body_limit_for,
                                       self.open_sockets)
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.access is not None:
            self.access.start()
        await self.gateway.start()
        self._export_scheme()
        loop = asyncio.get_running_loop()
        if self.tls is not None and self.tls.mode == "both":
            sock = socket.create_server((self.host, self.port), family=_family(self.host), backlog=4096,
                                        reuse_port=self.reuse_port)
            self.dual = DualAcceptor(sock, lambda: HttpConnection(self.context), self.tls.context,
                                     self.api.limits.handshake_timeout_seconds)
            self.dual.start()
            self.port = sock.getsockname()[1]
            return
        self.server = await loop.create_server(
            lambda: HttpConnection(self.context), self.host, self.port,
            reuse_port=self.reuse_port or None, backlog=4096,
            ssl=self.tls.context if self.tls is not None else None,
            ssl_handshake_timeout=self.api.limits.handshake_timeout_seconds if self.tls is not None else None,
        )
        sock = self.server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]

    def _export_scheme(self) -> None:
        """Tell in-process handlers how this node's own endpoint is reached, and trust the dev CA."""
        scheme = "https" if self.tls is not None else "http"
        self._undo_env.append(patch_environment({"WSGW_SCHEME": scheme}))
        if self.tls is not None and self.tls.dev_ca is not None:
            self._undo_env.append(trust_in_process(self.tls.dev_ca))

    @property
    def urls(self) -> Urls:
        host = f"[{self.host}]" if ":" in self.host else self.host
        stage = self.api.stage
        ws, http = ("wss", "https") if self.tls is not None else ("ws", "http")
        return Urls(f"{ws}://{host}:{self.port}/{stage}", f"{http}://{host}:{self.port}/{stage}/@connections",
                    f"{http}://{host}:{self.port}/health")

    async def stop(self) -> None:
        """Stop accepting, close every socket with 1001, run every $disconnect."""
        if self.server is not None:
            self.server.close()
        if self.dual is not None:
            await self.dual.close()
        for conn in list(self.open_sockets):
            conn.shutdown()
        await self.gateway.shutdown()
        await self.rest.close()
        for conn in list(self.open_sockets):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
        if self.access is not None:         # after every $disconnect: their lines are written too
            await asyncio.to_thread(self.access.stop)
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.close)

    def _traced(self, settings: TracingSettings | None) -> Tracing | None:
        """With `tracing:` set, wrap the entry points in spans: connect, message, integration call, push and
        REST request (the otel extra is imported only here)."""
        if settings is None:
            return None
        tracing = Tracing(settings)
        gateway, dispatcher = self.gateway, self.gateway.dispatcher
        gateway.connect = tracing.wrap("websocket.connect", gateway.connect)  # type: ignore[method-assign, assignment]
        gateway.inboxes.handle_message = tracing.wrap(
            "websocket.message", gateway.inboxes.handle_message,
            lambda conn, *_: {"wsgw.connection_id": conn.info.connection_id})
        dispatcher.invoke = tracing.wrap(  # type: ignore[method-assign, assignment]
            "integration.call", dispatcher.invoke, lambda route, *_: {"wsgw.route_key": route.key})
        gateway.post = tracing.wrap(  # type: ignore[method-assign, assignment]
            "websocket.push", gateway.post, lambda connection_id, *_: {"wsgw.connection_id": connection_id})
        self.rest.handle = tracing.wrap(  # type: ignore[method-assign, assignment]
            "http.request", self.rest.handle, lambda request, *_: {"http.method": request.method})
        return tracing
        while self._undo_env:
            self._undo_env.pop()()


def access_log_for(api: ApiConfig) -> AccessLog | None:
    """The stage's access log when `accessLogSettings` is set; its lines name the API and stage."""
    settings = api.observe.access_log
    if settings is None:
        return None
    return AccessLog(settings, {"apiId": api.api_id, "stage": api.stage, "accountId": api.account_id},
                     api.base_dir)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
