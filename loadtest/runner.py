"""Runs one measurement: worker processes against a started server, released together, merged exactly."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loadtest.client import WorkerSpec, worker_main
from loadtest.hist import Histogram
from loadtest.procs import ServerProcess
from loadtest.progress import Progress

COUNT_KEYS = ("sent", "received", "errored", "lost", "unmatched", "posts_ok", "posts_failed", "connects_ok",
              "connects_failed", "connection_drops")


@dataclass
class Measurement:
    """One row of the report: a scenario against one target, with every figure the report prints."""

    scenario: str
    target: str
    status: str = "ok"                       # ok | not available | failed
    reason: str = ""
    unit: str = "msgs/s"
    throughput: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_distribution: list[tuple[float, float]] = field(default_factory=list)
    series: list[tuple[float, float]] = field(default_factory=list)     # (t, per-second rate)
    seconds: float = 0.0
    client_cpu_percent: list[float] = field(default_factory=list)
    server_cpu_percent: float = 0.0
    server_rss_mb: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accounted(self) -> bool:
        c = self.counts
        return c["sent"] == c["received"] + c["errored"] + c["lost"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accounted"] = self.accounted
        return data


def unavailable(scenario: str, target: str, reason: str, unit: str = "msgs/s") -> Measurement:
    return Measurement(scenario, target, status="not available", reason=reason, unit=unit)


def split(total: int, parts: int) -> list[int]:
    """Spread a count over workers as evenly as possible."""
    parts = max(1, parts)
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_workers(scenario: str, target: str, spec: WorkerSpec, processes: int, progress: Progress,
                servers: Sequence[ServerProcess] = (), unit: str = "msgs/s",
                between: Callable[[], dict[str, Any]] | None = None) -> Measurement:
    """Start `processes` workers sharing spec's connections (and rate), release them together, merge results.

    `between` runs after every worker is ready and released (idle mode: measure memory), before stop."""
    ctx = multiprocessing.get_context("fork")
    out: Any = ctx.Queue()
    go = ctx.Event()
    stop = ctx.Event()
    conns = split(spec.connections, processes)
    specs = [replace(spec, connections=n, rate=spec.rate / processes, worker_index=i)
             for i, n in enumerate(conns) if n > 0 or spec.mode == "connect"]
    if spec.mode == "connect":
        specs = [replace(s, concurrency=c) for s, c in zip(specs, split(spec.concurrency, len(specs)), strict=True)]
    procs = [ctx.Process(target=worker_main, args=(s, out, go, stop), daemon=True) for s in specs]
    for proc in procs:
        proc.start()
    measurement = Measurement(scenario, target, unit=unit, params=_params(spec, processes))
    results: dict[int, dict[str, Any]] = {}
    ticks: dict[int, list[tuple[float, int, int]]] = {}
    task = progress.start(f"{scenario} · {target}", spec.duration)
    try:
        ready: set[int] = set()
        deadline = time.monotonic() + 180
        while len(ready) < len(procs) and time.monotonic() < deadline:
            _pump(out, ready, results, ticks, 0.1)
            if len(results) == len(procs):
                break
        for server in servers:
            server.mark()
        started = time.monotonic()
        go.set()
        if between is not None:
            time.sleep(0.2)
            measurement.extra.update(between())
            stop.set()
        budget = spec.duration + spec.drain_timeout + 60
        while len(results) < len(procs) and time.monotonic() < started + budget:
            _pump(out, ready, results, ticks, 0.1)
            done = sum(t[-1][1] for t in ticks.values() if t)
            progress.update(task, time.monotonic() - started, done / max(1e-9, time.monotonic() - started), unit)
        measurement.seconds = time.monotonic() - started
        measurement.server_cpu_percent = sum(s.cpu_since_mark() for s in servers)
        measurement.server_rss_mb = sum(s.rss() for s in servers) / 1e6
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        progress.finish(task)
    missing = len(procs) - len(results)
    if missing:
        measurement.errors[f"{missing} worker(s) gave no result"] = missing
        measurement.status = "failed"
    _merge(measurement, list(results.values()))
    crashed = [kind for kind in measurement.errors if kind.startswith("worker failed")]
    if crashed:
        measurement.status = "failed"
        measurement.reason = "; ".join(crashed)
    return measurement


def _pump(out: Any, ready: set[int], results: dict[int, dict[str, Any]],
          ticks: dict[int, list[tuple[float, int, int]]], timeout: float) -> None:
    try:
        message = out.get(timeout=timeout)
    except queue.Empty:
        return
    while True:
        kind = message[0]
        if kind == "ready":
            ready.add(message[1])
        elif kind == "tick":
            ticks.setdefault(message[1], []).append(tuple(message[2]))
        elif kind == "result":
            results[message[1]] = message[2]
        try:
            message = out.get_nowait()
        except queue.Empty:
            return


def _merge(measurement: Measurement, results: list[dict[str, Any]]) -> None:
    hist = Histogram()
    for result in results:
        for key, value in result["counts"].items():
            measurement.counts[key] = measurement.counts.get(key, 0) + int(value)
        hist.merge(Histogram.from_dict(result["hist"]))
        for kind, count in result["errors"].items():
            measurement.errors[kind] = measurement.errors.get(kind, 0) + count
        extra = result["extra"]
        if "cpu_percent" in extra:
            measurement.client_cpu_percent.append(round(float(extra["cpu_percent"]), 1))
        for key, value in extra.items():
            if key in ("cpu_percent", "wall_seconds", "active_seconds"):
                continue
            if isinstance(value, int | float) and key in measurement.extra:
                measurement.extra[key] += value
            elif key not in measurement.extra:
                measurement.extra[key] = value
    measurement.latency_ms = {k: round(v, 3) for k, v in hist.summary_ms().items()} if hist.total else {}
    points = hist.distribution()
    step = max(1, len(points) // 200)                 # ≤ ~200 points: enough for the plot, small JSON
    kept = points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
    measurement.latency_distribution = [(round(p, 4), round(v, 3)) for p, v in kept]
    measurement.series = _rate_series([r["series"] for r in results])
    walls = [float(r["extra"].get("active_seconds", 0)) for r in results]
    wall = max(walls) if walls else 0.0
    done = measurement.counts["received"]
    if measurement.unit == "posts/s":
        done = measurement.counts["posts_ok"]
    measurement.throughput = round(done / wall, 1) if wall > 0 else 0.0


def _rate_series(per_worker: list[list[list[float]]]) -> list[tuple[float, float]]:
    """Per-second received rate over time, summed over workers (ticks line up by index)."""
    longest = max((len(s) for s in per_worker), default=0)
    series: list[tuple[float, float]] = []
    previous = 0.0
    previous_t = 0.0
    for i in range(longest):
        t = max(float(s[i][0]) for s in per_worker if len(s) > i)
        received = sum(float(s[min(i, len(s) - 1)][1]) for s in per_worker if s)
        if t > previous_t:
            series.append((round(t, 2), round((received - previous) / (t - previous_t), 1)))
        previous, previous_t = received, t
    return series


def _params(spec: WorkerSpec, processes: int) -> dict[str, Any]:
    keys = {"echo": ("connections", "duration", "size", "window", "rate", "action"),
            "push": ("connections", "duration", "size", "http_connections", "pipeline", "pusher"),
            "broadcast": ("connections", "duration", "size", "http_connections", "broadcast_via"),
            "connect": ("duration", "concurrency"),
            "idle": ("connections", "concurrency")}[spec.mode]
    params = {k: getattr(spec, k) for k in keys}
    params["client_processes"] = processes
    return params
