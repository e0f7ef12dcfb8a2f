"""One node's metrics, the one home of every metric name: AWS's CloudWatch metrics for WebSocket and HTTP
APIs under their CloudWatch names (so dashboards and alarms carry over), plus wsgw's own.

prometheus_client keeps the values and renders the exposition format; each deployment has its own
CollectorRegistry (several gateways run in one process: a Site's stages and versions, tests). Labels are AWS's
dimensions (api, stage, route) plus the deployment's version (`default` for a single file) and
`canary="true"` on a stage's canary side, so a canary can be compared with the version it may replace.
`route` is always a configured route key or a fixed word (`$unmatched`, `@connections`), never a connection
id or a raw path, so cardinality stays bounded. Hot paths count into tallies bound once per route (`ws_route`,
`http_route`): plain numbers added up on the event loop's thread, folded into their prometheus children when
the registry is collected (a locked `Counter.inc` per count was 17% of a routed message's cost); latencies are
histograms in seconds. `render_all` joins several deployments into one text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

UNMATCHED = "$unmatched"        # messages and requests no route took: one label value, whatever was sent
PUSHES = "@connections"         # frames pushed through the management API (and @broadcast)
GROUPS = "@groups"              # frames published to groups
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds; from a fast in-process handler (sub-millisecond) to AWS's 29 s integration timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

DEFAULT_VERSION = "default"     # a single file's one version (wsgw.config.site.DEFAULT_VERSION)
NODE_LABELS = ("api", "stage", "version")


@dataclass(frozen=True, slots=True)
class Dimensions:
    """The labels every metric of one deployment carries: which API, stage and version (and canary side)."""

    api: str = "wsgwlocal0"
    stage: str = "dev"
    version: str = DEFAULT_VERSION
    canary: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (*NODE_LABELS, "canary") if self.canary else NODE_LABELS

    @property
    def deployment(self) -> str:
        """`api/stage/version[/canary]`: what a connection record names, so an orphan's $disconnect finds it."""
        return f"{self.api}/{self.stage}/{self.version}{'/canary' if self.canary else ''}"

    @property
    def values(self) -> dict[str, str]:
        found = {"api": self.api, "stage": self.stage, "version": self.version}
        return {**found, "canary": "true"} if self.canary else found


class Tally:
    """A counter child's count kept as a plain number; `Metrics` folds it into the child when scraped.

    Only the event loop's thread counts into a tally (the message, push and REST paths all run there)."""

    __slots__ = ("child", "folded", "value")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.value: float = 0
        self.folded: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def fold(self) -> None:
        value = self.value
        if value != self.folded:
            self.child.inc(value - self.folded)    # integer counts: exact whatever the grouping
            self.folded = value


class HistogramTally:
    """A histogram child's observations as per-bucket counts and a running sum; folded like `Tally`.

    Bucket semantics are prometheus_client's: an observation lands in the first bucket whose upper bound is
    >= it (`bisect_left`), and the sum adds observations in the order they came, so the folded values are
    exactly those `Histogram.observe` would have made."""

    __slots__ = ("bounds", "child", "counts", "folded", "sum")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.bounds = tuple(child._upper_bounds)       # the family's buckets, +Inf last
        self.counts = [0] * len(self.bounds)
        self.folded = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def fold(self) -> None:
        # prometheus_client has no public way to add a bucket count; its children keep one value per bucket
        # (not cumulative) and the sum, which is what is set here. tests/test_metrics.py pins the result.
        buckets = self.child._buckets
        counts, folded = self.counts, self.folded
        for i, count in enumerate(counts):
            if count != folded[i]:
                buckets[i].inc(count - folded[i])
                folded[i] = count
        self.child._sum.set(self.sum)


class _Silent:
    """A histogram child that records nothing: latency histograms switched off (`histograms=False`)."""

    def observe(self, amount: float) -> None:
        return None


Observer = HistogramTally | _Silent


@dataclass(slots=True)
class WsRouteMetrics:
    """AWS's WebSocket API metrics of one route, bound once (a label lookup per message showed in profiles)."""

    messages: Tally
    client_errors: Tally
    integration_errors: Tally
    execution_errors: Tally
    integration_latency: Observer


@dataclass(slots=True)
class HttpRouteMetrics:
    """AWS's HTTP API metrics of one route."""

    count: Tally
    client_errors: Tally
    server_errors: Tally
    latency: Observer
    integration_latency: Observer

    def answered(self, status: int, seconds: float) -> None:
        self.count.inc()
        if 400 <= status < 500:
            self.client_errors.inc()
        elif status >= 500:
            self.server_errors.inc()
        self.latency.observe(seconds)


@dataclass(slots=True)
class CacheRouteMetrics:
    """The response cache's counters of one REST or WebSocket route."""

    hits: Tally
    misses: Tally
    bypasses: Tally


class Metrics:
    """Every metric of one node. `registry` is what `/metrics` renders; `value` reads one back (tests)."""

    def __init__(self, api: str = "wsgwlocal0", stage: str = "dev", version: str = DEFAULT_VERSION, *,
                 canary: bool = False, histograms: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._tallies: list[Tally | HistogramTally] = []
        self.registry.register(_Fold(self))     # first: collecting folds the tallies before any family is read
        self.dimensions = Dimensions(api, stage, version, canary)
        self.node = self.dimensions.values
        self.histograms = histograms
        reg = self.registry
        node_labels = self.dimensions.names
        aws_dimensions = (*node_labels, "route")

        def counter(name: str, doc: str, *labels: str, dims: tuple[str, ...] = node_labels) -> Counter:
            return Counter(name, doc, (*dims, *labels), registry=reg)

        def histogram(name: str, doc: str, buckets: tuple[float, ...] = LATENCY_BUCKETS,
                      dims: tuple[str, ...] = aws_dimensions) -> Histogram:
            return Histogram(name, doc, dims, buckets=buckets, registry=reg)

        # --- AWS/ApiGateway, WebSocket APIs (dimensions ApiId, Stage, Route) ---
        self.ws_connect = counter("wsgw_websocket_ConnectCount", "Messages sent to the $connect route "
                                  "integration (CloudWatch ConnectCount)", dims=aws_dimensions)
        self.ws_messages = counter("wsgw_websocket_MessageCount", "Messages sent to the API, from or to clients "
                                   "(CloudWatch MessageCount; pushes under route @connections)", dims=aws_dimensions)
        self.ws_integration_errors = counter("wsgw_websocket_IntegrationError", "Requests whose integration "
                                             "answered 4XX/5XX or an invalid result (CloudWatch IntegrationError)",
                                             dims=aws_dimensions)
        self.ws_client_errors = counter("wsgw_websocket_ClientError", "Requests answered 4XX by the gateway before "
                                        "the integration ran (CloudWatch ClientError)", dims=aws_dimensions)
        self.ws_execution_errors = counter("wsgw_websocket_ExecutionError", "Errors calling the integration: "
                                           "exceptions, timeouts (CloudWatch ExecutionError)", dims=aws_dimensions)
        self.ws_integration_latency = histogram("wsgw_websocket_IntegrationLatency_seconds", "From calling the "
                                                "integration to its answer (CloudWatch IntegrationLatency)")
        self.ws_cache_hits = counter("wsgw_websocket_CacheHitCount", "Messages whose route response came from the "
                                     "stage's response cache (REST's CacheHitCount, for WebSocket routes)",
                                     dims=aws_dimensions)
        self.ws_cache_misses = counter("wsgw_websocket_CacheMissCount", "Messages on a cached route that the "
                                       "integration answered (REST's CacheMissCount, for WebSocket routes)",
                                       dims=aws_dimensions)
        self.ws_cache_bypasses = counter("wsgw_websocket_cache_bypassed", "Messages on a cached route served "
                                         "without the cache because its store failed (Redis down or slow)",
                                         dims=aws_dimensions)
        # --- AWS/ApiGateway, HTTP APIs (dimensions ApiId, Stage, Route) ---
        self.http_count = counter("wsgw_http_Count", "REST front requests (CloudWatch Count)", dims=aws_dimensions)
        self.http_4xx = counter("wsgw_http_4xx", "REST front 4XX answers (CloudWatch 4xx)", dims=aws_dimensions)
        self.http_5xx = counter("wsgw_http_5xx", "REST front 5XX answers (CloudWatch 5xx)", dims=aws_dimensions)
        self.http_latency = histogram("wsgw_http_Latency_seconds", "From receiving a REST request to answering it "
                                      "(CloudWatch Latency)")
        self.http_integration_latency = histogram("wsgw_http_IntegrationLatency_seconds", "From calling a REST "
                                                  "route's integration to its answer (CloudWatch IntegrationLatency)")
        self.http_cache_hits = counter("wsgw_http_CacheHitCount", "REST requests answered from the stage's "
                                       "response cache (CloudWatch CacheHitCount)", dims=aws_dimensions)
        self.http_cache_misses = counter("wsgw_http_CacheMissCount", "REST requests on a cached route that the "
                                         "integration answered (CloudWatch CacheMissCount)", dims=aws_dimensions)
        self.http_cache_bypasses = counter("wsgw_http_cache_bypassed", "REST requests on a cached route served "
                                           "without the cache because its store failed (Redis down or slow)",
                                           dims=aws_dimensions)
        # --- wsgw's own ---
        self.cache_evictions = counter("wsgw_http_cache_evictions", "Cached answers (REST, and WebSocket route "
                                       "responses) dropped to stay within caching.maxBytes (memory store; Redis "
                                       "evicts by its own policy)")
        self.cache_invalidations = counter("wsgw_http_cache_invalidations", "Cache-Control: max-age=0 requests, "
                                           "by result (refreshed, refused, ignored)", "result")
        self.cache_flushes = counter("wsgw_http_cache_flushes", "Stage cache flushes (DELETE /{stage}/@cache)")
        self.opened = counter("wsgw_connections_opened", "WebSocket connections accepted after $connect")
        self.refused = counter("wsgw_connections_refused", "WebSocket handshakes refused, by HTTP status", "status")
        self.closed = counter("wsgw_connections_closed", "WebSocket connections ended ($disconnect scheduled)")
        self.orphan_disconnects = counter("wsgw_orphan_disconnects", "$disconnect run for connections of dead "
                                          "nodes")
        self.orphans_unserved = counter("wsgw_orphan_disconnects_unserved", "Connections of dead nodes whose "
                                        "$disconnect did not run: their deployment is not served here",
                                        "deployment")
        self.received = counter("wsgw_messages_received", "Messages received from clients")
        self.sent = counter("wsgw_messages_sent", "Frames sent to clients (route responses, pushes, errors)")
        self.dropped = counter("wsgw_messages_dropped", "Messages received but not handled, by reason", "reason")
        self.integration_errors = counter("wsgw_integration_errors", "Integration calls that failed, by kind", "kind")
        self.throttled = counter("wsgw_throttled", "Requests refused by throttling (Too Many Requests), by scope",
                                 "scope")
        self.route_misses = counter("wsgw_route_misses", "Messages that matched no route and no $default")
        self.pushes = counter("wsgw_pushes", "@connections POSTs, by result (delivered, gone, fenced)", "result")
        self.http_requests = counter("wsgw_http_requests", "HTTP requests answered (all paths), by status", "status")
        self.http_refused = counter("wsgw_http_refused", "REST requests refused by an authorizer, by status",
                                    "status")
        self.api_key_refused = counter("wsgw_api_key_refused", "REST requests refused by API keys and usage "
                                       "plans (403 no or unknown key, 429 throttled or over quota), by status",
                                       "status")
        self.management_refused = counter("wsgw_management_refused", "Management API calls refused by "
                                          "management.auth (IAM signature checks), by AWS error type", "type")
        self.budget_exceeded = counter("wsgw_budget_exceeded", "Per-connection budgets that closed or held back a "
                                       "connection, by budget (wsgw/server/budgets.py)", "budget")
        self.slow_consumers = counter("wsgw_slow_consumer_closes", "Connections closed 1008 because their send "
                                      "buffer passed maxSendBufferBytes")
        self.group_publishes = counter("wsgw_group_publishes", "Frames published to a group (any node's members)")
        self.group_recoveries = counter("wsgw_group_recoveries", "Group joins with since=N, by whether the history "
                                        "still held what was missed", "recovered")
        self.redis_roundtrip = Histogram("wsgw_redis_roundtrip_seconds", "Redis round trip of the node's "
                                         "heartbeat", node_labels, buckets=REDIS_BUCKETS, registry=reg)
        self._open = Gauge("wsgw_connections_open", "WebSocket connections open on this node", node_labels,
                           registry=reg)
        self._queued = Gauge("wsgw_queue_depth", "Messages waiting in this node's per-connection inboxes",
                             node_labels, registry=reg)
        self._authorizers: Callable[[], Iterable[tuple[str, int, int]]] = lambda: ()
        reg.register(_AuthorizerCacheCollector(self))
        self._ws_routes: dict[str, WsRouteMetrics] = {}
        self._http_routes: dict[str, HttpRouteMetrics] = {}
        self._cache_routes: dict[str, CacheRouteMetrics] = {}
        self._ws_cache_routes: dict[str, CacheRouteMetrics] = {}
        self._answered: dict[int, Tally] = {}
        self.connects = self._tally(self.ws_connect, route="$connect")
        self.group_messages = self._tally(self.ws_messages, route=GROUPS)
        self.pushed_messages = self._tally(self.ws_messages, route=PUSHES)
        self.delivered = self._tally(self.pushes, result="delivered")
        self.gone = self._tally(self.pushes, result="gone")
        self.received_one = self._tally(self.received)
        self.sent_one = self._tally(self.sent)

    # ----- reading state at scrape time (nothing on the hot path) ----------------------------------

    def gauges(self, open_connections: Callable[[], float], queue_depth: Callable[[], float]) -> None:
        self._open.labels(**self.node).set_function(open_connections)
        self._queued.labels(**self.node).set_function(queue_depth)

    def authorizer_caches(self, read: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        """`read` gives (authorizer name, cache hits, calls made) for each authorizer, at scrape time."""
        self._authorizers = read

    # ----- children bound once ---------------------------------------------------------------------

    def ws_route(self, route: str) -> WsRouteMetrics:
        """The WebSocket metrics of a configured route key (or UNMATCHED)."""
        bound = self._ws_routes.get(route)
        if bound is None:
            bound = self._ws_routes[route] = WsRouteMetrics(
                self._tally(self.ws_messages, route=route), self._tally(self.ws_client_errors, route=route),
                self._tally(self.ws_integration_errors, route=route),
                self._tally(self.ws_execution_errors, route=route),
                self._observer(self.ws_integration_latency, route))
        return bound

    def http_route(self, route: str) -> HttpRouteMetrics:
        """The HTTP API metrics of a configured REST route key (or UNMATCHED)."""
        bound = self._http_routes.get(route)
        if bound is None:
            bound = self._http_routes[route] = HttpRouteMetrics(
                self._tally(self.http_count, route=route), self._tally(self.http_4xx, route=route),
                self._tally(self.http_5xx, route=route), self._observer(self.http_latency, route),
                self._observer(self.http_integration_latency, route))
        return bound

    def http_cache(self, route: str) -> CacheRouteMetrics:
        """The response cache counters of a configured REST route key."""
        bound = self._cache_routes.get(route)
        if bound is None:
            bound = self._cache_routes[route] = CacheRouteMetrics(
                self._tally(self.http_cache_hits, route=route), self._tally(self.http_cache_misses, route=route),
                self._tally(self.http_cache_bypasses, route=route))
        return bound

    def ws_cache(self, route: str) -> CacheRouteMetrics:
        """The response cache counters of a configured WebSocket route key."""
        bound = self._ws_cache_routes.get(route)
        if bound is None:
            bound = self._ws_cache_routes[route] = CacheRouteMetrics(
                self._tally(self.ws_cache_hits, route=route), self._tally(self.ws_cache_misses, route=route),
                self._tally(self.ws_cache_bypasses, route=route))
        return bound

    def _tally(self, counter: Counter, **labels: str) -> Tally:
        """This node's child of `counter` with `labels`, counted as a tally (the child exists from now on, so
        it shows as 0 until counted, as a bound child did)."""
        tally = Tally(counter.labels(**self.node, **labels))
        self._tallies.append(tally)
        return tally

    def _observer(self, histogram: Histogram, route: str) -> Observer:
        if not self.histograms:
            return _Silent()
        tally = HistogramTally(histogram.labels(**self.node, route=route))
        self._tallies.append(tally)
        return tally

    def fold(self) -> None:
        """Add every tally's counts since the last fold into its prometheus child (done when collected)."""
        for tally in self._tallies:
            tally.fold()

    def answered(self, status: int) -> None:
        """An HTTP answer of any path (REST, @connections, /health, a refused handshake)."""
        child = self._answered.get(status)
        if child is None:            # bound once per status: labels() per answer showed in the push profile
            child = self._answered[status] = self._tally(self.http_requests, status=str(status))
        child.inc()

    def count(self, counter: Counter, amount: float = 1, **labels: str) -> None:
        """Increment a wsgw counter of this node by its own labels (kind=, scope=, status= …)."""
        counter.labels(**self.node, **labels).inc(amount)

    # ----- output ----------------------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when never set): `value("wsgw_pushes_total", result="gone")`."""
        found = self.registry.get_sample_value(name, {**self.node, **labels})
        return 0.0 if found is None else found


class _Fold(Collector):
    """Registered first in a node's registry: collecting it folds the tallies and yields nothing, so every
    reader of the registry (render, render_all, value, a test's parser) sees counts up to date."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        self.metrics.fold()
        return iter(())


class _AuthorizerCacheCollector(Collector):
    """wsgw_authorizer_cache_hits_total / _calls_total, read from the authorizers when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        node = self.metrics.node
        names = [*node, "authorizer"]
        hits = CounterMetricFamily("wsgw_authorizer_cache_hits", "Authorizer decisions answered from the cache",
                                   labels=names)
        calls = CounterMetricFamily("wsgw_authorizer_calls", "Authorizer invocations made (cache misses)",
                                    labels=names)
        for name, hit, called in self.metrics._authorizers():
            values = [*node.values(), name]
            hits.add_metric(values, hit)
            calls.add_metric(values, called)
        yield hits
        yield calls


def render_all(parts: Iterable[Metrics]) -> bytes:
    """Several deployments' metrics (a Site's stages, versions and canaries) as one exposition: one HELP/TYPE per
    family, each sample carrying its own deployment's labels."""
    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Merged(list(parts)))
    return generate_latest(merged)


class _Merged(Collector):
    def __init__(self, parts: list[Metrics]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for metrics in self.parts:
            for family in metrics.registry.collect():
                into = families.get(family.name)
                if into is None:
                    into = families[family.name] = Metric(family.name, family.documentation, family.type,
                                                          family.unit)
                into.samples.extend(family.samples)
        yield from families.values()
