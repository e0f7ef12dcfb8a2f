"""Route responses from the stage's cache: a message on a WebSocket route with `caching:` is answered with the kept
route response instead of calling the integration (docs/caching.md).

What is kept is the integration's result (status, body, base64 flag), as on the REST front: whatever the message
path does to a result afterwards runs again on a hit. Kept: 2xx results with a body of at most 1 MiB. The key is
the route, the message's `$request.body` paths (or its whole body) and the connection's principal
(wsgw/cache/keys.py); the store failing serves the message uncached. Counted per route as
wsgw_websocket_CacheHitCount / CacheMissCount / cache_bypassed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from wsgw.aws.proxy_result import read_integration_result
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.cache import CachedResponse
from wsgw.cache.keys import connection_principal, ws_cache_key
from wsgw.cache.stage import StageCache
from wsgw.config.caching import WsRoutePolicy
from wsgw.metrics import Metrics

_TEXT = (("isBase64Encoded", "false"),)
_BINARY = (("isBase64Encoded", "true"),)


def _as_entry(raw: object) -> CachedResponse | None:
    """The integration's result as kept, or None when there is nothing to keep (no body); an invalid result
    raises as it would uncached."""
    result = read_integration_result(raw)
    if result.body is None:
        return None
    return CachedResponse(result.status_code, _BINARY if result.is_base64 else _TEXT, result.body.encode("utf-8"))


def _as_result(entry: CachedResponse) -> dict[str, object]:
    """A kept entry as the Lambda proxy result the message path reads."""
    return {"statusCode": entry.status, "body": entry.body.decode("utf-8"),
            "isBase64Encoded": entry.headers == _BINARY}


class RouteResponseCache:
    """The stage's cache as the WebSocket message path uses it."""

    def __init__(self, cache: StageCache, metrics: Metrics) -> None:
        self.cache = cache
        self.metrics = metrics

    async def call(self, route_key: str, policy: WsRoutePolicy, timeout_s: float, info: ConnectionInfo, body: str,
                   is_base64: bool, document: object, invoke: Callable[[], Awaitable[object]]) -> object:
        """The route's result for this message (`document`: its body as parsed for route selection): the kept
        one, else `invoke()`'s (kept when cacheable)."""
        principal = connection_principal(info.authorizer, info.access_key) if policy.principal_in_key else None
        key = ws_cache_key(route_key, body, is_base64, document, policy.body_paths, principal)
        raw: list[object] = []

        async def fill() -> CachedResponse | None:
            raw.append(await invoke())
            return _as_entry(raw[0])

        entry, _ = await self.cache.through(self.metrics.ws_cache(route_key), key, policy.ttl_seconds, timeout_s, fill)
        if raw:
            return raw[0]          # this message called the integration: its own result, as uncached
        assert entry is not None
        return _as_result(entry)
