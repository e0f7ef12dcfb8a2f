"""One running node: the gateway plus a listening socket; started by the CLI and by tests (port 0)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from wsgw.config import ApiConfig
from wsgw.gateway import Gateway
from wsgw.registry import Registry, open_registry
from wsgw.server.listener import HttpConnection, ListenerContext
from wsgw.server.router import HttpRouter


@dataclass(slots=True)
class Urls:
    websocket: str
    connections: str
    health: str


class GatewayServer:
    """Owns the listening socket; `start()` returns once the node accepts connections."""

    def __init__(self, api: ApiConfig, host: str = "127.0.0.1", port: int = 8080,
                 registry: Registry | None = None, redis_url: str | None = None,
                 reuse_port: bool = False, node_id: str | None = None) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.gateway = Gateway(api, registry or open_registry(redis_url), node_id=node_id)
        self.router = HttpRouter(self.gateway)
        self.open_sockets: set[HttpConnection] = set()
        self.context = ListenerContext(self.gateway, self.router.handle, self.router.body_limit_for,
                                       self.open_sockets)
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        await self.gateway.start()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: HttpConnection(self.context), self.host, self.port,
            reuse_port=self.reuse_port or None, backlog=4096,
        )
        sock = self.server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = sock.getsockname()[1]

    @property
    def urls(self) -> Urls:
        host = f"[{self.host}]" if ":" in self.host else self.host
        stage = self.api.stage
        return Urls(f"ws://{host}:{self.port}/{stage}", f"http://{host}:{self.port}/{stage}/@connections",
                    f"http://{host}:{self.port}/health")

    async def stop(self) -> None:
        """Stop accepting, close every socket with 1001, run every $disconnect."""
        if self.server is not None:
            self.server.close()
        for conn in list(self.open_sockets):
            conn.shutdown()
        await self.gateway.shutdown()
        await self.router.rest.close()
        for conn in list(self.open_sockets):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
