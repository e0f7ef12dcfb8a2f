"""One running node: the gateway plus a listening socket; started by the CLI and by tests (port 0)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

from wsgw.config import ApiConfig
from wsgw.gateway import Gateway
from wsgw.registry import Registry, open_registry
from wsgw.server.budgets import Budgets
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
        self.router = HttpRouter(self.gateway)
        self.open_sockets: set[OpenSocket] = set()
        self.context = ListenerContext(self.gateway, self.router.handle, self.router.body_limit_for,
                                       self.open_sockets, Budgets.from_limits(api.limits))
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
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
        await self.router.rest.close()
        for conn in list(self.open_sockets):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
        while self._undo_env:
            self._undo_env.pop()()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
