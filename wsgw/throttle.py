"""Token-bucket throttling as API Gateway does it: per stage, per route, and (wsgw's own) per connection.

Pure: no I/O and no clock of its own (the caller passes `now` in seconds from any monotonic clock), so it
is tested with plain numbers. AWS's semantics: `rateLimit` tokens per second refill a bucket holding at
most `burstLimit` tokens; a request takes one token or is throttled; a burst limit of 0 blocks everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from wsgw.config import ApiConfig
from wsgw.config.throttling import BucketSpec


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
                 per_connection: BucketSpec | None, clock: Callable[[], float]) -> None:
        self.clock = clock
        now = clock()
        self.stage = TokenBucket(stage, now) if stage is not None else None
        self.routes = {key: TokenBucket(spec, now) for key, spec in routes.items()}
        self.per_connection = per_connection
        self.connections: dict[str, TokenBucket] = {}

    def admit_route(self, route_key: str) -> bool:
        """One request on a route: the route's own bucket if it has one, else the stage's (as AWS's
        route settings override the stage defaults)."""
        bucket = self.routes.get(route_key, self.stage)
        return bucket is None or bucket.take(self.clock())

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


def build_throttler(api: ApiConfig, clock: Callable[[], float]) -> Throttler:
    """From `throttling:` (stage), `routes.X.throttling` and `limits.maxMessagesPerSecond`/`messageBurst`,
    all checked at load (wsgw.config.throttling)."""
    routes = {key: route.throttling for key, route in api.routes.items() if route.throttling is not None}
    per_connection = connection_bucket(api.limits.max_messages_per_second, api.limits.message_burst)
    return Throttler(api.throttling, routes, per_connection, clock)
