"""How one node runs (as opposed to which API it serves): address, TLS, registry, processes, and the tuning
constants of the listener, the gateway, the Redis link and the REST front — one frozen value, in the manner
of uvicorn's `Config`, so that `wsgw run`, `wsgw check` and tests build a node from the same two values
(ApiConfig, NodeConfig) through `wsgw.server.node.build_node`.

The tuning defaults are the figures the code was measured with. Some modules still read their own module
constants of the same value (tests/test_node_config.py keeps the two equal until they read these fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wsgw.errors import ConfigError
from wsgw.tls.context import TlsSettings

# The frame engines (wsgw/server/engines.py has the class of each): websockets' pure-Python protocol, the
# reference, and picows (Cython). Same handshake, same limits and close codes; picows is faster.
WS_ENGINES = ("websockets", "picows")
DEFAULT_WS_ENGINE = "picows"              # the faster one; both pass the whole suite


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """The HTTP/1.1 and WebSocket protocols' bounds (wsgw/server/listener.py, wsgw/server/websocket.py)."""

    max_head_bytes: int = 16 * 1024          # request line + headers
    max_url_bytes: int = 8 * 1024
    max_queued_bytes: int = 1024 * 1024      # ... or queued request bodies
    max_early_bytes: int = 256 * 1024        # bytes a client may send while its $connect runs
    keepalive_seconds: float = 75.0          # an idle keep-alive HTTP connection is closed after this
    close_handshake_seconds: float = 5.0     # a WebSocket close the peer never answers is aborted after this
    backlog: int = 4096


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The connection lifecycle's internal pacing (wsgw/gateway/inbox.py, deadlines.py, core.py)."""

    inbox_high_water: int = 64               # pause reading from a socket whose messages queue up beyond this
    inbox_low_water: int = 16                # ... and resume at this
    watchdog_seconds: float = 0.025          # integration timeouts are enforced within this
    shutdown_grace_seconds: float = 30.0     # how long a stop waits for every $disconnect
    handler_threads: int = 256               # the pool sync Python handlers run in


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """The Redis link's timeouts and pool (wsgw/registry/redis_link.py)."""

    command_timeout: float = 1.0             # a command that takes longer means Redis is in trouble
    connect_timeout: float = 0.5
    retry_seconds: float = 0.25              # between reconnect attempts


@dataclass(frozen=True, slots=True)
class RestSettings:
    """The REST front's bounds (wsgw/rest/front.py)."""

    max_request_head_bytes: int = 10_240     # AWS HTTP API quota: request line and header values combined


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One node's settings; `port=0` picks a free port (tests), `redis_url=None` is the in-memory registry."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls: TlsSettings | None = None
    redis_url: str | None = None
    workers: int = 1
    reuse_port: bool = False                 # set for each process of `--workers N`
    node_id: str | None = None               # None: node-{pid}-{random}
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    rest: RestSettings = field(default_factory=RestSettings)
    ws_engine: str = DEFAULT_WS_ENGINE       # who parses and writes WebSocket frames: websockets | picows
    planned_connections: int = 100_000       # sockets the node is sized for: its file-descriptor limit is raised
                                             # for them at start, and reported when the OS will not allow it

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError.single("--port", f"{self.port} is not a TCP port (0 picks a free one)")
        if self.ws_engine not in WS_ENGINES:
            raise ConfigError.single("--ws-engine", f"{self.ws_engine!r} is not a WebSocket engine; use one of "
                                     f"{', '.join(WS_ENGINES)}")
        if self.planned_connections < 1:
            raise ConfigError.single("--planned-connections", "must be 1 or more")
        if self.workers < 1:
            raise ConfigError.single("--workers", "must be 1 or more")
        if self.workers > 1 and not self.redis_url:
            raise ConfigError.single("--workers", "several processes need the Redis registry; "
                                     "add --redis redis://HOST:PORT/0")

    @property
    def scheme(self) -> str:
        """How in-process handlers reach this node's own endpoint (WSGW_SCHEME)."""
        return "https" if self.tls is not None else "http"
