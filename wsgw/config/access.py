"""Access control beyond authorizers, checked at load (pure, no I/O): `management.auth` and its credentials
(IAM/SigV4 on the management API), `apiKeys`, `usagePlans` and `apiKeySelectionExpression`.

Secrets may be written inline, or named by file (`...File`, read when the node is built, relative to the
config's folder) or by environment variable (`...Env`), so that a config file can be committed without them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wsgw.config.common import Collector, did_you_mean
from wsgw.config.throttling import BucketSpec, parse_bucket

QuotaPeriod = Literal["DAY", "WEEK", "MONTH"]
QUOTA_PERIODS: tuple[QuotaPeriod, ...] = ("DAY", "WEEK", "MONTH")
DEFAULT_API_KEY_SELECTION = "$request.header.x-api-key"
MIN_API_KEY_LENGTH = 20            # AWS: an API key value has at least 20 characters
MANAGEMENT_KEYS = frozenset({"allowFrom", "auth", "credentials"})
#: where management credentials come from when `credentials:` is not given
ENV_ACCESS_KEY_ID = "WSGW_MANAGEMENT_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "WSGW_MANAGEMENT_SECRET_ACCESS_KEY"
_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9]{4,128}$")


class SecretUnavailable(Exception):
    """A secret's file or environment variable is missing: reported as a problem of its config key."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret given inline, by file or by environment variable; read only when the node is built."""

    key: str                                   # the config key it was given under, for problems
    value: str | None = None
    file: Path | None = None
    env: str | None = None

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        if self.value is not None:
            return self.value
        if self.file is not None:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretUnavailable(f"cannot read {self.file}: {exc.strerror or exc}") from None
        assert self.env is not None
        found = (os.environ if environ is None else environ).get(self.env)
        if not found:
            raise SecretUnavailable(f"environment variable {self.env} is not set")
        return found

    def __repr__(self) -> str:        # never print the value
        return f"Secret({self.key})"


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """One access key the management API (and AWS_IAM routes) accept."""

    access_key_id: Secret
    secret_access_key: Secret


@dataclass(frozen=True, slots=True)
class ManagementConfig:
    """`management:`: who may call @connections, @broadcast, @groups (allowFrom), and how they sign (auth)."""

    allow_from: tuple[str, ...]
    auth: Literal["none", "iam"] = "none"
    credentials: tuple[CredentialSpec, ...] = ()     # empty with auth: iam → the WSGW_MANAGEMENT_* variables


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    limit: int
    period: QuotaPeriod


@dataclass(frozen=True, slots=True)
class UsagePlanSpec:
    name: str
    throttle: BucketSpec | None
    quota: QuotaSpec | None


@dataclass(frozen=True, slots=True)
class ApiKeySpec:
    name: str                 # what logs and counters use; the value never appears there
    value: Secret
    usage_plan: str | None


def parse_secret(raw: Mapping[str, Any], name: str, key: str, base_dir: Path, problems: Collector,
                 required: bool = True) -> Secret | None:
    """`name`, `nameFile` or `nameEnv` from `raw` (exactly one)."""
    given = [k for k in (name, f"{name}File", f"{name}Env") if raw.get(k) is not None]
    if len(given) > 1:
        problems.add(f"{key}.{given[1]}", f"give one of {name}, {name}File, {name}Env")
        return None
    if not given:
        if required:
            problems.add(f"{key}.{name}", f"missing: give {name}, {name}File (a file) or {name}Env (a variable)")
        return None
    which = given[0]
    value = raw[which]
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value):
        problems.add(f"{key}.{which}", "must be a non-empty string")
        return None
    text = str(value)
    if which.endswith("File"):
        return Secret(f"{key}.{which}", file=base_dir / text)
    if which.endswith("Env"):
        return Secret(f"{key}.{which}", env=text)
    return Secret(f"{key}.{which}", value=text)


def parse_management(raw: Any, default_allow: tuple[str, ...], base_dir: Path, problems: Collector,
                     parse_networks: Any) -> ManagementConfig:
    if raw is None:
        return ManagementConfig(default_allow)
    if not isinstance(raw, dict):
        problems.add("management", "must be a mapping with allowFrom, auth and credentials")
        return ManagementConfig(default_allow)
    for unknown in set(map(str, raw)) - MANAGEMENT_KEYS:
        problems.add(f"management.{unknown}", "unknown key" + did_you_mean(unknown, MANAGEMENT_KEYS))
    allow = parse_networks(raw["allowFrom"], problems) if "allowFrom" in raw else default_allow
    auth = raw.get("auth", "none")
    if auth not in ("none", "iam"):
        problems.add("management.auth", "must be none (allowFrom only) or iam (SigV4-signed calls)")
        auth = "none"
    credentials: list[CredentialSpec] = []
    raw_credentials = raw.get("credentials")
    if raw_credentials is not None:
        if auth != "iam":
            problems.add("management.credentials", "only used with auth: iam")
        if not isinstance(raw_credentials, list) or not raw_credentials:
            problems.add("management.credentials",
                         "must be a list such as [{accessKeyId: AKID..., secretAccessKeyEnv: MY_SECRET}]")
            raw_credentials = []
        for i, item in enumerate(raw_credentials):
            key = f"management.credentials[{i}]"
            if not isinstance(item, dict):
                problems.add(key, "must be a mapping with accessKeyId and secretAccessKey")
                continue
            allowed = {f"{n}{s}" for n in ("accessKeyId", "secretAccessKey") for s in ("", "File", "Env")}
            for unknown in set(map(str, item)) - allowed:
                problems.add(f"{key}.{unknown}", "unknown key" + did_you_mean(unknown, allowed))
            akid = parse_secret(item, "accessKeyId", key, base_dir, problems)
            secret = parse_secret(item, "secretAccessKey", key, base_dir, problems)
            if akid is not None and akid.value is not None and not _ACCESS_KEY_ID.match(akid.value):
                problems.add(f"{key}.accessKeyId", "must be letters and digits (e.g. AKIDEXAMPLE)")
            if akid is not None and secret is not None:
                credentials.append(CredentialSpec(akid, secret))
    elif auth == "iam":
        credentials.append(CredentialSpec(Secret("management.credentials", env=ENV_ACCESS_KEY_ID),
                                          Secret("management.credentials", env=ENV_SECRET_ACCESS_KEY)))
    return ManagementConfig(allow, auth, tuple(credentials))


def parse_usage_plans(raw: Any, problems: Collector) -> dict[str, UsagePlanSpec]:
    plans: dict[str, UsagePlanSpec] = {}
    if raw is None:
        return plans
    if not isinstance(raw, dict):
        problems.add("usagePlans", "must be a mapping of plan name to {throttle, quota}")
        return plans
    for name, plan in raw.items():
        key = f"usagePlans.{name}"
        if not isinstance(plan, dict):
            problems.add(key, "must be a mapping such as {throttle: {rateLimit: 10, burstLimit: 20}, "
                              "quota: {limit: 10000, period: DAY}}")
            continue
        for unknown in set(map(str, plan)) - {"throttle", "quota"}:
            problems.add(f"{key}.{unknown}", "unknown key; use throttle and quota")
        throttle = parse_bucket(plan.get("throttle"), f"{key}.throttle", problems)
        quota = None
        raw_quota = plan.get("quota")
        if raw_quota is not None:
            if not isinstance(raw_quota, dict) or set(map(str, raw_quota)) - {"limit", "period"}:
                problems.add(f"{key}.quota", "must be {limit: N, period: DAY|WEEK|MONTH}")
            else:
                limit, period = raw_quota.get("limit"), str(raw_quota.get("period", "")).upper()
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                    problems.add(f"{key}.quota.limit", "must be a whole number of requests >= 0")
                elif period not in QUOTA_PERIODS:
                    problems.add(f"{key}.quota.period", "must be DAY, WEEK or MONTH")
                else:
                    quota = QuotaSpec(limit, period)
        plans[str(name)] = UsagePlanSpec(str(name), throttle, quota)
    return plans


def parse_api_keys(raw: Any, plans: Mapping[str, UsagePlanSpec], base_dir: Path,
                   problems: Collector) -> dict[str, ApiKeySpec]:
    keys: dict[str, ApiKeySpec] = {}
    if raw is None:
        return keys
    if not isinstance(raw, dict):
        problems.add("apiKeys", "must be a mapping of key name to {value, usagePlan}")
        return keys
    allowed = {"value", "valueFile", "valueEnv", "usagePlan"}
    for name, spec in raw.items():
        key = f"apiKeys.{name}"
        if not isinstance(spec, dict):
            problems.add(key, "must be a mapping such as {valueEnv: MOBILE_KEY, usagePlan: basic}")
            continue
        for unknown in set(map(str, spec)) - allowed:
            problems.add(f"{key}.{unknown}", "unknown key" + did_you_mean(unknown, allowed))
        value = parse_secret(spec, "value", key, base_dir, problems)
        if value is not None and value.value is not None and len(value.value) < MIN_API_KEY_LENGTH:
            problems.add(f"{key}.value", f"an API key has at least {MIN_API_KEY_LENGTH} characters (as on AWS)")
            value = None
        plan = spec.get("usagePlan")
        if plan is not None and (not isinstance(plan, str) or plan not in plans):
            problems.add(f"{key}.usagePlan", f"'{plan}' is not defined under usagePlans"
                         + did_you_mean(str(plan), set(plans)))
            plan = None
        if value is not None:
            keys[str(name)] = ApiKeySpec(str(name), value, plan)
    return keys


def parse_api_key_selection(raw: Any, problems: Collector) -> str:
    """`apiKeySelectionExpression`: `$request.header.x-api-key` (the default), another header, or
    `$context.authorizer.usageIdentifierKey`."""
    if raw is None:
        return DEFAULT_API_KEY_SELECTION
    if raw == "$context.authorizer.usageIdentifierKey" or (
            isinstance(raw, str) and re.match(r"^\$request\.header\.[!#$%&'*+.^_`|~0-9A-Za-z-]+$", raw)):
        return str(raw)
    problems.add("apiKeySelectionExpression", "must be $request.header.<name> (default "
                 f"{DEFAULT_API_KEY_SELECTION}) or $context.authorizer.usageIdentifierKey")
    return DEFAULT_API_KEY_SELECTION


def parse_route_access(route: dict[str, Any], key: str, authorizer: object,
                       problems: Collector) -> tuple[bool, tuple[str, ...] | None, str]:
    """`apiKeyRequired`, `authorizationScopes` and `authorizationType` of a route (REST or WebSocket)."""
    required = route.get("apiKeyRequired", False)
    if not isinstance(required, bool):
        problems.add(f"{key}.apiKeyRequired", "must be true or false")
        required = False
    scopes = route.get("authorizationScopes")
    if scopes is not None:
        if isinstance(scopes, str):
            scopes = [scopes]
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s for s in scopes):
            problems.add(f"{key}.authorizationScopes", "must be a list of scopes such as [chat/write, admins]")
            scopes = None
        elif authorizer is None:
            problems.add(f"{key}.authorizationScopes", "needs an authorizer (type jwt or cognito) on this route")
    kind = str(route.get("authorizationType", "NONE")).upper()
    if kind not in ("NONE", "AWS_IAM", "CUSTOM", "JWT", "COGNITO_USER_POOLS"):
        problems.add(f"{key}.authorizationType", "must be NONE or AWS_IAM (an authorizer sets the others)")
        kind = "NONE"
    if kind == "AWS_IAM" and authorizer is not None:
        problems.add(f"{key}.authorizationType", "AWS_IAM and an authorizer exclude each other (as on AWS)")
    return required, (tuple(scopes) if scopes else None), kind if kind == "AWS_IAM" else "NONE"


__all__ = ["ApiKeySpec", "CredentialSpec", "ManagementConfig", "QuotaSpec", "Secret", "SecretUnavailable",
           "UsagePlanSpec", "parse_api_key_selection", "parse_api_keys", "parse_management", "parse_route_access",
           "parse_usage_plans"]
