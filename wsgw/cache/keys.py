"""Cache keys of REST answers and WebSocket route responses, pure: what makes two requests "the same".

A key is the SHA-256 of a length-prefixed encoding of: the route key, the method, the decoded path (every
path parameter, always: wsgw never lets `/pets/1` answer `/pets/2`), the values of the route's
`cacheKeyParameters` (query strings and headers it names, a missing one distinct from an empty one), and the
caller's principal unless the route shares answers between callers. Hashing keeps keys short whatever a client
sends (huge headers, many parameters) and makes no value able to forge another's key.

A WebSocket message's key (`ws_cache_key`) is the same kind of hash over: a marker that it is a message, the
route key, the frame kind (text or binary), the values at the route's `$request.body` paths (or the whole body
when the route names none, or when the body is not a JSON object), and the connection's principal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import orjson

from wsgw.config.caching import BodyPath, KeyParameter

__all__ = ["body_value", "cache_key", "connection_principal", "principal_of", "ws_cache_key"]


class _Digest:
    """A SHA-256 fed length-prefixed parts (None distinct from empty), so that no part can run into the next."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def part(self, text: str | bytes | None) -> None:
        if text is None:
            self._hash.update(b"\xff")
            return
        raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        self._hash.update(len(raw).to_bytes(8, "big"))
        self._hash.update(raw)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _joined(pairs: Sequence[tuple[str, str]], name: str, fold: bool) -> str | None:
    values = [v for k, v in pairs if (k.lower() if fold else k) == name]
    return ",".join(values) if values else None


def cache_key(route_key: str, method: str, path: str, *, query: Sequence[tuple[str, str]],
              headers: Sequence[tuple[str, str]], path_parameters: Mapping[str, str],
              parameters: Sequence[KeyParameter], principal: str | None) -> str:
    """The store key of one request (64 hex characters)."""
    digest = _Digest()
    part = digest.part
    part(route_key)
    part(method)
    part(path)
    for parameter in parameters:
        part(parameter.source)
        part(parameter.name)
        if parameter.source == "querystring":
            part(_joined(query, parameter.name, fold=False))
        elif parameter.source == "header":
            part(_joined(headers, parameter.name, fold=True))
        else:
            part(path_parameters.get(parameter.name))
    part("principal")
    part(principal)
    return digest.hexdigest()


def principal_of(authorizer: Mapping[str, object] | None, principal_id: str | None) -> str | None:
    """Who the caller is, for the key: the Lambda authorizer's principalId, a JWT's issuer and subject, an
    IAM caller's access key; failing those, the whole authorizer context (callers with different contexts
    never share). None for a route without an authorizer."""
    if authorizer is None:
        return None
    if principal_id:
        return f"lambda:{principal_id}"
    jwt = authorizer.get("jwt")
    if isinstance(jwt, Mapping):
        claims = jwt.get("claims")
        if isinstance(claims, Mapping) and claims.get("sub") is not None:
            return f"jwt:{claims.get('iss')}:{claims.get('sub')}"
    iam = authorizer.get("iam")
    if isinstance(iam, Mapping) and iam.get("accessKey"):
        return f"iam:{iam.get('accessKey')}"
    return "context:" + orjson.dumps(authorizer, option=orjson.OPT_SORT_KEYS, default=str).decode()


def body_value(document: object, path: BodyPath) -> bytes | None:
    """The JSON text (keys sorted, so spacing and member order do not matter) at `path`, or None when absent."""
    found = document
    for step in path.steps:
        if isinstance(step, int):
            if not isinstance(found, list) or step >= len(found):
                return None
            found = found[step]
        else:
            if not isinstance(found, dict) or step not in found:
                return None
            found = found[step]
    return orjson.dumps(found, option=orjson.OPT_SORT_KEYS)


def ws_cache_key(route_key: str, body: str, is_base64: bool, document: object, paths: Sequence[BodyPath],
                 principal: str | None) -> str:
    """The store key of one WebSocket message (64 hex characters); `document` is the body as the message path
    parsed it (anything but a dict when it is not a JSON object). A body that is not a JSON object (plain text,
    malformed or too deeply nested JSON) is keyed by all of it, so that such messages never share an answer."""
    digest = _Digest()
    digest.part("websocket")
    digest.part(route_key)
    digest.part("binary" if is_base64 else "text")
    if paths and isinstance(document, dict):
        for path in paths:
            digest.part(path.text)
            digest.part(body_value(document, path))
    else:
        digest.part("body")
        digest.part(body)
    digest.part("principal")
    digest.part(principal)
    return digest.hexdigest()


def connection_principal(authorizer: Mapping[str, object] | None, access_key: str | None) -> str | None:
    """Who a WebSocket connection is, for the key: its $connect authorizer's principal (see `principal_of`; the
    authorizer's own latency is not part of who the caller is), or the access key of a SigV4-signed handshake."""
    if authorizer is not None:
        principal_id = authorizer.get("principalId")
        context = {k: v for k, v in authorizer.items() if k not in ("principalId", "integrationLatency")}
        return principal_of(context, str(principal_id) if principal_id else None)
    return f"iam:{access_key}" if access_key else None
