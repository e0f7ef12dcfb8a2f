"""Token-bucket throttling as API Gateway does it: per stage, per route, and (wsgw's own) per connection.

Pure: no I/O and no clock of its own (the caller passes `now` in seconds from any monotonic clock), so it
is tested with plain numbers. AWS's semantics: `rateLimit` tokens per second refill a bucket holding at
most `burstLimit` tokens; a request takes one token or is throttled; a burst limit of 0 blocks everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wsgw.config import ApiConfig
from wsgw.errors import ConfigError, ConfigProblem

THROTTLE_KEYS = frozenset({"rateLimit", "burstLimit"})


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """`rate` tokens per second into a bucket of `burst` tokens (AWS: ThrottlingRateLimit/BurstLimit)."""

    rate: float
    burst: int


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


def parse_bucket(raw: Any, key: str) -> BucketSpec | None:
    """Read `{rateLimit, burstLimit}`; None when absent; ConfigError naming `key.rateLimit` etc. when wrong."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError.single(key, "must be a mapping such as {rateLimit: 100, burstLimit: 50}")
    problems = [ConfigProblem(f"{key}.{k}", "unknown key; use rateLimit and burstLimit")
                for k in raw if k not in THROTTLE_KEYS]
    rate = raw.get("rateLimit")
    burst = raw.get("burstLimit")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate < 0:
        problems.append(ConfigProblem(f"{key}.rateLimit", "must be a number of requests per second >= 0"))
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        problems.append(ConfigProblem(f"{key}.burstLimit", "must be a whole number of requests >= 0 "
                                      "(the bucket size; 0 refuses every request)"))
    if problems:
        raise ConfigError(problems)
    assert isinstance(rate, (int, float)) and isinstance(burst, int)
    return BucketSpec(float(rate), burst)


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
    """From `throttling:` (stage), `routes.X.throttling` and `limits.maxMessagesPerSecond`/`messageBurst`;
    ConfigError lists every bad setting by key."""
    problems: list[ConfigProblem] = []
    stage: BucketSpec | None = None
    try:
        stage = parse_bucket(api.throttling or None, "throttling")
    except ConfigError as exc:
        problems.extend(exc.problems)
    routes: dict[str, BucketSpec] = {}
    for key, route in api.routes.items():
        try:
            spec = parse_bucket(route.throttling, f"routes.{key}.throttling")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if spec is not None:
            routes[key] = spec
    if problems:
        raise ConfigError(problems)
    per_connection = connection_bucket(api.limits.max_messages_per_second, api.limits.message_burst)
    return Throttler(stage, routes, per_connection, clock)
