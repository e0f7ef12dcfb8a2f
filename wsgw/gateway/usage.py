"""API keys and usage plans: `apiKeyRequired` routes (REST routes and `$connect`) take a key, each key's plan
throttles it and counts its quota per period.

As on AWS: a missing or unknown key is 403 `{"message":"Forbidden"}`; over the plan's rate 429
`{"message":"Too Many Requests"}`; the quota spent 429 `{"message":"Limit Exceeded"}`. Counts live in the
registry's `Counters`: with Redis every node takes from the same bucket and quota, and a quota outlives a
node's restart (one key per period, expiring at its end); without Redis they are this node's.

A presented key is found by its SHA-256 digest and then compared with `hmac.compare_digest`, so how long a
lookup takes says nothing about how much of a guess was right. Key values are never logged: logs and counters
use the key's name.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from wsgw.config import ApiConfig
from wsgw.config.access import QuotaPeriod, SecretUnavailable, UsagePlanSpec
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.headers import Headers
from wsgw.registry.counters import Counters

log = logging.getLogger("wsgw.usage")

FORBIDDEN = (403, "Forbidden")
TOO_MANY = (429, "Too Many Requests")
LIMIT_EXCEEDED = (429, "Limit Exceeded")


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    value: bytes
    plan: UsagePlanSpec | None


def period_end(period: QuotaPeriod, now: float) -> int:
    """The end of the quota period holding `now` (UTC; weeks start on Monday), epoch seconds."""
    day = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    if period == "DAY":
        end = day + datetime.timedelta(days=1)
    elif period == "WEEK":
        end = day + datetime.timedelta(days=7 - day.weekday())
    else:
        end = datetime.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return calendar.timegm(end.timetuple())


class UsagePlans:
    """The API's keys (values read when the node is built) and their plans, counted in `counters`."""

    def __init__(self, api: ApiConfig, counters: Counters, environ: Mapping[str, str]) -> None:
        self.counters = counters
        self.scope = f"{api.api_id}/{api.stage}"
        selection = api.api_key_selection
        self.header = selection.removeprefix("$request.header.") if selection.startswith("$request.header.") \
            else None                     # None: $context.authorizer.usageIdentifierKey
        self.keys: dict[bytes, _Key] = {}
        problems: list[ConfigProblem] = []
        for spec in api.api_keys.values():
            try:
                value = spec.value.resolve(environ)
            except SecretUnavailable as exc:
                problems.append(ConfigProblem(spec.value.key, str(exc)))
                continue
            plan = api.usage_plans.get(spec.usage_plan) if spec.usage_plan else None
            raw = value.encode()
            self.keys[hashlib.sha256(raw).digest()] = _Key(spec.name, raw, plan)
        if problems:
            raise ConfigError(problems)

    def presented(self, headers: Headers, authorizer: Mapping[str, object] | None) -> str | None:
        """The key the request carries, by apiKeySelectionExpression."""
        if self.header is not None:
            return headers.last(self.header)
        value = (authorizer or {}).get("usageIdentifierKey")
        return value if isinstance(value, str) else None

    def find(self, presented: str | None) -> _Key | None:
        if not presented:
            return None
        raw = presented.encode("utf-8", "replace")
        found = self.keys.get(hashlib.sha256(raw).digest())
        if found is None or not hmac.compare_digest(found.value, raw):
            return None
        return found

    async def admit(self, presented: str | None, now: float | None = None) -> tuple[int, str] | None:
        """None when the request may go on; else AWS's status and message."""
        key = self.find(presented)
        if key is None:
            log.warning("API key %s: 403", "missing" if not presented else "unknown")
            return FORBIDDEN
        plan = key.plan
        if plan is None:
            return None
        try:
            if plan.throttle is not None and not await self.counters.take(
                    f"{self.scope}/key/{key.name}", plan.throttle.rate, plan.throttle.burst):
                log.info("API key %s over its plan's rate (%s): 429", key.name, plan.name)
                return TOO_MANY
            if plan.quota is not None:
                end = period_end(plan.quota.period, time.time() if now is None else now)
                if not await self.counters.spend(f"{self.scope}/quota/{key.name}", plan.quota.limit, end):
                    log.info("API key %s spent its %s quota (%s): 429", key.name, plan.quota.period, plan.name)
                    return LIMIT_EXCEEDED
        except Exception as exc:        # Redis unreachable: let it through, say so (a quota never takes the API down)
            log.warning("usage plan counters unavailable (%s): key %s let through", exc, key.name)
        return None


def build_usage(api: ApiConfig, counters: Counters, environ: Mapping[str, str]) -> UsagePlans | None:
    """The API's usage plans when any route requires a key, else None."""
    required = any(r.api_key_required for r in api.routes.values()) or any(
        r.api_key_required for r in (api.http.routes if api.http else ()))
    if not required:
        return None
    if not api.api_keys:
        raise ConfigError.single("apiKeys", "routes require an API key (apiKeyRequired: true) but none is defined")
    return UsagePlans(api, counters, environ)


__all__ = ["UsagePlans", "build_usage", "period_end"]
