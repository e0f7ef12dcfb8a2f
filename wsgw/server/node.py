"""The one place a node's object graph is built from (ApiConfig, NodeConfig): `wsgw run`, `wsgw check` and the
tests all come through `build_node`, so whatever `run` would refuse, `check` reports.

Building does no network I/O and touches no process-wide state: handler modules are imported (that is how a
missing handler is found) and integrations, authorizers, the throttle, the REST front (handed its dependencies) and the
registry object are made, but nothing listens, connects or writes the process's environment until
`GatewayServer.start()`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from wsgw.authorizers import build_authorizers
from wsgw.authorizers.iam import build_iam_verifier
from wsgw.cache import CacheNamespace, open_cache
from wsgw.cache.stage import StageCache
from wsgw.config import ApiConfig
from wsgw.config.node import NodeConfig
from wsgw.consumers import Consumers
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.gateway import Gateway
from wsgw.gateway.route_cache import RouteResponseCache
from wsgw.gateway.routes import RouteTable
from wsgw.gateway.usage import build_usage
from wsgw.http_config import HttpApiSpec
from wsgw.integrations import Resources
from wsgw.integrations.environment import node_environment
from wsgw.integrations.handler_pool import HandlerPool
from wsgw.integrations.redis_stream import REGISTRY_URL_KEY
from wsgw.metrics import Dimensions
from wsgw.observe.access_log import AccessLog
from wsgw.observe.settings import TracingSettings
from wsgw.observe.tracing import Tracing
from wsgw.registry import MemoryRegistry, Registry, open_registry
from wsgw.registry.redis_wire import RedisOptions
from wsgw.rest.front import RestFront
from wsgw.runtimes.endpoint_alias import execute_api_host
from wsgw.server.router import HttpRouter
from wsgw.throttle import build_throttler
from wsgw.tls.trust import TrustBundle, trust_bundle

T = TypeVar("T")

log = logging.getLogger("wsgw.server")


@dataclass(slots=True)
class Node:
    """Everything one node serves with, built and not yet started."""

    api: ApiConfig
    config: NodeConfig
    resources: Resources
    gateway: Gateway
    rest: RestFront
    router: HttpRouter
    trust: TrustBundle | None      # the local CA's bundle to write at start, when the node serves a dev CA
    consumers: Consumers            # pushes from workers through queues (wsgw/consumers/), started with the node
    access: AccessLog | None = None    # accessLogSettings' writer: opened at start (it opens its destination)
    tracing: Tracing | None = None     # made at start (an exporter runs a thread); `wsgw check` makes neither

    def discard(self) -> None:
        """Release what building made, for a node that never starts (`wsgw check`)."""
        self.resources.stop_threads()

    def start_observing(self) -> None:
        """Open the stage's access log and wrap the entry points in spans, as this deployment configures."""
        self.access = access_log_for(self.api)
        if self.access is not None:
            self.gateway.use_access_log(self.access)
            self.rest.access = self.access
            self.access.start()
        if self.api.observe.tracing is not None and self.tracing is None:
            self.tracing = traced(self.gateway, self.rest, self.api.observe.tracing)

    def stop_observing(self) -> None:
        """Blocking (run in a thread): write the queued access log lines and flush the spans."""
        if self.access is not None:
            self.access.stop()
        if self.tracing is not None:
            self.tracing.close()


def access_log_for(api: ApiConfig) -> AccessLog | None:
    """The stage's access log when `accessLogSettings` is set; its lines name the API and stage."""
    settings = api.observe.access_log
    if settings is None:
        return None
    return AccessLog(settings, {"apiId": api.api_id, "stage": api.stage, "accountId": api.account_id},
                     api.base_dir)


def traced(gateway: Gateway, rest: RestFront, settings: TracingSettings) -> Tracing:
    """Spans around one deployment's entry points: connect, message, integration call, push and REST request
    (the otel extra is imported only here)."""
    tracing = Tracing(settings)
    dispatcher = gateway.dispatcher
    gateway.connect = tracing.wrap("websocket.connect", gateway.connect)  # type: ignore[method-assign, assignment]
    gateway.inboxes.handle_message = tracing.wrap(
        "websocket.message", gateway.inboxes.handle_message,
        lambda conn, *_: {"wsgw.connection_id": conn.info.connection_id})
    dispatcher.invoke = tracing.wrap(  # type: ignore[method-assign, assignment]
        "integration.call", dispatcher.invoke, lambda route, *_: {"wsgw.route_key": route.key})
    gateway.post = tracing.wrap(  # type: ignore[method-assign, assignment]
        "websocket.push", gateway.post, lambda connection_id, *_: {"wsgw.connection_id": connection_id})
    rest.handle = tracing.wrap(  # type: ignore[method-assign, assignment]
        "http.request", rest.handle, lambda request, *_: {"http.method": request.method})
    return tracing


def api_host_names(api: ApiConfig, environ: Mapping[str, str]) -> tuple[str, ...]:
    """AWS's host names for the API, `{apiId}.execute-api.{region}.amazonaws.com`, that handlers may build: with
    the API's region, and with the shell's AWS_REGION when it differs (functions see that one as AWS_REGION)."""
    regions = dict.fromkeys(r for r in (api.region, environ.get("AWS_REGION")) if r)
    return tuple(execute_api_host(api.api_id, region) for region in regions)


def _plain_redis_url(url: str | None) -> str | None:
    """The registry's Redis URL without wsgw's own options, for redis-py clients of streams; None off Redis."""
    if not url or not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    try:
        return RedisOptions.from_url(url).url
    except ValueError:
        return None      # open_registry reports it


def build_node(api: ApiConfig, config: NodeConfig, registry: Registry | None = None, *,
               dimensions: Dimensions | None = None) -> Node:
    """Build every part; ConfigError lists every problem of every part (routes, authorizers, the REST front).
    `dimensions` label the metrics with the deployment a Site builds (API, stage, version, canary)."""
    tls = config.tls
    trust = trust_bundle(tls.dev_ca, os.environ) if tls is not None and tls.dev_ca is not None else None
    extra = {"WSGW_SCHEME": config.scheme, **(trust.variables if trust is not None else {})}
    resources = Resources(handler_pool=HandlerPool(config.gateway.handler_threads),
                          environment=node_environment(api, os.environ, Path.home(), extra))
    resources.shared[REGISTRY_URL_KEY] = _plain_redis_url(config.redis_url)    # redis_stream's default, consumers'
    problems: list[ConfigProblem] = []

    def attempt(make: Callable[[], T]) -> T | None:
        try:
            return make()
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None

    try:
        if registry is None:
            try:
                registry = open_registry(config.redis_url)
            except ValueError as exc:
                problems.append(ConfigProblem("--redis", str(exc).removeprefix("--redis: ")))
                registry = MemoryRegistry()
        # Each part is built even when another failed, so that one run lists every problem of the API.
        routes = attempt(lambda: RouteTable(api, resources))
        authorizers = attempt(lambda: build_authorizers(api, resources))
        iam = attempt(lambda: build_iam_verifier(api, os.environ))
        usage = attempt(lambda: build_usage(api, registry.counters(), os.environ))
        gateway = Gateway(api, registry, node_id=config.node_id, resources=resources,
                          routes=routes or RouteTable(replace(api, routes={}), resources),
                          authorizers=authorizers or {},
                          throttle=build_throttler(api, time.monotonic, registry.counters()),
                          dimensions=dimensions)
        cache = attempt(lambda: _response_cache(api, config, gateway.metrics.dimensions, gateway))
        rest = attempt(lambda: RestFront(api, api.http or HttpApiSpec(), resources=resources,
                                         authorizers=gateway.authorizers, throttle=gateway.throttle,
                                         metrics=gateway.metrics, deadline=gateway.deadlines.within,
                                         usage=usage, cache=cache))
        gateway.connect_flow.iam = iam
        if cache is not None:                      # one store for REST answers and route responses
            gateway.dispatcher.cache = RouteResponseCache(cache, gateway.metrics)
        gateway.connect_flow.usage = usage
        if rest is not None:
            rest.iam = iam
        consumers = attempt(lambda: _consumers(api, gateway, resources))
        if problems:
            raise ConfigError(problems)
    except BaseException:
        resources.stop_threads()
        raise
    assert rest is not None and consumers is not None
    return Node(api, config, resources, gateway, rest, HttpRouter(gateway, rest, iam), trust, consumers)


def _response_cache(api: ApiConfig, config: NodeConfig, dimensions: Dimensions, gateway: Gateway) -> StageCache | None:
    """The stage's REST response cache when `caching.cacheClusterEnabled` (made, not connected), keyed apart by
    this deployment's API, stage and version."""
    caching = api.caching
    if caching is None or not caching.cluster_enabled:
        asking = uncached_routes(api)
        if asking:
            log.warning("%s ask for caching, but this stage has no cache (caching.cacheClusterEnabled is off): "
                        "they are served uncached", ", ".join(asking))
        return None
    namespace = CacheNamespace(dimensions.api, dimensions.stage, dimensions.version)
    try:
        store = open_cache(caching.store, namespace, max_bytes=caching.max_bytes, redis_url=config.redis_url)
    except ValueError as exc:
        raise ConfigError.single("caching.store", str(exc)) from None
    return StageCache(store, gateway.metrics)


def uncached_routes(api: ApiConfig) -> list[str]:
    """The keys of routes whose `caching:` asks for a cache the stage does not have (as on AWS, a method's
    caching does nothing without the stage's cache cluster; said at start rather than silently)."""
    asking = [f"routes.{key}.caching" for key, route in api.routes.items()
              if route.caching is not None and route.caching.caching_enabled]
    if api.http is not None:
        asking += [f"http.routes.{route.key}.caching" for route in api.http.routes
                   if route.caching is not None and route.caching.caching_enabled]
    return asking


def _consumers(api: ApiConfig, gateway: Gateway, resources: Resources) -> Consumers:
    """The API's `consumers:` for this node (made, not started: no connection is opened here)."""
    try:
        return Consumers(api.consumers, gateway, resources.shared.get(REGISTRY_URL_KEY), gateway.node_id)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        raise ConfigError.single(key, message) from None
