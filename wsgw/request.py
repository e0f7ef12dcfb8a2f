"""One HTTP/1.1 request as the listener parsed it: the one request type of both fronts. Pure.

A WebSocket handshake is a GET with `Upgrade: websocket`; the $connect flow and the REST front read
the same value, so neither front has its own request or header shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsgw.headers import Headers


@dataclass(slots=True)
class HttpRequest:
    method: str
    raw_path: str                 # still percent-encoded, without the query
    query_string: str
    headers: Headers
    body: bytes
    source_ip: str
    keep_alive: bool = True
    http_version: str = "1.1"
    domain_name: str = ""         # what requestContext.domainName says: see listener.trusted_domain

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def protocol(self) -> str:
        """`HTTP/1.1` as payload 2.0 events spell it."""
        return f"HTTP/{self.http_version}"
