"""Results out: JSON with every figure, the Markdown report with ratios to the same run's baselines, PNG plots."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from loadtest.runner import Measurement

HERE = Path(__file__).resolve().parent


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (CPU, memory, versions, limits, load)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions = {}
    for dist in ("websockets", "picows", "uvloop", "httptools", "orjson", "redis"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "kernel": platform.release(),
            "python": sys.version.split()[0], "versions": versions, "nofile_soft": soft, "nofile_hard": hard,
            "loadavg": list(os.getloadavg())}


@dataclass
class Ratio:
    name: str
    value: float | None           # None: one side is not available
    wsgw: str
    baseline: str
    note: str = ""


def _find(ms: Sequence[Measurement], scenario: str, target: str) -> Measurement | None:
    for m in ms:
        if m.scenario == scenario and m.target == target and m.status == "ok":
            return m
    return None


def _ratio(name: str, a: Measurement | None, b: Measurement | None, key: str = "throughput",
           note: str = "") -> Ratio:
    def value(m: Measurement) -> float:
        if key == "throughput":
            return m.throughput
        if key.startswith("latency:"):
            return m.latency_ms.get(key.split(":", 1)[1], 0.0)
        return float(m.extra.get(key, 0.0))

    def show(m: Measurement | None) -> str:
        if m is None:
            return "not available"
        v = value(m)
        unit = m.unit if key == "throughput" else ("ms" if key.startswith("latency:") else "B")
        return f"{m.target}: {v:,.1f} {unit}" if unit != "ms" else f"{m.target}: {v:,.3f} ms"

    if a is None or b is None or value(b) == 0:
        return Ratio(name, None, show(a), show(b), note)
    return Ratio(name, value(a) / value(b), show(a), show(b), note)


def ratios(ms: Sequence[Measurement]) -> list[Ratio]:
    """The report's closing table: wsgw figure ÷ baseline figure, both from this run."""
    ws = _find(ms, "echo-baseline", "websockets-echo")
    pico = _find(ms, "echo-baseline", "picows-echo")
    routed_m = _find(ms, "routed", "wsgw")
    sync_m = _find(ms, "routed-sync", "wsgw")
    push = _find(ms, "push-http", "wsgw")
    return [
        _ratio("routed msgs/s ÷ bare websockets echo", routed_m, ws),
        _ratio("routed msgs/s ÷ picows echo (ceiling)", routed_m, pico),
        _ratio("routed p50 latency ÷ bare websockets p50", routed_m, ws, "latency:p50", "lower is better"),
        _ratio("routed-sync msgs/s ÷ routed (thread-pool cost)", sync_m, routed_m),
        _ratio("routed-sync msgs/s ÷ bare websockets echo", sync_m, ws),
        _ratio("push-http deliveries/s ÷ bare websockets echo msgs/s", push, ws,
               note="a push is one POST + one frame; an echo is one frame each way"),
        _ratio("push-redis (HTTP on B) ÷ push-http same node",
               _find(ms, "push-redis", "wsgw A←B (HTTP on B)"), push),
        _ratio("push-redis (RedisPusher) ÷ push-http same node", _find(ms, "push-redis", "wsgw A←RedisPusher"), push),
        _ratio("broadcast deliveries/s ÷ websockets.broadcast",
               _find(ms, "broadcast", "wsgw (POST @broadcast)"), _find(ms, "broadcast", "websockets.broadcast"),
               note="one POST /{stage}/@broadcast per round"),
        _ratio("broadcast as N x POST @connections ÷ websockets.broadcast",
               _find(ms, "broadcast", "wsgw (N x POST @connections)"), _find(ms, "broadcast", "websockets.broadcast"),
               note="one POST per connection, pipelined"),
        _ratio("connects/s with $connect ÷ bare websockets handshakes",
               _find(ms, "connect-storm", "wsgw memory + $connect"),
               _find(ms, "connect-storm", "websockets (bare handshake)")),
        _ratio("connects/s with authorizer ÷ without",
               _find(ms, "connect-storm", "wsgw memory + $connect + authorizer"),
               _find(ms, "connect-storm", "wsgw memory + $connect")),
        _ratio("connects/s Redis registry ÷ memory registry", _find(ms, "connect-storm", "wsgw redis + $connect"),
               _find(ms, "connect-storm", "wsgw memory + $connect")),
        _ratio("idle RSS per connection ÷ bare websockets", _find(ms, "idle-memory", "wsgw memory"),
               _find(ms, "idle-memory", "websockets"), "server_bytes_per_connection", "lower is better"),
        _ratio("idle RSS per connection ÷ picows", _find(ms, "idle-memory", "wsgw memory"),
               _find(ms, "idle-memory", "picows"), "server_bytes_per_connection", "lower is better"),
        _ratio("idle RSS per connection, Redis ÷ memory registry", _find(ms, "idle-memory", "wsgw redis"),
               _find(ms, "idle-memory", "wsgw memory"), "server_bytes_per_connection", "lower is better"),
        _ratio("p99 at 50% of routed max ÷ websockets at the same rate", _find(ms, "latency-at-rate", "wsgw"),
               _find(ms, "latency-at-rate", "websockets-echo"), "latency:p99", "lower is better"),
        _ratio("REST req/s cache hit ÷ cache miss (same handler)", _find(ms, "rest-cache", "wsgw GET cache hit"),
               _find(ms, "rest-cache", "wsgw GET cache miss"), note="medians of 3 rounds; spread in the details"),
        _ratio("REST req/s cache miss ÷ no cache (the cache's cost)", _find(ms, "rest-cache", "wsgw GET cache miss"),
               _find(ms, "rest-cache", "wsgw GET no cache")),
    ]


@dataclass
class Target:
    """One performance target of issue 7 and what this run measured for it."""

    figure: str
    goal: str
    measured: str
    met: bool | None              # None: not measured in this run


def _ratio_target(figure: str, goal: float, ratio: Ratio, higher_is_better: bool = True) -> Target:
    if ratio.value is None:
        return Target(figure, f"≥ {goal}x" if higher_is_better else f"≤ {goal}x", "not available", None)
    met = ratio.value >= goal if higher_is_better else ratio.value <= goal
    return Target(figure, f"≥ {goal}x" if higher_is_better else f"≤ {goal}x", f"{ratio.value:.2f}x", met)


def targets(ms: Sequence[Measurement]) -> list[Target]:
    """Issue 7's table, from this run's figures (ratios to baselines measured in the same run)."""
    by_name = {r.name: r for r in ratios(ms)}
    ws = _find(ms, "echo-baseline", "websockets-echo")
    at_rate = _find(ms, "latency-at-rate", "wsgw")
    p99 = at_rate.latency_ms.get("p99") if at_rate is not None else None
    redis_http = _ratio("", _find(ms, "push-redis", "wsgw A←B (HTTP on B)"), ws)
    redis_pusher = _ratio("", _find(ms, "push-redis", "wsgw A←RedisPusher"), ws)
    storm = _ratio("", _find(ms, "connect-storm", "wsgw redis + $connect"),
                   _find(ms, "connect-storm", "websockets (bare handshake)"))
    return [
        _ratio_target("routed messages/s (async handler, route response) ÷ bare websockets echo", 1.0,
                      by_name["routed msgs/s ÷ bare websockets echo"]),
        Target("routed p99 latency at 50% of the routed maximum", "≤ 1 ms",
               "not available" if p99 is None else f"{p99:.2f} ms", None if p99 is None else p99 <= 1.0),
        _ratio_target("@connections POST → frame, same node ÷ bare echo msgs/s", 0.7,
                      by_name["push-http deliveries/s ÷ bare websockets echo msgs/s"]),
        _ratio_target("push through Redis from another node (HTTP on B) ÷ bare echo", 0.4, redis_http),
        _ratio_target("push through Redis from a worker (RedisPusher) ÷ bare echo", 0.4, redis_pusher),
        _ratio_target("broadcast deliveries/s ÷ websockets.broadcast", 1.0,
                      by_name["broadcast deliveries/s ÷ websockets.broadcast"]),
        _ratio_target("server memory per idle connection ÷ bare websockets", 1.2,
                      by_name["idle RSS per connection ÷ bare websockets"], higher_is_better=False),
        _ratio_target("connects/s with $connect + Redis registration ÷ bare handshakes", 0.8, storm),
        Target("Redis round trips per routed message", "0",
               "0 (asserted by tests/test_redis_registry.py with INFO commandstats)", True),
    ]


@dataclass
class PathTarget:
    """One row of issue 19's table: the figure as the issue found it, its target, and this run."""

    figure: str
    before: str
    goal: str
    measured: str
    met: bool | None              # None: not measured in this run


IDLE_TARGET_CONNECTIONS = 100_000
IDLE_SWEEP_CPU_PERCENT = 5.0


def _path_target(figure: str, before: str, goal: float, ratio: Ratio, higher_is_better: bool = True) -> PathTarget:
    row = _ratio_target(figure, goal, ratio, higher_is_better)
    return PathTarget(figure, before, row.goal, row.measured, row.met)


def _idle_target(ms: Sequence[Measurement], ratio: Ratio) -> PathTarget:
    """Connections held, RSS per connection ÷ websockets and the idle node's CPU, from the idle-memory row
    (the CPU is there when the scenario measured it: extra `idle_cpu_percent`)."""
    figure = "idle connections held by one node, RSS per connection ÷ bare websockets, keepalive sweep CPU"
    goal = f"{IDLE_TARGET_CONNECTIONS:,}, ≤ 1.0x, < {IDLE_SWEEP_CPU_PERCENT:.0f}% of a core"
    before = "15 KB, 1.03x (10,000 connections)"
    m = _find(ms, "idle-memory", "wsgw memory")
    if m is None or ratio.value is None or "idle_cpu_percent" not in m.extra:
        return PathTarget(figure, before, goal, "not measured", None)
    held = int(m.counts.get("connects_ok", 0))
    cpu = float(str(m.extra["idle_cpu_percent"]))
    met = held >= IDLE_TARGET_CONNECTIONS and ratio.value <= 1.0 and cpu < IDLE_SWEEP_CPU_PERCENT
    return PathTarget(figure, before, goal, f"{held:,}, {ratio.value:.2f}x, {cpu:.1f}%", met)


def path_targets(ms: Sequence[Measurement]) -> list[PathTarget]:
    """Issue 19's table, from this run's figures; `before` is what the issue measured when it was filed."""
    by_name = {r.name: r for r in ratios(ms)}
    ws = _find(ms, "echo-baseline", "websockets-echo")
    redis_http = _ratio("", _find(ms, "push-redis", "wsgw A←B (HTTP on B)"), ws)
    return [
        _path_target("routed messages/s, async handler with route response ÷ bare websockets echo", "0.54x", 1.2,
                     by_name["routed msgs/s ÷ bare websockets echo"]),
        _path_target("routed messages/s, sync handler ÷ bare websockets echo", "0.26x", 0.7,
                     by_name["routed-sync msgs/s ÷ bare websockets echo"]),
        _path_target("p99 routed latency at half of wsgw's maximum rate ÷ bare websockets p99 at the same rate",
                     "2.65x", 1.2, by_name["p99 at 50% of routed max ÷ websockets at the same rate"],
                     higher_is_better=False),
        _path_target("POST @connections → frame, same node ÷ bare echo msgs/s", "0.52x", 0.8,
                     by_name["push-http deliveries/s ÷ bare websockets echo msgs/s"]),
        _path_target("push from another node over HTTP ÷ bare echo msgs/s", "0.19x", 0.4, redis_http),
        _idle_target(ms, by_name["idle RSS per connection ÷ bare websockets"]),
    ]


def from_json(data: dict[str, Any]) -> tuple[list[Measurement], dict[str, Any]]:
    """Measurements and meta back from a results file (to re-render a report without measuring again)."""
    fields = set(Measurement("x", "y").to_dict()) - {"accounted"}
    ms = [Measurement(**{k: v for k, v in raw.items() if k in fields}) for raw in data["measurements"]]
    for m in ms:
        m.latency_distribution = [(float(p), float(v)) for p, v in m.latency_distribution]
        m.series = [(float(t), float(v)) for t, v in m.series]
    return ms, dict(data["meta"])


def to_json(ms: Sequence[Measurement], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "measurements": [m.to_dict() for m in ms],
            "ratios": [r.__dict__ for r in ratios(ms)]}


def write_json(path: Path, ms: Sequence[Measurement], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(ms, meta), indent=1) + "\n", encoding="utf-8")


# ----- Markdown ---------------------------------------------------------------------------------------------


def _loss(m: Measurement) -> str:
    c = m.counts
    parts = []
    if c["lost"]:
        parts.append(f"🔴 **{c['lost']:,} LOST**")
    if c["errored"]:
        parts.append(f"🔴 **{c['errored']:,} errored**")
    if not m.accounted:
        parts.append("🔴 **counts do not add up**")
    return ", ".join(parts) or "0"


def _ms(m: Measurement, key: str) -> str:
    return f"{m.latency_ms[key]:.2f}" if key in m.latency_ms else "-"


def measurement_rows(ms: Sequence[Measurement]) -> list[str]:
    head = ("| target | result | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | sent | received | lost / errored "
            "| generator CPU % | server CPU % | server RSS MB |")
    rows = [head, "|" + "---|" * 13]
    for m in ms:
        if m.status != "ok":
            reason = m.reason.replace("|", "\\|")
            rows.append(f"| {m.target} | **{m.status}**: {reason} |" + " - |" * 11)
            continue
        figure = f"{m.throughput:,.0f} {m.unit}"
        cpu = ", ".join(f"{c:.0f}" for c in m.client_cpu_percent) or "-"
        if any(c >= 90 for c in m.client_cpu_percent):
            cpu += " ⚠ saturated"
        rows.append(f"| {m.target} | **{figure}** | {_ms(m, 'p50')} | {_ms(m, 'p90')} | {_ms(m, 'p99')} | "
                    f"{_ms(m, 'p99.9')} | {_ms(m, 'max')} | {m.counts['sent']:,} | {m.counts['received']:,} | "
                    f"{_loss(m)} | {cpu} | {m.server_cpu_percent:.0f} | {m.server_rss_mb:.0f} |")
    return rows


SCENARIO_NOTES = {
    "echo-baseline": "Bare servers, one process each like a wsgw node: the `websockets` asyncio server wsgw is "
                     "built on, and a picows server (the ceiling of the Python stack). Closed loop.",
    "routed": "wsgw, async route `{\"action\": \"echo\"}` with `routeResponse: true`. Closed loop, same load as "
              "echo-baseline.",
    "routed-sync": "The same route served by a sync handler (runs in the thread pool).",
    "push-http": "Clients hold wsgw connections; keep-alive HTTP/1.1 clients pipeline `POST /dev/@connections/{id}` "
                 "to the same node. Figure: frames delivered per second; latency: POST written → frame received.",
    "push-redis": "Two wsgw nodes sharing our own redis-server: clients on node A, POSTs on node B; and pushes "
                  "through `wsgw.client.AsyncRedisPusher` straight into Redis (no HTTP). A push counts once the "
                  "pusher returned True (delivered to the socket).",
    "broadcast": "One message to all N connections per round; the next round starts when every connection has "
                 "it. wsgw: one `POST /{stage}/@broadcast` per round (the frame is encoded once and written to every "
                 "socket), and for comparison N POST @connections pipelined over 8 keep-alive HTTP connections. "
                 "Baseline: `websockets.broadcast` in a bare server. "
                 "Latency: round start → each delivery.",
    "connect-storm": "Handshakes as fast as 32 concurrent connectors can open them; each connection is closed "
                     "(RST) once open. Latency: TCP connect → upgrade complete. The authorizer variant uses "
                     "`loadtest/apps/bench-auth.yaml` (a `type: request` authorizer, cache off, on `$connect`).",
    "idle-memory": "N idle connections held open; figure: server RSS growth ÷ N (and Redis `used_memory` "
                   "growth ÷ N for the Redis registry).",
    "rest-cache": "REST front, one node with a memory response cache, one async handler doing ~0.2 ms of work: "
                  "`GET /dev/hit` (same key: a hit), `GET /dev/miss?n=…` (a new key each time: lookup, call, "
                  "store), `GET /dev/plain` (no cache). 32 keep-alive connections from a raw HTTP/1.1 client "
                  "process; each target 3 rounds in turn; figure: the median, spread in the details "
                  "(`loadtest/rest_cache.py`).",
    "latency-at-rate": "Open loop at a fixed rate of 50% of the routed maximum measured in this run; latency "
                       "counts from each message's scheduled send time (no coordinated omission). The bare "
                       "websockets server at the same rate for comparison.",
}


def render_markdown(ms: Sequence[Measurement], meta: dict[str, Any], plots: dict[str, str]) -> str:
    lines = ["# wsgw benchmark report", ""]
    if meta.get("banner"):
        lines += [f"> **{meta['banner']}**", ""]
    lines += [f"Generated {meta['generated']} by `{meta['command']}` ({meta['suite']}), "
              f"{meta['elapsed_seconds']:.0f} s in all.", ""]
    m = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines += ["## Machine", "",
              "| | |", "|---|---|",
              f"| CPU | {m['cpu']} ({m['cores']} cores) |",
              f"| memory | {m['memory_gb']} GiB |",
              f"| kernel / Python | {m['kernel']} / {m['python']} |",
              f"| libraries | {versions} |",
              f"| RLIMIT_NOFILE | soft {m['nofile_soft']}, hard {m['nofile_hard']} (soft raised to hard by the tool) |",
              f"| load average at start → end | {meta['loadavg_start']} → {meta['loadavg_end']} |",
              f"| load generator | picows clients in {meta['options']['processes']} process(es); "
              "its CPU use is reported per measurement (⚠ at ≥ 90% of a core) |",
              "", "## Ratios (wsgw ÷ baseline, both measured in this run)", "",
              "| ratio | value | wsgw | baseline | note |", "|---|---|---|---|---|"]
    for r in ratios(ms):
        value = f"**{r.value:.2f}x**" if r.value is not None else "not available"
        lines.append(f"| {r.name} | {value} | {r.wsgw} | {r.baseline} | {r.note} |")
    lines += ["", "## Targets (issue 19)", "", "| figure | before | target | this run | |", "|---|---|---|---|---|"]
    for p in path_targets(ms):
        mark = "met" if p.met else ("**missed**" if p.met is False else "not measured")
        lines.append(f"| {p.figure} | {p.before} | {p.goal} | {p.measured} | {mark} |")
    lines += ["", "## Targets (issue 7)", "", "| figure | target | this run | |", "|---|---|---|---|"]
    for t in targets(ms):
        mark = "met" if t.met else ("**missed**" if t.met is False else "not measured")
        lines.append(f"| {t.figure} | {t.goal} | {t.measured} | {mark} |")
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.exists():
        lines += ["", analysis.read_text(encoding="utf-8").strip(), ""]
    lines += ["", "## Scenarios", ""]
    order = list(SCENARIO_NOTES) + sorted({x.scenario for x in ms} - set(SCENARIO_NOTES))
    for number, scenario in enumerate(order, 1):
        rows = [x for x in ms if x.scenario == scenario]
        if not rows:
            continue
        lines += [f"### {number}. {scenario}", "", SCENARIO_NOTES.get(scenario, ""), "", *measurement_rows(rows), ""]
        for x in rows:
            details = _details(x)
            if details:
                lines.append(f"- {x.target}: {details}")
        lines.append("")
    if plots:
        lines += ["## Plots", ""]
        for title, path in plots.items():
            lines += [f"### {title}", "", f"![{title}]({path})", ""]
    lines += ["## How it counts", "",
              "- Every message sent ends as **received** (its id came back), **errored** (an error frame, a failed "
              "send, a non-200 POST) or **lost** (nothing by the end of the drain); the tables show all three "
              "and any loss in red. `sent = received + errored + lost` is checked for every row.",
              "- Latencies are recorded per message in an HdrHistogram-style log-linear histogram (≤ 1% error), "
              "merged exactly across generator processes.",
              "- Throughput counts only the sending period (not the drain).",
              "- 'not available' means the variant could not run on this build (the reason is quoted); no figure "
              "is ever filled in for it.", ""]
    return "\n".join(lines)


def _details(m: Measurement) -> str:
    parts = []
    if m.errors:
        parts.append("errors: " + ", ".join(f"{k} x {v}" for k, v in m.errors.items()))
    if m.counts.get("unmatched"):
        parts.append(f"{m.counts['unmatched']} unmatched frames")
    for key in ("server_bytes_per_connection", "redis_bytes_per_connection", "rss_before_mb", "rss_after_mb",
                "target_rate", "scheduled", "rounds", "round_ms", "late", "open_seconds"):
        if key in m.extra:
            value = m.extra[key]
            if isinstance(value, float):
                value = f"{value:,.1f}"
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v:.2f}" for k, v in value.items() if k in ("p50", "p99", "max"))
            parts.append(f"{key.replace('_', ' ')}: {value}")
    if m.unit in ("posts/s", "deliveries/s") and m.counts.get("posts_ok"):
        parts.append(f"POSTs answered 200: {m.counts['posts_ok']:,}, failed: {m.counts['posts_failed']:,}")
    return "; ".join(parts)


# ----- plots ------------------------------------------------------------------------------------------------


def write_plots(ms: Sequence[Measurement], folder: Path) -> dict[str, Path]:
    """Latency by percentile and throughput over time (PNG); empty when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with_latency = [m for m in ms if m.status == "ok" and m.latency_distribution and m.scenario != "idle-memory"]
    if with_latency:
        fig, ax = plt.subplots(figsize=(13, 6))
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
        for m in with_latency:
            xs = [1 / max(1e-6, 1 - p / 100) for p, _ in m.latency_distribution]
            ys = [v for _, v in m.latency_distribution]
            ax.plot(xs, ys, label=f"{m.scenario} · {m.target}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks, ["50%", "90%", "99%", "99.9%", "99.99%"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title("Latency distribution")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = folder / "latency.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out["Latency distribution"] = path
    with_series = [m for m in ms if m.status == "ok" and len(m.series) > 1 and m.scenario != "idle-memory"]
    if with_series:
        fig, ax = plt.subplots(figsize=(13, 6))
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
        for m in with_series:
            ax.plot([t for t, _ in m.series], [v for _, v in m.series], label=f"{m.scenario} · {m.target} ({m.unit})")
        ax.set_xlabel("seconds")
        ax.set_ylabel("per second")
        ax.set_yscale("log")
        ax.set_title("Throughput over time")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = folder / "throughput.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out["Throughput over time"] = path
    return out


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
