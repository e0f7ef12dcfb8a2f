"""One running node: a built Node (wsgw.server.node.build_node), or a Site of several APIs, stages and
versions (wsgw.server.site), plus its listening sockets; started by the CLI and by tests (port 0)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from wsgw.config import ApiConfig
from wsgw.config.site import SiteConfig
from wsgw.errors import ConfigError
from wsgw.gateway import Gateway
from wsgw.integrations.runtime import runtime_host
from wsgw.observe.access_log import AccessLog
from wsgw.observe.tracing import Tracing
from wsgw.rest.front import RestFront
from wsgw.runtimes import endpoint_alias
from wsgw.server import fdlimit
from wsgw.server.budgets import Budgets
from wsgw.server.dual import DualAcceptor
from wsgw.server.engines import ENGINES
from wsgw.server.listener import HttpConnection, ListenerContext, OpenSocket
from wsgw.server.node import Node, api_host_names
from wsgw.server.router import HttpRouter
from wsgw.server.site import Site

log = logging.getLogger("wsgw.server")


@dataclass(slots=True)
class Urls:
    websocket: str
    connections: str
    health: str


class GatewayServer:
    """Owns the listening sockets; `start()` returns once the node accepts connections.

    `node`, `api`, `gateway`, `rest` and `router` are the first stage's (the only one in the single-API form)."""

    def __init__(self, node: Node | Site) -> None:
        self.site = node if isinstance(node, Site) else Site.of_node(node)
        self.config = self.site.node_config
        self.tls = self.config.tls
        self.dual: DualAcceptor | None = None
        self.duals: list[DualAcceptor] = []
        self.host = self.config.host
        self.port = self.config.port
        self.ports: dict[str, int] = {}          # API name → its own port, once listening
        self.reuse_port = self.config.reuse_port
        self.open_sockets: set[OpenSocket] = set()
        self.contexts: dict[int | None, ListenerContext] = {}
        for port in [*sorted({a.port for a in self.site.routing.apis.values() if a.port}), None]:
            front = self.site.front(port)
            self.contexts[port] = ListenerContext(front.gateway(), front.handle, front.body_limit_for,
                                                  self.open_sockets, front.open_inspector, front.pick,
                                                  Budgets.from_limits(front.gateway().api.limits, self.config.listener),
                                                  ENGINES[self.config.ws_engine])
        self.context = self.contexts[None]
        self.server: asyncio.Server | None = None
        self.servers: list[asyncio.Server] = []
        self._undo_aliases: Callable[[], None] | None = None

    @property
    def node(self) -> Node:
        return self.site.routing.first.node

    @property
    def api(self) -> ApiConfig:
        return self.node.api

    @property
    def gateway(self) -> Gateway:
        return self.node.gateway

    @property
    def rest(self) -> RestFront:
        return self.node.rest

    @property
    def router(self) -> HttpRouter:
        return self.node.router

    @property
    def access(self) -> AccessLog | None:
        """The first stage's access log (each deployment writes its own, opened when it starts)."""
        return self.node.access

    @property
    def tracing(self) -> Tracing | None:
        """The first stage's tracer (each deployment wraps its own entry points when it starts)."""
        return self.node.tracing

    async def reload(self, config: SiteConfig) -> list[str]:
        """Serve `config` from now on (new connections and requests); ConfigError, and nothing changes, when it
        cannot be served. Open connections stay on the version they started on."""
        lines = await self.site.apply(config)
        for port, context in self.contexts.items():
            context.gateway = self.site.front(port).gateway()
        self._reach_by_api_host()
        return lines

    async def start(self) -> None:
        limit = fdlimit.raise_fd_limit(self.config.planned_connections)
        fdlimit.CURRENT[:] = [limit]
        fdlimit.report(limit, self.config.planned_connections)
        await self.site.start()
        for port in self.contexts:
            if port is not None:
                await self._listen(port)
        await self._listen(None)
        self._reach_by_api_host()

    async def _listen(self, port_key: int | None) -> None:
        context = self.contexts[port_key]
        port = self.port if port_key is None else port_key
        loop = asyncio.get_running_loop()
        handshake = self.api.limits.handshake_timeout_seconds
        if self.tls is not None and self.tls.mode == "both":
            sock = socket.create_server((self.host, port), family=_family(self.host),
                                        backlog=self.config.listener.backlog, reuse_port=self.reuse_port)
            dual = DualAcceptor(sock, lambda: HttpConnection(context), self.tls.context, handshake)
            dual.start()
            self.duals.append(dual)
            bound = sock.getsockname()[1]
        else:
            try:
                server = await loop.create_server(
                    lambda: HttpConnection(context), self.host, port,
                    reuse_port=self.reuse_port or None, backlog=self.config.listener.backlog,
                    ssl=self.tls.context if self.tls is not None else None,
                    ssl_handshake_timeout=handshake if self.tls is not None else None,
                )
            except OSError as exc:
                raise ConfigError.single("port" if port_key is None else f"port {port}",
                                         f"cannot listen on {self.host}:{port} ({exc.strerror})") from None
            self.servers.append(server)
            sock = server.sockets[0]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bound = sock.getsockname()[1]
        if port_key is None:
            self.port = bound
            self.server = self.servers[-1] if self.servers and not self.duals else None
            self.dual = self.duals[-1] if self.duals else None
        else:
            for api in self.site.routing.apis.values():
                if api.port == port_key:
                    self.ports[api.name] = bound

    def _reach_by_api_host(self) -> None:
        """With the dev CA (whose certificate names every API's AWS host names), make those names reach the port
        serving the API from handlers: in this process (in-process Python, one table for every API, replaced on
        reload and undone at stop) and in every deployment's runtime processes. Nothing else resolves differently
        (wsgw.runtimes.endpoint_alias; docs/lambda-runtime-api.md)."""
        if self.tls is None or self.tls.dev_ca is None:
            return
        target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        deployments = self.site.live()
        table: dict[str, endpoint_alias.EndpointAlias] = {}
        for deployment in deployments:
            route = self.site.routing.apis.get(deployment.api)
            port = self.ports.get(deployment.api, self.port) if route is not None and route.port else self.port
            for name in api_host_names(deployment.node.api, os.environ):
                other = table.setdefault(name, endpoint_alias.EndpointAlias(name, target, port))
                if other.port != port:
                    log.warning("%s names APIs on ports %d and %d; it reaches port %d (give each API its own "
                                "apiId)", name, other.port, port, other.port)
        aliases = tuple(table.values())
        undo, self._undo_aliases = self._undo_aliases, endpoint_alias.install(aliases)
        if undo is not None:
            undo()
        for deployment in deployments:
            runtime_host(deployment.node.resources).configure(aliases, self.tls.dev_ca)

    @property
    def urls(self) -> Urls:
        host = f"[{self.host}]" if ":" in self.host else self.host
        stage = self.api.stage
        ws, http = ("wss", "https") if self.tls is not None else ("ws", "http")
        return Urls(f"{ws}://{host}:{self.port}/{stage}", f"{http}://{host}:{self.port}/{stage}/@connections",
                    f"{http}://{host}:{self.port}/health")

    async def stop(self) -> None:
        """Stop accepting, close every socket with 1001, run every $disconnect (every stage and version)."""
        for server in self.servers:
            server.close()
        for dual in self.duals:
            await dual.close()
        for conn in list(self.open_sockets):
            conn.shutdown()
        await self.site.stop(self.config.gateway.shutdown_grace_seconds)
        for conn in list(self.open_sockets):
            if conn.transport is not None:
                conn.transport.close()
        for server in self.servers:
            await server.wait_closed()
        if self._undo_aliases is not None:
            self._undo_aliases()
            self._undo_aliases = None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
