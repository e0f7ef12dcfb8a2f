"""Counters and gauges kept as plain numbers (no locks on the hot path), rendered as Prometheus text."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

HELP = {
    "wsgw_connections_opened_total": "WebSocket connections accepted after $connect",
    "wsgw_connections_refused_total": "WebSocket handshakes refused, by HTTP status",
    "wsgw_connections_closed_total": "WebSocket connections ended ($disconnect scheduled)",
    "wsgw_messages_received_total": "Messages received from clients",
    "wsgw_messages_sent_total": "Frames sent to clients (route responses, pushes, errors)",
    "wsgw_integration_errors_total": "Integration calls that failed, by kind",
    "wsgw_throttled_total": "Requests refused by throttling (Too Many Requests), by scope",
    "wsgw_route_misses_total": "Messages that matched no route and no $default (Forbidden frame)",
    "wsgw_pushes_total": "@connections POSTs, by result",
    "wsgw_http_requests_total": "HTTP requests answered, by status",
    "wsgw_messages_dropped_total": "Messages received but not handled, by reason (shutdown)",
    "wsgw_budget_exceeded_total": "Per-connection budgets that closed or held back a connection, by budget",
}


class Metrics:
    """Counters keyed by (name, label) pairs; one dict increment per event."""

    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, label: str = "", amount: int = 1) -> None:
        self.counters[(name, label)] += amount

    def value(self, name: str, label: str = "") -> int:
        return self.counters.get((name, label), 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    def render(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        for (name, label), value in sorted(self.counters.items()):
            if name not in seen:
                seen.add(name)
                lines.append(f"# HELP {name} {HELP.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
            labels = "{" + label + "}" if label else ""
            lines.append(f"{name}{labels} {value}")
        for name, read in sorted(self.gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {read()}")
        return "\n".join(lines) + "\n"


def render_labelled(parts: list[tuple[str, Metrics]]) -> str:
    """Several gateways' metrics as one Prometheus text, each line carrying its gateway's labels (api, stage,
    version), so that a canary can be compared with the version it may replace."""
    by_name: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for labels, metrics in parts:
        for (name, label), value in sorted(metrics.counters.items()):
            kinds[name] = "counter"
            joined = f"{labels},{label}" if label else labels
            by_name.setdefault(name, []).append(f"{name}{{{joined}}} {value}")
        for name, read in sorted(metrics.gauges.items()):
            kinds[name] = "gauge"
            by_name.setdefault(name, []).append(f"{name}{{{labels}}} {read()}")
    lines: list[str] = []
    for name in sorted(by_name):
        if kinds[name] == "counter":
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} {kinds[name]}")
        lines.extend(by_name[name])
    return "\n".join(lines) + "\n"
