"""A plain HTTP/1.1 response serialised by hand (fast, no framework); the request is wsgw.request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

from wsgw.rest.events import FRAMING_HEADERS

SERVER_HEADER = b"wsgw"
_BREAKS = re.compile(r"[\r\n]")
_BARE: dict[tuple[int, bool, bool], bytes] = {}     # (status, keep-alive, HEAD) → a bodiless, headerless answer


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
        return cls(status, orjson.dumps(payload), [("Content-Type", "application/json"), *(headers or [])])

    @classmethod
    def aws_error(cls, status: int, error_type: str, message: str | None) -> HttpResponse:
        """An AWS rest-json error: botocore reads the code from x-amzn-ErrorType first."""
        body = b"" if message is None else orjson.dumps({"message": message})
        headers = [("x-amzn-ErrorType", error_type)]
        if message is not None:
            headers.append(("Content-Type", "application/json"))
        return cls(status, body, headers)

    def serialize(self, keep_alive: bool, head_only: bool = False) -> bytes:
        if not self.body and not self.headers:      # a push's 200, a 204: the same bytes every time
            key = (self.status, keep_alive, head_only)
            bare = _BARE.get(key)
            if bare is None:
                bare = _BARE[key] = self._serialize(keep_alive, head_only)
            return bare
        return self._serialize(keep_alive, head_only)

    def _serialize(self, keep_alive: bool, head_only: bool) -> bytes:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Status"
        lines = [f"HTTP/1.1 {self.status} {phrase}".encode("latin-1")]
        for name, value in self.headers:
            # The framing is ours alone: a length, transfer coding or connection header from elsewhere, or
            # a line break that would start a header of its own, never reaches the wire.
            if name.lower() in FRAMING_HEADERS or _BREAKS.search(name) or _BREAKS.search(value):
                continue
            lines.append(f"{name}: {value}".encode("latin-1", "replace"))
        if self.status >= 200 and self.status not in (204, 304):
            lines.append(b"Content-Length: %d" % len(self.body))
        if not keep_alive:
            lines.append(b"Connection: close")
        lines.append(b"Server: " + SERVER_HEADER)
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        return head if head_only or self.status in (204, 304) else head + self.body


def plain_error(status: int, message: str) -> HttpResponse:
    """A JSON error body for our own (non-AWS-API) endpoints."""
    return HttpResponse.json(status, {"message": message})
