"""The pure token buckets of wsgw/throttle.py, with a hand-driven clock, and their config errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import api_from
from wsgw.config import Collector
from wsgw.config.throttling import parse_bucket
from wsgw.errors import ConfigError
from wsgw.throttle import BucketSpec, Throttler, TokenBucket, build_throttler, connection_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_spends_burst_then_refills_at_rate() -> None:
    bucket = TokenBucket(BucketSpec(rate=2, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False          # 0.8 of a token
    assert bucket.take(0.5) is True           # 1.0
    assert bucket.take(0.5) is False
    assert [bucket.take(60.0) for _ in range(4)] == [True, True, True, False]    # never beyond burst


def test_zero_burst_refuses_everything_and_zero_rate_never_refills() -> None:
    assert TokenBucket(BucketSpec(100, 0), 0.0).take(10.0) is False
    bucket = TokenBucket(BucketSpec(0, 1), 0.0)
    assert bucket.take(0.0) is True
    assert bucket.take(1e6) is False


def test_clock_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket(BucketSpec(1, 1), now=10.0)
    assert bucket.take(10.0) is True
    assert bucket.take(5.0) is False
    assert bucket.take(10.5) is False
    assert bucket.take(11.0) is True


def test_route_bucket_overrides_stage_bucket() -> None:
    clock = Clock()
    throttler = Throttler(BucketSpec(0, 1), {"hot": BucketSpec(0, 2)}, None, clock)
    assert [throttler.admit_route("hot") for _ in range(3)] == [True, True, False]
    assert [throttler.admit_route("other") for _ in range(2)] == [True, False]     # the stage's one token
    assert throttler.admit_route("another") is False                                # shared by routes


def test_no_configuration_admits_everything() -> None:
    throttler = Throttler(None, {}, None, Clock())
    assert all(throttler.admit_route("r") and throttler.admit_message("c") for _ in range(1000))
    assert throttler.connections == {}


def test_connection_buckets_are_separate_and_forgotten() -> None:
    clock = Clock()
    throttler = Throttler(None, {}, connection_bucket(1, 1), clock)
    assert throttler.admit_message("a") and not throttler.admit_message("a")
    assert throttler.admit_message("b")
    clock.now += 1
    assert throttler.admit_message("a")
    throttler.forget("a")
    throttler.forget("never-seen")
    assert set(throttler.connections) == {"b"}


def test_connection_burst_defaults_to_the_rate_rounded_up() -> None:
    assert connection_bucket(0, 5) is None
    assert connection_bucket(2.5, 0) == BucketSpec(2.5, 3)
    assert connection_bucket(0.2, 0) == BucketSpec(0.2, 1)
    assert connection_bucket(10, 4) == BucketSpec(10, 4)


@pytest.mark.parametrize(("raw", "keys"), [
    ("fast", ["t"]),
    ({"rateLimit": -1, "burstLimit": 1}, ["t.rateLimit"]),
    ({"rateLimit": "10", "burstLimit": 1}, ["t.rateLimit"]),
    ({"rateLimit": float("nan"), "burstLimit": 1}, ["t.rateLimit"]),
    ({"rateLimit": 1, "burstLimit": 1.5}, ["t.burstLimit"]),
    ({"rateLimit": 1, "burstLimit": True}, ["t.burstLimit"]),
    ({"rateLimit": 1}, ["t.burstLimit"]),
    ({"rateLimit": 1, "burstLimit": 1, "burst": 2}, ["t.burst"]),
])
def test_bad_bucket_settings_name_the_key(raw: Any, keys: list[str]) -> None:
    problems = Collector()
    assert parse_bucket(raw, "t", problems) is None
    assert [p.key for p in problems.problems] == keys


def test_every_bad_throttle_setting_is_reported_by_key_at_load() -> None:
    with pytest.raises(ConfigError) as error:
        api_from({"throttling": {"rateLimit": 1, "burstLimit": -1},
                  "routes": {"a": {"handler": "testapp:ok", "throttling": {"rateLimit": "x", "burstLimit": 1}},
                             "b": {"handler": "testapp:ok", "throttling": {"rateLimit": 5, "burstLimit": 5}}}})
    assert sorted(p.key for p in error.value.problems) == ["routes.a.throttling.rateLimit", "throttling.burstLimit"]


def test_the_throttler_is_built_from_the_typed_buckets() -> None:
    api = api_from({"throttling": {"rateLimit": 1, "burstLimit": 2},
                    "routes": {"b": {"handler": "testapp:ok", "throttling": {"rateLimit": 5, "burstLimit": 5}}}})
    throttler = build_throttler(api, Clock())
    assert api.throttling == BucketSpec(1, 2) and api.routes["b"].throttling == BucketSpec(5, 5)
    assert set(throttler.routes) == {"b"} and throttler.stage is not None


def test_per_connection_limits_parse_from_config() -> None:
    api = api_from({"routes": {}, "limits": {"maxMessagesPerSecond": 50, "messageBurst": 10}})
    assert build_throttler(api, Clock()).per_connection == BucketSpec(50, 10)
    with pytest.raises(ConfigError) as error:
        api_from({"routes": {}, "limits": {"maxMessagesPerSecond": -1}})
    assert error.value.problems[0].key == "limits.maxMessagesPerSecond"
