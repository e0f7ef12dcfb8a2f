"""Token-bucket throttling as API Gateway does it: per stage, per route, and (wsgw's own) per connection.

The per-node buckets are pure: no I/O and no clock of its own (the caller passes `now` in seconds from any
monotonic clock), so they are tested with plain numbers. AWS's semantics: `rateLimit` tokens per second
refill a bucket holding at most `burstLimit` tokens; a request takes one token or is throttled; a burst limit
of 0 blocks everything. A bucket with `scope: cluster` is one bucket for every node, counted in the
registry's `Counters` (Redis); per node is the default.

WebSocket routes and REST routes have buckets of their own, keyed by front: the REST `$default` and the
WebSocket `$default` are different routes and never share a bucket.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Literal

from wsgw.config import ApiConfig
from wsgw.config.throttling import BucketSpec
from wsgw.registry.counters import Counters, MemoryCounters

log = logging.getLogger("wsgw.throttle")

FrontKind = Literal["ws", "http"]


class TokenBucket:
    """Starts full; `take(now)` spends one token if there is one."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.rate = spec.rate
        self.burst = spec.burst
        self.tokens = float(spec.burst)
        self.updated = now

    def take(self, now: float) -> bool:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def connection_bucket(rate: float, burst: int) -> BucketSpec | None:
    """The per-connection message rate (`limits.maxMessagesPerSecond`, `limits.messageBurst`); 0 = off."""
    if rate <= 0:
        return None
    return BucketSpec(rate, burst if burst > 0 else max(1, math.ceil(rate)))


class Throttler:
    """All buckets of one API on one node. Stage and route buckets are shared; connection buckets per id."""

    def __init__(self, stage: BucketSpec | None, routes: Mapping[str, BucketSpec],
                 per_connection: BucketSpec | None, clock: Callable[[], float], *,
                 rest_routes: Mapping[str, BucketSpec] | None = None, counters: Counters | None = None,
                 name: str = "api") -> None:
        self.clock = clock
        now = clock()
        self.stage_spec = stage
        self.stage = TokenBucket(stage, now) if stage is not None else None
        specs: dict[tuple[str, str], BucketSpec] = {("ws", k): v for k, v in routes.items()}
        specs.update({("http", k): v for k, v in (rest_routes or {}).items()})
        self.specs = specs
        self.buckets = {key: TokenBucket(spec, now) for key, spec in specs.items()}
        self.routes = {key: bucket for (front, key), bucket in self.buckets.items() if front == "ws"}
        self.per_connection = per_connection
        self.connections: dict[str, TokenBucket] = {}
        self.counters = counters or MemoryCounters()
        self.name = name                   # the cluster buckets' key prefix: apiId/stage

    def share_stage(self, main: Throttler) -> None:
        """A canary throttles with its stage's buckets, the main version's: AWS throttles a stage as a whole, so
        the canary and the main version together take the stage's rate (routes both have share theirs too;
        per-connection buckets stay per connection)."""
        self.stage_spec, self.stage, self.name = main.stage_spec, main.stage, main.name
        for key, bucket in main.buckets.items():
            if key in self.buckets:
                self.buckets[key], self.specs[key] = bucket, main.specs[key]
        self.routes = {key: bucket for (front, key), bucket in self.buckets.items() if front == "ws"}

    def admit_route(self, route_key: str, front: FrontKind = "ws") -> bool:
        """One request on a route, on this node: the route's own bucket if it has one, else the stage's (as
        AWS's route settings override the stage defaults). Cluster-scoped buckets are not looked at here."""
        bucket = self.buckets.get((front, route_key), self.stage)
        return bucket is None or bucket.take(self.clock())

    async def admit(self, route_key: str, front: FrontKind = "ws") -> bool:
        """`admit_route`, with a `scope: cluster` bucket taken from the shared counters (Redis). When those
        cannot be reached the request is let through (logged): a throttle never takes the API down."""
        spec = self.specs.get((front, route_key), self.stage_spec)
        if spec is None or spec.scope != "cluster":
            return self.admit_route(route_key, front)
        which = f"{front}:{route_key}" if (front, route_key) in self.specs else "stage"
        try:
            return await self.counters.take(f"{self.name}/{which}", spec.rate, spec.burst)
        except Exception as exc:      # RegistryUnavailable or a Redis error: fail open, say so
            log.warning("cluster throttle %s unavailable (%s): request let through", which, exc)
            return True

    def admit_message(self, connection_id: str) -> bool:
        """One message from a connection, against its own rate."""
        spec = self.per_connection
        if spec is None:
            return True
        now = self.clock()
        bucket = self.connections.get(connection_id)
        if bucket is None:
            bucket = self.connections[connection_id] = TokenBucket(spec, now)
        return bucket.take(now)

    def forget(self, connection_id: str) -> None:
        self.connections.pop(connection_id, None)


def build_throttler(api: ApiConfig, clock: Callable[[], float], counters: Counters | None = None) -> Throttler:
    """From `throttling:` (stage), `routes.X.throttling`, `http.routes.X.throttling` and
    `limits.maxMessagesPerSecond`/`messageBurst`, all checked at load (wsgw.config.throttling)."""
    routes = {key: route.throttling for key, route in api.routes.items() if route.throttling is not None}
    rest = {r.key: r.throttling for r in (api.http.routes if api.http else ()) if r.throttling is not None}
    per_connection = connection_bucket(api.limits.max_messages_per_second, api.limits.message_burst)
    return Throttler(api.throttling, routes, per_connection, clock, rest_routes=rest, counters=counters,
                     name=f"{api.api_id}/{api.stage}")
