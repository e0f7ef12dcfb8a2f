"""`throttling:` (stage) and `routes.X.throttling`: token buckets as API Gateway sets them, checked at load."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsgw.config.common import Collector, did_you_mean

THROTTLE_KEYS = frozenset({"rateLimit", "burstLimit", "scope"})
SCOPES = ("node", "cluster")


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """`rate` tokens per second into a bucket of `burst` tokens (AWS: ThrottlingRateLimit/BurstLimit)."""

    rate: float
    burst: int
    scope: str = "node"        # node: each node has its own bucket (the default); cluster: one bucket in Redis


def parse_bucket(raw: Any, key: str, problems: Collector) -> BucketSpec | None:
    """Read `{rateLimit, burstLimit}`; None when absent or wrong (each problem names `key.rateLimit` etc.)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.add(key, "must be a mapping such as {rateLimit: 100, burstLimit: 50}")
        return None
    before = len(problems.problems)
    for name in raw:
        if name not in THROTTLE_KEYS:
            problems.add(f"{key}.{name}", "unknown key; use rateLimit, burstLimit and scope"
                         + did_you_mean(str(name), THROTTLE_KEYS))
    rate = raw.get("rateLimit")
    burst = raw.get("burstLimit")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate < 0:
        problems.add(f"{key}.rateLimit", "must be a number of requests per second >= 0")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        problems.add(f"{key}.burstLimit", "must be a whole number of requests >= 0 "
                     "(the bucket size; 0 refuses every request)")
    scope = raw.get("scope", "node")
    if scope not in SCOPES:
        problems.add(f"{key}.scope", "must be node (a bucket per node, the default) or cluster (one bucket "
                     "shared by every node through Redis)")
    if len(problems.problems) > before:
        return None
    assert isinstance(rate, (int, float)) and isinstance(burst, int)
    return BucketSpec(float(rate), burst, str(scope))
