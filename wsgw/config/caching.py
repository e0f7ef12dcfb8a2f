"""`caching:` (a stage's API cache) and a REST route's `caching:` override, parsed once into frozen values.

The names are AWS's for REST API stage caching (botocore `apigateway` model: `Stage.cacheClusterEnabled`,
`MethodSetting.cachingEnabled`, `cacheTtlInSeconds`, `requireAuthorizationForCacheControl`,
`unauthorizedCacheControlHeaderStrategy`; `Integration.cacheKeyParameters`), plus wsgw's own where AWS has a
managed cluster instead (`maxBytes`, `store`, `methods`, `principalInKey`). docs/caching.md has the sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wsgw.config.common import Collector, did_you_mean

DEFAULT_TTL_SECONDS = 300                 # AWS: default 300 s
MAX_TTL_SECONDS = 3600                    # AWS: maximum 3600 s; 0 turns caching off
MAX_ENTRY_BYTES = 1_048_576               # AWS: the largest response that can be cached
DEFAULT_MAX_BYTES = 64 * 1024 * 1024      # wsgw: the memory store's bound (AWS sells 0.5 GB and up)
STRATEGIES = ("FAIL_WITH_403", "SUCCEED_WITH_RESPONSE_HEADER", "SUCCEED_WITHOUT_RESPONSE_HEADER")
STORES = ("auto", "memory", "redis")
MAX_KEY_PARAMETERS = 64

STAGE_CACHING_KEYS = {"cacheClusterEnabled", "cachingEnabled", "cacheTtlInSeconds", "maxBytes", "store",
                      "methods", "requireAuthorizationForCacheControl", "unauthorizedCacheControlHeaderStrategy"}
ROUTE_CACHING_KEYS = {"cachingEnabled", "cacheTtlInSeconds", "cacheKeyParameters", "principalInKey",
                      "requireAuthorizationForCacheControl", "unauthorizedCacheControlHeaderStrategy"}
_KEY_PARAMETER = re.compile(r"^(?:method\.request\.|\$?request\.)(path|querystring|header)\.([^\s]{1,256})$")


@dataclass(frozen=True, slots=True)
class StageCaching:
    """The stage's cache and the defaults of every REST route on it."""

    cluster_enabled: bool = False                 # cacheClusterEnabled: is there a cache at all
    caching_enabled: bool = True                  # cachingEnabled: routes of `methods` are cached by default
    ttl_seconds: int = DEFAULT_TTL_SECONDS        # cacheTtlInSeconds
    max_bytes: int = DEFAULT_MAX_BYTES            # the memory store's byte bound
    store: str = "auto"                           # auto (redis when the node runs on Redis), memory, redis
    methods: tuple[str, ...] = ("GET",)           # cached unless a route says otherwise (AWS: GET only)
    require_authorization: bool = True            # requireAuthorizationForCacheControl
    unauthorized_strategy: str = "SUCCEED_WITH_RESPONSE_HEADER"


@dataclass(frozen=True, slots=True)
class KeyParameter:
    """One request parameter that is part of the cache key (`method.request.querystring.type`)."""

    source: str        # path | querystring | header
    name: str          # lowercase for headers


@dataclass(frozen=True, slots=True)
class RouteCaching:
    """A route's override (AWS: the method's settings); None fields take the stage's value."""

    caching_enabled: bool | None = None
    ttl_seconds: int | None = None
    key_parameters: tuple[KeyParameter, ...] = ()
    principal_in_key: bool = True      # one caller's answer never reaches another (off: shared by all allowed)
    require_authorization: bool | None = None
    unauthorized_strategy: str | None = None


def _bool(raw: dict[str, Any], name: str, key: str, problems: Collector) -> bool | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        problems.add(f"{key}.{name}", "must be true or false")
        return None
    return value


def _ttl(raw: dict[str, Any], key: str, problems: Collector) -> int | None:
    value = raw.get("cacheTtlInSeconds")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL_SECONDS:
        problems.add(f"{key}.cacheTtlInSeconds", f"must be a whole number of seconds from 0 to {MAX_TTL_SECONDS} "
                     "(AWS's range; 0 turns caching off)")
        return None
    return value


def _strategy(raw: dict[str, Any], key: str, problems: Collector) -> str | None:
    value = raw.get("unauthorizedCacheControlHeaderStrategy")
    if value is None:
        return None
    if value not in STRATEGIES:
        problems.add(f"{key}.unauthorizedCacheControlHeaderStrategy", "must be one of " + ", ".join(STRATEGIES))
        return None
    return str(value)


def _unknown(raw: dict[str, Any], allowed: set[str], key: str, problems: Collector) -> None:
    for name in sorted(set(map(str, raw)) - allowed):
        problems.add(f"{key}.{name}", "unknown key" + did_you_mean(name, allowed) + "; use one of "
                     + ", ".join(sorted(allowed)))


def parse_stage_caching(raw: Any, problems: Collector, key: str = "caching") -> StageCaching | None:
    """Read the stage's `caching:`; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(key, "must be a mapping, e.g. {cacheClusterEnabled: true, cacheTtlInSeconds: 300}")
        return None
    _unknown(raw, STAGE_CACHING_KEYS, key, problems)
    defaults = StageCaching()
    max_bytes = raw.get("maxBytes", defaults.max_bytes)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 4096:
        problems.add(f"{key}.maxBytes", "must be a whole number of bytes >= 4096 (the memory store's bound)")
        max_bytes = defaults.max_bytes
    store = raw.get("store", "auto")
    if store not in STORES:
        problems.add(f"{key}.store", "must be auto (Redis when the node runs with --redis), memory or redis")
        store = "auto"
    methods = raw.get("methods", list(defaults.methods))
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) and m.isalpha() for m in methods):
        problems.add(f"{key}.methods", "must be a list of HTTP methods, e.g. [GET]")
        methods = list(defaults.methods)
    cluster = _bool(raw, "cacheClusterEnabled", key, problems)
    enabled = _bool(raw, "cachingEnabled", key, problems)
    ttl = _ttl(raw, key, problems)
    require = _bool(raw, "requireAuthorizationForCacheControl", key, problems)
    strategy = _strategy(raw, key, problems)
    return StageCaching(
        cluster_enabled=cluster if cluster is not None else False,
        caching_enabled=enabled if enabled is not None else defaults.caching_enabled,
        ttl_seconds=ttl if ttl is not None else defaults.ttl_seconds,
        max_bytes=max_bytes, store=str(store), methods=tuple(m.upper() for m in methods),
        require_authorization=require if require is not None else defaults.require_authorization,
        unauthorized_strategy=strategy or defaults.unauthorized_strategy)


def parse_key_parameters(raw: Any, key: str, problems: Collector) -> tuple[KeyParameter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_KEY_PARAMETERS:
        problems.add(key, f"must be a list of at most {MAX_KEY_PARAMETERS} parameters such as "
                     "[method.request.querystring.type, method.request.header.Accept-Language]")
        return ()
    found: list[KeyParameter] = []
    for item in raw:
        match = _KEY_PARAMETER.match(str(item)) if isinstance(item, str) else None
        if match is None:
            problems.add(key, f"'{item}' is not method.request.path|querystring|header.NAME "
                         "(or $request.path|querystring|header.NAME)")
            continue
        source, name = match.groups()
        found.append(KeyParameter(source, name.lower() if source == "header" else name))
    return tuple(dict.fromkeys(found))


def parse_route_caching(raw: Any, key: str, problems: Collector) -> RouteCaching | None:
    """Read a REST route's `caching:`; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(key, "must be a mapping, e.g. {cachingEnabled: true, cacheKeyParameters: "
                     "[method.request.querystring.type]}")
        return None
    _unknown(raw, ROUTE_CACHING_KEYS, key, problems)
    principal = _bool(raw, "principalInKey", key, problems)
    return RouteCaching(
        caching_enabled=_bool(raw, "cachingEnabled", key, problems),
        ttl_seconds=_ttl(raw, key, problems),
        key_parameters=parse_key_parameters(raw.get("cacheKeyParameters"), f"{key}.cacheKeyParameters", problems),
        principal_in_key=principal if principal is not None else True,
        require_authorization=_bool(raw, "requireAuthorizationForCacheControl", key, problems),
        unauthorized_strategy=_strategy(raw, key, problems))


WS_ROUTE_CACHING_KEYS = {"cachingEnabled", "cacheTtlInSeconds", "cacheKeyParameters", "principalInKey"}
WS_UNCACHEABLE_ROUTES = ("$connect", "$disconnect", "$join", "$leave")
MAX_BODY_PATH_CHARS = 256
MAX_BODY_PATH_STEPS = 32
_BODY_STEP = re.compile(r"^([A-Za-z0-9_\-]{1,128})((?:\[\d{1,6}\])*)$")


@dataclass(frozen=True, slots=True)
class BodyPath:
    """One `$request.body.<path>` of a WebSocket route's cache key: object member names and list indexes."""

    text: str
    steps: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class WsRouteCaching:
    """A WebSocket route's `caching:` (only a route with a route response has something to cache)."""

    caching_enabled: bool = True
    ttl_seconds: int | None = None                  # None: the stage's cacheTtlInSeconds
    body_paths: tuple[BodyPath, ...] = ()           # empty: the whole message body is the key
    principal_in_key: bool = True                   # the connection's authorizer principal is part of the key


def parse_body_path(text: str) -> BodyPath | str:
    """`$request.body.a.b[0]` as steps, or why it is not one (wildcards, filters and slices are refused: a key
    names exactly one value)."""
    if len(text) > MAX_BODY_PATH_CHARS:
        return f"is longer than {MAX_BODY_PATH_CHARS} characters"
    prefix = "$request.body."
    if not text.startswith(prefix):
        return "is not $request.body.<path> (e.g. $request.body.action or $request.body.items[0].id)"
    steps: list[str | int] = []
    for segment in text[len(prefix):].split("."):
        match = _BODY_STEP.match(segment)
        if match is None:
            return (f"has a bad step '{segment[:40]}': a step is a name of letters, digits, '_' or '-', optionally "
                    "followed by [index]; wildcards, filters and quoted names are not supported")
        steps.append(match.group(1))
        steps.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group(2)))
    if len(steps) > MAX_BODY_PATH_STEPS:
        return f"has more than {MAX_BODY_PATH_STEPS} steps"
    return BodyPath(text, tuple(steps))


def parse_ws_route_caching(raw: Any, key: str, route_key: str, route_response: bool,
                           problems: Collector) -> WsRouteCaching | None:
    """Read a WebSocket route's `caching:`; None when absent or turned off."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(key, "must be a mapping, e.g. {cacheTtlInSeconds: 60, cacheKeyParameters: "
                     "[$request.body.action]}")
        return None
    if route_key in WS_UNCACHEABLE_ROUTES:
        problems.add(key, f"{route_key} has no route response to cache; set caching on a message route")
        return None
    if not route_response:
        problems.add(key, "a route without a route response has nothing to cache; set routeResponse: true "
                     "or remove caching")
        return None
    _unknown(raw, WS_ROUTE_CACHING_KEYS, key, problems)
    enabled = _bool(raw, "cachingEnabled", key, problems)
    principal = _bool(raw, "principalInKey", key, problems)
    paths: list[BodyPath] = []
    parameters = raw.get("cacheKeyParameters")
    if parameters is not None:
        if not isinstance(parameters, list) or len(parameters) > MAX_KEY_PARAMETERS:
            problems.add(f"{key}.cacheKeyParameters", f"must be a list of at most {MAX_KEY_PARAMETERS} body paths "
                         "such as [$request.body.action, $request.body.room]")
        else:
            for item in parameters:
                if isinstance(item, str) and item.startswith(("route.request.", "$request.header.",
                                                              "$request.querystring.")):
                    problems.add(f"{key}.cacheKeyParameters", f"'{item}': the $connect request's headers and query "
                                 "strings are not kept with the connection; key on $request.body paths (the "
                                 "connection's authorizer principal is in the key already)")
                    continue
                parsed = parse_body_path(item) if isinstance(item, str) else "must be a string"
                if isinstance(parsed, str):
                    problems.add(f"{key}.cacheKeyParameters", f"'{str(item)[:80]}' {parsed}")
                    continue
                paths.append(parsed)
    ttl = _ttl(raw, key, problems)
    if enabled is False:
        return None
    return WsRouteCaching(True, ttl, tuple(dict.fromkeys(paths)), principal if principal is not None else True)


@dataclass(frozen=True, slots=True)
class WsRoutePolicy:
    """How one WebSocket route is cached, resolved against the stage: TTL, body paths, principal in key."""

    ttl_seconds: int
    body_paths: tuple[BodyPath, ...]
    principal_in_key: bool


def ws_route_policy(stage: StageCaching | None, route: WsRouteCaching | None) -> WsRoutePolicy | None:
    """None when the route is not cached: it has no `caching:`, the stage has no cache, or the TTL is 0. The
    stage's `cachingEnabled`/`methods` are REST defaults: a message route is cached only when it asks."""
    if route is None or stage is None or not stage.cluster_enabled:
        return None
    ttl = route.ttl_seconds if route.ttl_seconds is not None else stage.ttl_seconds
    if ttl <= 0:
        return None
    return WsRoutePolicy(ttl, route.body_paths, route.principal_in_key)
