"""An HdrHistogram-style latency histogram: log-linear buckets (≤ 1% error), mergeable across processes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SUB_BUCKETS = 128            # per power of two: relative error ≤ 1/128 < 1%
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def bucket_of(value_us: int) -> int:
    """Values below SUB_BUCKETS are exact; above, each power of two is split into SUB_BUCKETS slices."""
    if value_us < SUB_BUCKETS:
        return max(0, value_us)
    exponent = value_us.bit_length() - 8            # SUB_BUCKETS = 2**7, so keep the top 8 bits
    return (exponent + 1) * SUB_BUCKETS + ((value_us >> exponent) - SUB_BUCKETS)


def value_of(bucket: int) -> int:
    """The highest value a bucket can hold (HdrHistogram reports the bucket's upper edge)."""
    if bucket < SUB_BUCKETS:
        return bucket
    exponent = bucket // SUB_BUCKETS - 1
    mantissa = bucket % SUB_BUCKETS + SUB_BUCKETS
    return ((mantissa + 1) << exponent) - 1


@dataclass
class Histogram:
    """Counts of latencies in microseconds; exact max, min and mean are kept beside the buckets."""

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_us: int = 0
    min_us: int = 0
    sum_us: int = 0

    def record(self, value_us: int) -> None:
        value_us = max(0, int(value_us))
        bucket = bucket_of(value_us)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        if self.total == 0 or value_us < self.min_us:
            self.min_us = value_us
        self.total += 1
        self.sum_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        if other.total and (self.total == 0 or other.min_us < self.min_us):
            self.min_us = other.min_us
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, pct: float) -> int:
        """The smallest recorded bucket value at or above pct percent of samples (0 when empty)."""
        if self.total == 0:
            return 0
        rank = max(1, math.ceil(self.total * pct / 100.0))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(value_of(bucket), self.max_us)
        return self.max_us

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p99/p99.9/max (and mean, min) in milliseconds, as the report prints them."""
        out = {f"p{pct:g}": self.percentile(pct) / 1000.0 for pct in PERCENTILES}
        out["max"] = self.max_us / 1000.0
        out["min"] = self.min_us / 1000.0
        out["mean"] = (self.sum_us / self.total / 1000.0) if self.total else 0.0
        return out

    def distribution(self) -> list[tuple[float, float]]:
        """(percentile, value in ms) points for a latency-by-percentile plot."""
        points: list[tuple[float, float]] = []
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            points.append((100.0 * seen / self.total, min(value_of(bucket), self.max_us) / 1000.0))
        return points

    def to_dict(self) -> dict[str, object]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "total": self.total,
                "max_us": self.max_us, "min_us": self.min_us, "sum_us": self.sum_us}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Histogram:
        counts = raw.get("counts") or {}
        assert isinstance(counts, dict)
        return cls({int(k): int(v) for k, v in counts.items()}, int(str(raw.get("total", 0))),
                   int(str(raw.get("max_us", 0))), int(str(raw.get("min_us", 0))), int(str(raw.get("sum_us", 0))))
