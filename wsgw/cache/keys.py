"""Cache keys of REST answers, pure: what makes two requests "the same" for the cache.

A key is the SHA-256 of a length-prefixed encoding of: the route key, the method, the decoded path (every
path parameter, always: wsgw never lets `/pets/1` answer `/pets/2`), the values of the route's
`cacheKeyParameters` (query strings and headers it names, a missing one distinct from an empty one), and the
caller's principal unless the route shares answers between callers. Hashing keeps keys short whatever a client
sends (huge headers, many parameters) and makes no value able to forge another's key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import orjson

from wsgw.config.caching import KeyParameter

__all__ = ["cache_key", "principal_of"]


def _joined(pairs: Sequence[tuple[str, str]], name: str, fold: bool) -> str | None:
    values = [v for k, v in pairs if (k.lower() if fold else k) == name]
    return ",".join(values) if values else None


def cache_key(route_key: str, method: str, path: str, *, query: Sequence[tuple[str, str]],
              headers: Sequence[tuple[str, str]], path_parameters: Mapping[str, str],
              parameters: Sequence[KeyParameter], principal: str | None) -> str:
    """The store key of one request (64 hex characters)."""
    digest = hashlib.sha256()

    def part(text: str | None) -> None:
        if text is None:
            digest.update(b"\xff")
            return
        raw = text.encode("utf-8", "surrogateescape")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)

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
