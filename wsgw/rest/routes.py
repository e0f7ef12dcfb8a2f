"""HTTP API route keys ("GET /rooms/{name}", "ANY /files/{proxy+}", "$default") and matching. Pure.

AWS picks the most specific match: a full match of path and method first, then a route with a greedy
path variable, then `$default` (AWS developer guide, "Routing API requests" for HTTP APIs). Here a
route's specificity is compared segment by segment from the left (literal > `{var}` > `{var+}`); on
equal paths a named method beats `ANY`. A path that matches only with another method is a 404, as on AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
DEFAULT_ROUTE = "$default"
_VARIABLE = re.compile(r"^\{([A-Za-z0-9._-]+)(\+?)\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9._~:@!$&'()*,;=-]+$")

_LITERAL_RANK, _VARIABLE_RANK, _GREEDY_RANK = 2, 1, 0


class RouteKeyError(ValueError):
    """A route key that cannot be served; the message says how to write it."""


class BadPath(ValueError):
    """A request path that cannot be decoded or would escape its route (client error, 400)."""


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A parsed route key: method (or ANY), literal/variable segments, and its specificity."""

    key: str
    method: str                      # "ANY" matches every method; "" for $default
    segments: tuple[tuple[int, str], ...]   # (rank, literal text or variable name)

    @property
    def is_default(self) -> bool:
        return self.key == DEFAULT_ROUTE

    @property
    def rank(self) -> tuple[tuple[int, ...], int]:
        return tuple(r for r, _ in self.segments), 0 if self.method == "ANY" else 1


def parse_route_key(key: str) -> RoutePattern:
    """'$default' or 'METHOD /path' with {var} segments and an optional last {var+}."""
    if key == DEFAULT_ROUTE:
        return RoutePattern(key, "", ())
    method, sep, path = key.partition(" ")
    if not sep or method not in METHODS:
        raise RouteKeyError("write 'METHOD /path' (METHOD one of " + ", ".join(sorted(METHODS))
                            + ") or '$default'")
    if not path.startswith("/") or " " in path:
        raise RouteKeyError("the path must start with '/' and hold no spaces, e.g. 'GET /rooms/{name}'")
    segments: list[tuple[int, str]] = []
    names: set[str] = set()
    parts = path[1:].split("/") if path != "/" else []
    for index, part in enumerate(parts):
        variable = _VARIABLE.match(part)
        if variable:
            name, greedy = variable.group(1), variable.group(2) == "+"
            if greedy and index != len(parts) - 1:
                raise RouteKeyError(f"the greedy variable {{{name}+}} must be the last path segment")
            if name in names:
                raise RouteKeyError(f"the path variable {{{name}}} appears twice")
            names.add(name)
            segments.append((_GREEDY_RANK if greedy else _VARIABLE_RANK, name))
        elif part and _LITERAL.match(part):
            segments.append((_LITERAL_RANK, part))
        else:
            raise RouteKeyError(f"'{part}' is not a path segment: use letters, digits, -._~ or a {{variable}}; "
                                "no empty segments (no '//' and no trailing '/')")
    return RoutePattern(key, method, tuple(segments))


_HEX = frozenset("0123456789abcdefABCDEF")


def decode_component(text: str, what: str = "path") -> str:
    """Strict percent-decoding (UTF-8): a malformed escape or invalid UTF-8 is BadPath, not a guess."""
    if "%" not in text and text.isascii():
        return text
    out = bytearray()
    i = 0
    try:
        raw = text.encode("latin-1")      # the listener decoded the request line as latin-1: these are its bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    while i < len(raw):
        byte = raw[i]
        if byte == 0x25:  # '%'
            pair = raw[i + 1:i + 3].decode("latin-1")
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise BadPath(f"invalid percent-encoding in the {what}: '%{pair}'")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath(f"the {what} is not valid UTF-8 once percent-decoded") from None


def split_path(raw_path: str) -> list[str]:
    """'/a/b%20c' → ['a', 'b c']; '/' → []. Rejects traversal ('.', '..') and NUL bytes."""
    if raw_path in ("", "/"):
        return []
    segments = [decode_component(part) for part in raw_path[1:].split("/")]
    for segment in segments:
        if "\x00" in segment:
            raise BadPath("the path holds a NUL byte")
        if segment in (".", "..") or any(piece in (".", "..") for piece in segment.split("/")):
            raise BadPath("the path holds a '.' or '..' segment")
    return segments


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[T]):
    pattern: RoutePattern
    value: T
    path_parameters: dict[str, str]


class RouteTable(Generic[T]):
    """Routes compiled once; `match` returns the most specific route for (method, decoded segments)."""

    def __init__(self, routes: list[tuple[RoutePattern, T]]) -> None:
        self.default: tuple[RoutePattern, T] | None = None
        ordered: list[tuple[RoutePattern, T]] = []
        for pattern, value in routes:
            if pattern.is_default:
                self.default = (pattern, value)
            else:
                ordered.append((pattern, value))
        ordered.sort(key=lambda item: item[0].rank, reverse=True)   # most specific first
        self.routes = ordered

    def __bool__(self) -> bool:
        return bool(self.routes) or self.default is not None

    def match(self, method: str, segments: list[str]) -> RouteMatch[T] | None:
        for pattern, value in self.routes:
            if pattern.method != "ANY" and pattern.method != method:
                continue
            params = _bind(pattern, segments)
            if params is not None:
                return RouteMatch(pattern, value, params)
        if self.default is not None:
            return RouteMatch(self.default[0], self.default[1], {})
        return None


def _bind(pattern: RoutePattern, segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    count = len(pattern.segments)
    for index, (rank, text) in enumerate(pattern.segments):
        if rank == _GREEDY_RANK:
            rest = segments[index:]
            if not rest or not all(rest):         # a greedy variable takes at least one non-empty segment
                return None
            params[text] = "/".join(rest)
            return params
        if index >= len(segments):
            return None
        segment = segments[index]
        if rank == _LITERAL_RANK:
            if segment != text:
                return None
        elif not segment:
            return None
        else:
            params[text] = segment
    return params if len(segments) == count else None
