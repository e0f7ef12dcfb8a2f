"""Stage caching on the REST front (AWS REST API caching, applied to wsgw's HTTP API routes).

What a route caches is decided once (`RoutePolicy`): the stage's `caching:` with the route's override. Per
request the front asks `StageCache.lookup` (wsgw/cache/stage.py) after throttling, authorization, API keys and
validation (a refused caller never reaches the cache), and `StageCache.keep` after the integration answered 2xx.
A client's `Cache-Control: max-age=0` refreshes the entry only for a caller allowed `execute-api:InvalidateCache`;
others get AWS's `unauthorizedCacheControlHeaderStrategy`. The store (memory or Redis) failing never fails a request:
it is counted as a bypass and the integration answers. docs/caching.md has the rules and their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from wsgw.cache.stage import Lease
from wsgw.config.caching import KeyParameter, RouteCaching, StageCaching
from wsgw.headers import Headers

CACHE_HEADER = "X-Wsgw-Cache"          # hit | miss | refresh | bypass: what the cache did for this answer
INVALIDATE_ACTION = "execute-api:InvalidateCache"
#: What SUCCEED_WITH_RESPONSE_HEADER adds (AWS documents "a warning header", not its words; these are wsgw's).
IGNORED_WARNING = ('199 - "Cache-Control: max-age=0 was ignored: the caller may not invalidate the cache '
                   '(execute-api:InvalidateCache)"')


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """How one route is cached: the stage's settings with the route's override laid over them."""

    methods: frozenset[str]
    ttl_seconds: int
    key_parameters: tuple[KeyParameter, ...]
    principal_in_key: bool
    require_authorization: bool
    unauthorized_strategy: str


def route_policy(stage: StageCaching | None, route: RouteCaching | None, route_method: str) -> RoutePolicy | None:
    """None when the route is not cached: no stage cache, caching off for it, or a TTL of 0."""
    if stage is None or not stage.cluster_enabled:
        return None
    override = route or RouteCaching()
    enabled = override.caching_enabled if override.caching_enabled is not None else stage.caching_enabled
    ttl = override.ttl_seconds if override.ttl_seconds is not None else stage.ttl_seconds
    if not enabled or ttl <= 0:
        return None
    methods = set(stage.methods)
    any_method = route_method in ("ANY", "")       # ANY and $default: the stage's methods only
    if override.caching_enabled and not any_method:
        methods.add(route_method)          # a route that asks for caching is cached whatever its method
    if not any_method and route_method not in methods:
        return None
    return RoutePolicy(
        frozenset(methods), ttl, override.key_parameters, override.principal_in_key,
        override.require_authorization if override.require_authorization is not None
        else stage.require_authorization,
        override.unauthorized_strategy or stage.unauthorized_strategy)


class Invalidation(Enum):
    """What a `Cache-Control: max-age=0` does."""

    NONE = "none"            # no such header: serve from the cache
    REFRESH = "refresh"      # allowed: skip the cache, call the integration, replace the entry
    REFUSE = "refuse"        # FAIL_WITH_403
    WARN = "warn"            # SUCCEED_WITH_RESPONSE_HEADER: served as if the header were absent, plus Warning
    IGNORE = "ignore"        # SUCCEED_WITHOUT_RESPONSE_HEADER


def asks_invalidation(headers: Headers) -> bool:
    """Whether the client sent `Cache-Control: max-age=0` (any Cache-Control line, any directive position)."""
    for value in headers.get_all("cache-control"):
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            if name.strip().lower() == "max-age" and argument.strip().strip('"') == "0":
                return True
    return False


def invalidation(policy: RoutePolicy, asked: bool, allowed: bool) -> Invalidation:
    """AWS's rule: without `requireAuthorizationForCacheControl` anyone may invalidate; with it, a caller the
    authorizer allowed `execute-api:InvalidateCache` may, and everyone else gets the strategy."""
    if not asked:
        return Invalidation.NONE
    if allowed or not policy.require_authorization:
        return Invalidation.REFRESH
    return {"FAIL_WITH_403": Invalidation.REFUSE, "SUCCEED_WITH_RESPONSE_HEADER": Invalidation.WARN,
            "SUCCEED_WITHOUT_RESPONSE_HEADER": Invalidation.IGNORE}[policy.unauthorized_strategy]


@dataclass(slots=True)
class CacheStep:
    """What the cache did for one request: its key, hit | miss | refresh | bypass, the invalidation asked, and the
    lease when this request fills the key."""

    key: str
    state: str
    invalidation: Invalidation
    lease: Lease | None = None
