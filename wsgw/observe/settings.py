"""`accessLogSettings` and `tracing` of wsgw.yaml, validated into frozen values (pure: no I/O).

AWS's stage setting `accessLogSettings` has `format` (a template of `$context` variables) and
`destinationArn` (a CloudWatch log group or Firehose stream); wsgw keeps `format` and replaces the ARN with
`destination`: `stdout`, `{file: path, maxBytes, backupCount}` or `{syslog: /dev/log | host:port}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wsgw.errors import ConfigProblem

ACCESS_LOG_KEYS = {"format", "destination", "destinationArn"}
TRACING_KEYS = {"enabled", "exporter", "endpoint", "serviceName"}
VARIABLE = re.compile(r"\$context\.([A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9_])")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318/v1/traces"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where access log lines go: kind is stdout, file or syslog."""

    kind: str = "stdout"
    path: str = ""                  # file path, or syslog socket path
    host: str = ""                  # syslog over UDP
    port: int = 0
    max_bytes: int = DEFAULT_MAX_BYTES
    backup_count: int = DEFAULT_BACKUPS


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    format: str | None              # None: one JSON object per line with every variable that has a value
    destination: Destination


@dataclass(frozen=True, slots=True)
class TracingSettings:
    exporter: str = "otlp"          # otlp (HTTP, to `endpoint`), console, or memory (tests)
    endpoint: str = DEFAULT_OTLP_ENDPOINT
    service_name: str = "wsgw"


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    access_log: AccessLogSettings | None = None
    tracing: TracingSettings | None = None


def parse_observe(raw: dict[str, Any], problems: list[ConfigProblem]) -> ObserveSettings:
    """Read `accessLogSettings` and `tracing` from the top level of the API document."""
    return ObserveSettings(_access_log(raw.get("accessLogSettings"), problems),
                           _tracing(raw.get("tracing"), problems))


def _access_log(raw: Any, problems: list[ConfigProblem]) -> AccessLogSettings | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return AccessLogSettings(None, Destination())
    if not isinstance(raw, dict):
        problems.append(ConfigProblem("accessLogSettings", "must be a mapping such as {destination: stdout}"))
        return None
    for unknown in sorted(set(raw) - ACCESS_LOG_KEYS):
        problems.append(ConfigProblem(f"accessLogSettings.{unknown}", "unknown key (format, destination)"))
    fmt = raw.get("format")
    if fmt is not None and (not isinstance(fmt, str) or not VARIABLE.search(fmt)):
        problems.append(ConfigProblem("accessLogSettings.format",
                                      "must be a string with at least one $context variable, e.g. "
                                      "'$context.requestId $context.routeKey $context.status'"))
        fmt = None
    return AccessLogSettings(fmt, _destination(raw.get("destination", "stdout"), problems))


def _destination(raw: Any, problems: list[ConfigProblem]) -> Destination:
    key = "accessLogSettings.destination"
    if raw == "stdout":
        return Destination()
    if raw == "syslog":
        return Destination("syslog", path="/dev/log")
    if isinstance(raw, dict) and set(raw) <= {"file", "maxBytes", "backupCount"} and isinstance(raw.get("file"), str):
        size, backups = raw.get("maxBytes", DEFAULT_MAX_BYTES), raw.get("backupCount", DEFAULT_BACKUPS)
        if not isinstance(size, int) or size < 0 or not isinstance(backups, int) or backups < 0:
            problems.append(ConfigProblem(key, "maxBytes and backupCount must be whole numbers >= 0 "
                                               "(0 maxBytes: never rotate)"))
            return Destination()
        return Destination("file", path=raw["file"], max_bytes=size, backup_count=backups)
    if isinstance(raw, dict) and set(raw) == {"syslog"} and isinstance(raw["syslog"], str):
        target = raw["syslog"]
        if target.startswith("/"):
            return Destination("syslog", path=target)
        host, _, port = target.rpartition(":")
        if host and port.isdigit():
            return Destination("syslog", host=host, port=int(port))
    problems.append(ConfigProblem(key, "must be stdout, syslog, {file: path, maxBytes: N, backupCount: N} or "
                                       "{syslog: /dev/log | host:port}"))
    return Destination()


def _tracing(raw: Any, problems: list[ConfigProblem]) -> TracingSettings | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(ConfigProblem("tracing", "must be a mapping such as {exporter: otlp, endpoint: URL}"))
        return None
    for unknown in sorted(set(raw) - TRACING_KEYS):
        problems.append(ConfigProblem(f"tracing.{unknown}", "unknown key (exporter, endpoint, serviceName)"))
    if raw.get("enabled", True) is False:
        return None
    exporter = raw.get("exporter", "otlp")
    if exporter not in ("otlp", "console", "memory"):
        problems.append(ConfigProblem("tracing.exporter", "must be otlp, console or memory"))
        exporter = "otlp"
    endpoint = raw.get("endpoint", DEFAULT_OTLP_ENDPOINT)
    service = raw.get("serviceName", "wsgw")
    if not isinstance(endpoint, str) or not isinstance(service, str):
        problems.append(ConfigProblem("tracing", "endpoint and serviceName must be strings"))
        return TracingSettings()
    problem = tracing_unavailable()
    if problem is not None:
        problems.append(ConfigProblem("tracing", problem))
    return TracingSettings(exporter, endpoint, service)


def tracing_unavailable() -> str | None:
    """Why tracing cannot run here (the OpenTelemetry packages are an extra), or None."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return "needs the OpenTelemetry packages: pip install 'wsgw[otel]' (the otel extra), or remove 'tracing'"
    return None
