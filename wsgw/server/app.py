"""One running node: a built Node (wsgw.server.node.build_node) plus a listening socket; started by the CLI
and by tests (port 0)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from wsgw.server.budgets import Budgets
from wsgw.server.dual import DualAcceptor
from wsgw.server.listener import HttpConnection, ListenerContext, OpenSocket
from wsgw.server.node import Node


@dataclass(slots=True)
class Urls:
    websocket: str
    connections: str
    health: str


class GatewayServer:
    """Owns the listening socket; `start()` returns once the node accepts connections."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api = node.api
        self.config = node.config
        self.tls = node.config.tls
        self.dual: DualAcceptor | None = None
        self.host = node.config.host
        self.port = node.config.port
        self.reuse_port = node.config.reuse_port
        self.gateway = node.gateway
        self.rest = node.rest
        self.router = node.router
        self.open_sockets: set[OpenSocket] = set()
        self.context = ListenerContext(self.gateway, self.router.handle, self.router.body_limit_for,
                                       self.open_sockets, Budgets.from_limits(self.api.limits, self.config.listener))
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.node.trust is not None:
            self.node.trust.write()          # the file handlers' AWS_CA_BUNDLE points at
        await self.gateway.start()
        loop = asyncio.get_running_loop()
        if self.tls is not None and self.tls.mode == "both":
            sock = socket.create_server((self.host, self.port), family=_family(self.host),
                                        backlog=self.config.listener.backlog, reuse_port=self.reuse_port)
            self.dual = DualAcceptor(sock, lambda: HttpConnection(self.context), self.tls.context,
                                     self.api.limits.handshake_timeout_seconds)
            self.dual.start()
            self.port = sock.getsockname()[1]
            return
        self.server = await loop.create_server(
            lambda: HttpConnection(self.context), self.host, self.port,
            reuse_port=self.reuse_port or None, backlog=self.config.listener.backlog,
            ssl=self.tls.context if self.tls is not None else None,
            ssl_handshake_timeout=self.api.limits.handshake_timeout_seconds if self.tls is not None else None,
        )
        sock = self.server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]

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
        await self.gateway.shutdown(self.config.gateway.shutdown_grace_seconds)
        await self.rest.close()
        for conn in list(self.open_sockets):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
