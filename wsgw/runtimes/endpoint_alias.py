"""AWS's own endpoint for an API, `{apiId}.execute-api.{region}.amazonaws.com`, reaching this gateway.

Handlers build that URL from their event (`https://{domainName}/{stage}`, AWS's chat sample "to account for
custom domains") and post to `@connections` there. Instead of editing /etc/hosts or DNS, wsgw makes exactly
those host names resolve to the gateway inside the processes that run handlers, and nothing else:

- in this interpreter (in-process Python handlers, and Python runtime processes): `install()` wraps
  `socket.getaddrinfo`, which boto3/botocore, urllib3, requests, urllib, http.client and asyncio's default
  loop resolve through. For an aliased name it answers the gateway's address *and port* (the SDKs ask for
  443), so the connection lands on the gateway while TLS still checks the certificate against the name
  (the gateway's certificate from the local CA names it: wsgw.tls.devca). Every other name, and every
  address, is passed to the original function unchanged. uvloop's own resolver does not go through
  `socket.getaddrinfo`, so asyncio clients on a uvloop loop (aiohttp) are not covered;
- in Node.js runtime processes: `node/endpoint-alias.mjs`, given the same table in `ENV_VARIABLE`.

Pure parsing and formatting up here; the one process-wide effect is `install()`, undone by what it returns.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ENV_VARIABLE",
    "EndpointAlias",
    "alias_for",
    "execute_api_host",
    "format_aliases",
    "install",
    "parse_aliases",
]

ENV_VARIABLE = "WSGW_ENDPOINT_ALIASES"
"""How runtime processes get the table: `name=host:port[,name=host:port…]`."""

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def execute_api_host(api_id: str, region: str) -> str:
    """AWS's host name for an API: `{apiId}.execute-api.{region}.amazonaws.com`."""
    return canonical(f"{api_id}.execute-api.{region}.amazonaws.com")


def canonical(name: str) -> str:
    """A host name as compared here: lower case, without the trailing dot of a fully qualified name."""
    return name.lower().removesuffix(".")


@dataclass(frozen=True, slots=True)
class EndpointAlias:
    """Connections to `name` (any port) go to `host:port` on this machine instead."""

    name: str
    host: str
    port: int

    def __post_init__(self) -> None:
        name = canonical(self.name)
        if not all(_LABEL.fullmatch(label) for label in name.split(".")) or "." not in name:
            raise ValueError(f"endpoint alias: {self.name!r} is not a host name")
        if not 0 < self.port < 65536:
            raise ValueError(f"endpoint alias: port {self.port} out of range")
        if not self.host or "," in self.host or "=" in self.host:
            raise ValueError(f"endpoint alias: bad target host {self.host!r}")
        object.__setattr__(self, "name", name)

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def format_aliases(aliases: Iterable[EndpointAlias]) -> str:
    """The `ENV_VARIABLE` value for `aliases`."""
    return ",".join(f"{alias.name}={alias.target}" for alias in aliases)


def parse_aliases(text: str) -> tuple[EndpointAlias, ...]:
    """`format_aliases` backwards; ValueError names the bad entry."""
    aliases: list[EndpointAlias] = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        name, eq, target = entry.strip().partition("=")
        host, colon, port = target.rpartition(":")
        if not (eq and colon and port.isdigit()):
            raise ValueError(f"{ENV_VARIABLE}: bad entry {entry!r} (want name=host:port)")
        aliases.append(EndpointAlias(name, host.removeprefix("[").removesuffix("]"), int(port)))
    return tuple(aliases)


# -- the process-wide hook ------------------------------------------------------------------------------------

_LOCK = threading.Lock()
_TABLE: Mapping[str, EndpointAlias] = MappingProxyType({})    # replaced whole, so readers need no lock
_INSTALLS: list[tuple[EndpointAlias, ...]] = []
_ORIGINAL: Callable[..., Any] | None = None


def alias_for(name: object) -> EndpointAlias | None:
    """The alias installed for host `name` (str or bytes, as getaddrinfo takes it), if any."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str) or not _TABLE:
        return None
    return _TABLE.get(canonical(name))


def _getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                 flags: int = 0) -> list[tuple[Any, ...]]:
    original = _ORIGINAL if _ORIGINAL is not None else socket.getaddrinfo
    alias = alias_for(host)
    if alias is None:
        return original(host, port, family, type, proto, flags)
    return original(alias.host, alias.port, family, type, proto, flags)


def install(aliases: Iterable[EndpointAlias]) -> Callable[[], None]:
    """Make `aliases` resolve to their targets in this process; the returned function takes them out again.

    Installs may nest (several APIs, tests); a later install of the same name wins until it is undone. When
    the last one is undone, `socket.getaddrinfo` is the original function again (unless someone wrapped it
    after us, in which case ours stays in the chain and passes everything through).
    """
    global _ORIGINAL
    entry = tuple(aliases)
    with _LOCK:
        _INSTALLS.append(entry)
        _rebuild()
        if _ORIGINAL is None:
            _ORIGINAL = socket.getaddrinfo
            socket.getaddrinfo = _getaddrinfo
    done = False

    def undo() -> None:
        nonlocal done
        global _ORIGINAL
        with _LOCK:
            if done:
                return
            done = True
            _INSTALLS.remove(entry)
            _rebuild()
            if not _INSTALLS and _ORIGINAL is not None and socket.getaddrinfo is _getaddrinfo:
                socket.getaddrinfo = _ORIGINAL
                _ORIGINAL = None

    return undo


def _rebuild() -> None:
    global _TABLE
    table = {alias.name: alias for entry in _INSTALLS for alias in entry}
    _TABLE = MappingProxyType(table)
