"""The ten scenarios of the suite; each measures wsgw and, where there is one, its bare-stack baseline."""

from __future__ import annotations

import importlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtest.client import WorkerSpec
from loadtest.procs import NotAvailable, RedisServer, ServerProcess, baseline_server, wsgw_node
from loadtest.progress import Progress
from loadtest.runner import Measurement, run_workers, unavailable


def default_processes() -> int:
    """Half the cores for the generator (the server gets the other half): 1 on a 2-core machine."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class Options:
    connections: int = 50
    duration: float = 5.0
    rate: float = 0.0
    size: int = 64
    processes: int = field(default_factory=default_processes)
    window: int = 2
    idle_connections: int = 2_000
    broadcast_connections: int = 200
    drain_timeout: float = 3.0
    msg_timeout: float = 5.0


@dataclass
class Context:
    """What one suite run shares between scenarios (the routed maximum feeds latency-at-rate)."""

    options: Options
    progress: Progress
    results: list[Measurement] = field(default_factory=list)

    def spec(self, mode: str, url: str, **overrides: object) -> WorkerSpec:
        o = self.options
        base = WorkerSpec(mode=mode, url=url, connections=o.connections, duration=o.duration, size=o.size,
                          window=o.window, msg_timeout=o.msg_timeout, drain_timeout=o.drain_timeout)
        for key, value in overrides.items():
            setattr(base, key, value)
        return base

    def note_problems(self, m: Measurement) -> Measurement:
        if m.status != "ok":
            self.progress.note(f"[yellow]{m.scenario} · {m.target}: {m.status}: {m.reason}[/yellow]"
                               if self.progress.console else f"{m.scenario} · {m.target}: {m.status}: {m.reason}")
        elif m.counts["lost"] or m.counts["errored"]:
            self.progress.note(f"[bold red]{m.scenario} · {m.target}: {m.counts['lost']} LOST, "
                               f"{m.counts['errored']} errored[/bold red]")
        if any(c >= 90 for c in m.client_cpu_percent):
            self.progress.note(f"[yellow]{m.scenario} · {m.target}: load generator saturated "
                               f"(CPU {m.client_cpu_percent}%)[/yellow]")
        return m


Scenario = Callable[[Context], list[Measurement]]


def _measure(ctx: Context, scenario: str, target: str, start: Callable[[], list[ServerProcess]],
             spec_for: Callable[[list[ServerProcess]], WorkerSpec], unit: str = "msgs/s",
             processes: int | None = None) -> Measurement:
    """Start the servers, run the workers, stop the servers; an unstartable server is 'not available'."""
    servers: list[ServerProcess] = []
    try:
        try:
            for server in start():
                servers.append(server)
        except NotAvailable as exc:
            return ctx.note_problems(unavailable(scenario, target, str(exc), unit))
        spec = spec_for(servers)
        m = run_workers(scenario, target, spec, processes or ctx.options.processes, ctx.progress, servers, unit)
        return ctx.note_problems(m)
    finally:
        for server in servers:
            server.stop()


def _one(server: ServerProcess) -> Callable[[], list[ServerProcess]]:
    return lambda: [server.start()]


# ----- 1-3: echo through the bare stack and through wsgw -------------------------------------------------


def echo_baseline(ctx: Context) -> list[Measurement]:
    out = []
    for kind in ("websockets-echo", "picows-echo"):
        out.append(_measure(ctx, "echo-baseline", kind, _one(baseline_server(kind)),
                            lambda s: ctx.spec("echo", s[0].url, action="echo")))
    return out


# The frame engines measured beside the node's default one ("wsgw"), each its own target row.
ENGINE_TARGETS = {"wsgw websockets-engine": "websockets", "wsgw picows-engine": "picows"}


def routed(ctx: Context) -> list[Measurement]:
    out = [_measure(ctx, "routed", "wsgw", _one(wsgw_node("bench.yaml")),
                    lambda s: ctx.spec("echo", s[0].url, action="echo"))]
    for target, engine in ENGINE_TARGETS.items():
        out.append(_measure(ctx, "routed", target, _one(wsgw_node("bench.yaml", engine=engine)),
                            lambda s: ctx.spec("echo", s[0].url, action="echo")))
    return out


def routed_sync(ctx: Context) -> list[Measurement]:
    return [_measure(ctx, "routed-sync", "wsgw", _one(wsgw_node("bench.yaml")),
                     lambda s: ctx.spec("echo", s[0].url, action="syncecho"))]


# ----- 4-5: pushes ---------------------------------------------------------------------------------------


def push_http(ctx: Context) -> list[Measurement]:
    return [_measure(ctx, "push-http", "wsgw", _one(wsgw_node("bench.yaml")),
                     lambda s: ctx.spec("push", s[0].url, push_url=s[0].http_base), unit="deliveries/s")]


def redis_pusher_problem() -> str | None:
    """Why `wsgw.client.RedisPusher` cannot be used (None when it can)."""
    try:
        module = importlib.import_module("wsgw.client")
    except ImportError as exc:
        return f"wsgw.client is not importable ({exc})"
    if not hasattr(module, "AsyncRedisPusher"):
        return "wsgw.client has no AsyncRedisPusher"
    return None


def push_redis(ctx: Context) -> list[Measurement]:
    """Clients on node A; posts land on node B (HTTP), or go straight through Redis (wsgw.client.RedisPusher)."""
    scenario = "push-redis"
    unit = "deliveries/s"
    out: list[Measurement] = []
    try:
        redis = RedisServer().start()
    except NotAvailable as exc:
        return [ctx.note_problems(unavailable(scenario, "wsgw A←B (HTTP on B)", str(exc), unit)),
                ctx.note_problems(unavailable(scenario, "wsgw A←RedisPusher", str(exc), unit))]
    try:
        def two_nodes() -> list[ServerProcess]:
            a = wsgw_node("bench.yaml", redis.url, name="wsgw A (--redis)").start()
            try:
                b = wsgw_node("bench.yaml", redis.url, name="wsgw B (--redis)").start()
            except NotAvailable:
                a.stop()
                raise
            return [a, b]

        # 64 keep-alive connections with one POST each in flight (as many as the Redis pusher's 64 tasks): a
        # pipelined connection is answered in order, so a few deep pipelines would measure the round trip only.
        out.append(_measure(ctx, scenario, "wsgw A←B (HTTP on B)", two_nodes,
                            lambda s: ctx.spec("push", s[0].url, push_url=s[1].http_base, http_connections=64,
                                               pipeline=1), unit=unit))
        problem = redis_pusher_problem()
        if problem:
            out.append(ctx.note_problems(unavailable(scenario, "wsgw A←RedisPusher", problem, unit)))
        else:
            out.append(_measure(ctx, scenario, "wsgw A←RedisPusher",
                                lambda: [wsgw_node("bench.yaml", redis.url, name="wsgw A (--redis)").start()],
                                lambda s: ctx.spec("push", s[0].url, pusher="redis", redis_url=redis.url,
                                                   push_url=s[0].http_base), unit=unit))
    finally:
        redis.stop()
    return out


# ----- 6: broadcast ----------------------------------------------------------------------------------------


def broadcast(ctx: Context) -> list[Measurement]:
    """wsgw's POST @broadcast (one request per round) and N pipelined POST @connections vs websockets.broadcast."""
    n = ctx.options.broadcast_connections
    unit = "deliveries/s"
    api = _measure(ctx, "broadcast", "wsgw (POST @broadcast)", _one(wsgw_node("bench.yaml")),
                   lambda s: ctx.spec("broadcast", s[0].url, connections=n, push_url=s[0].http_base,
                                      broadcast_via="api", http_connections=1), unit=unit, processes=1)
    wsgw = _measure(ctx, "broadcast", "wsgw (N x POST @connections)", _one(wsgw_node("bench.yaml")),
                    lambda s: ctx.spec("broadcast", s[0].url, connections=n, push_url=s[0].http_base,
                                       broadcast_via="http", http_connections=8), unit=unit, processes=1)
    bare = _measure(ctx, "broadcast", "websockets.broadcast", _one(baseline_server("websockets-echo")),
                    lambda s: ctx.spec("broadcast", s[0].url, connections=n, broadcast_via="server"),
                    unit=unit, processes=1)
    return [api, wsgw, bare]


# ----- 7: connect storm --------------------------------------------------------------------------------------


def connect_storm(ctx: Context) -> list[Measurement]:
    unit = "connects/s"
    out = [
        _measure(ctx, "connect-storm", "websockets (bare handshake)", _one(baseline_server("websockets-echo")),
                 lambda s: ctx.spec("connect", s[0].url, concurrency=32), unit=unit),
        _measure(ctx, "connect-storm", "wsgw memory + $connect", _one(wsgw_node("bench.yaml")),
                 lambda s: ctx.spec("connect", s[0].url, concurrency=32), unit=unit),
        _measure(ctx, "connect-storm", "wsgw memory + $connect + authorizer", _one(wsgw_node("bench-auth.yaml")),
                 lambda s: ctx.spec("connect", s[0].url, concurrency=32, query="token=" + secrets.token_hex(8)),
                 unit=unit),
    ]
    try:
        redis = RedisServer().start()
    except NotAvailable as exc:
        out.append(ctx.note_problems(unavailable("connect-storm", "wsgw redis + $connect", str(exc), unit)))
        return out
    try:
        out.append(_measure(ctx, "connect-storm", "wsgw redis + $connect", _one(wsgw_node("bench.yaml", redis.url)),
                            lambda s: ctx.spec("connect", s[0].url, concurrency=32), unit=unit))
    finally:
        redis.stop()
    return out


# ----- 8: idle memory ------------------------------------------------------------------------------------------


IDLE_PER_WORKER = 20_000
IDLE_HOLD_SECONDS = 30.0


def idle_memory(ctx: Context) -> list[Measurement]:
    n = ctx.options.idle_connections
    out = []
    for target, server in (("websockets", baseline_server("websockets-echo")),
                           ("picows", baseline_server("picows-echo")),
                           ("wsgw memory", wsgw_node("bench.yaml")),
                           *((f"wsgw memory {name.removeprefix('wsgw ')}", wsgw_node("bench.yaml", engine=engine))
                             for name, engine in ENGINE_TARGETS.items())):
        out.append(_idle(ctx, target, server, n, None))
    try:
        redis = RedisServer().start()
    except NotAvailable as exc:
        out.append(ctx.note_problems(unavailable("idle-memory", "wsgw redis", str(exc), "bytes/conn")))
        return out
    try:
        out.append(_idle(ctx, "wsgw redis", wsgw_node("bench.yaml", redis.url), n, redis))
    finally:
        redis.stop()
    return out


def _idle(ctx: Context, target: str, server: ServerProcess, n: int, redis: RedisServer | None) -> Measurement:
    unit = "bytes/conn"
    try:
        server.start()
    except NotAvailable as exc:
        return ctx.note_problems(unavailable("idle-memory", target, str(exc), unit))
    try:
        time.sleep(0.3)
        rss_before = server.rss()
        redis_before = (redis.info_value("used_memory") or 0) if redis else 0

        def measure() -> dict[str, object]:
            time.sleep(1.0)                     # let the server settle after the last handshake
            rss_after = server.rss()
            # What holding them costs: the server's CPU while they sit idle (keepalive sweep, pings, pongs),
            # over one default ping interval when there are many.
            hold = IDLE_HOLD_SECONDS if n >= 10_000 else 2.0
            server.mark()
            time.sleep(hold)
            figures: dict[str, object] = {"rss_before_mb": rss_before / 1e6, "rss_after_mb": rss_after / 1e6,
                                          "server_bytes_per_connection": (rss_after - rss_before) / n,
                                          "idle_cpu_percent": round(server.cpu_since_mark(), 2),
                                          "idle_hold_seconds": hold,
                                          "loadavg_1m": round(os.getloadavg()[0], 2)}
            if redis is not None:
                redis_after = redis.info_value("used_memory") or 0
                figures["redis_bytes_per_connection"] = (redis_after - redis_before) / n
                figures["redis_keys"] = redis.dbsize()
            return figures

        # One source address gives ~28,000 ports: beyond IDLE_PER_WORKER connections, more workers, each
        # from its own loopback address.
        workers = max(ctx.options.processes, -(-n // IDLE_PER_WORKER))
        spec = ctx.spec("idle", server.url, connections=n, concurrency=64, duration=0.0,
                        spread_sources=n > IDLE_PER_WORKER)
        m = run_workers("idle-memory", target, spec, workers, ctx.progress, [server], unit, between=measure)
        opened = m.counts["connects_ok"]
        if opened != n:
            m.errors[f"only {opened} of {n} connections opened"] = n - opened
        m.throughput = round(float(str(m.extra.get("server_bytes_per_connection", 0.0))), 1)
        return ctx.note_problems(m)
    finally:
        server.stop()


# ----- 9: latency at a fixed rate ------------------------------------------------------------------------------


def latency_at_rate(ctx: Context) -> list[Measurement]:
    """Open-loop load at 50% of the routed maximum (measured in this run, or --rate) on wsgw and websockets."""
    out: list[Measurement] = []
    rate = ctx.options.rate
    if rate <= 0:
        routed_max = next((m.throughput for m in ctx.results if m.scenario == "routed" and m.status == "ok"), 0.0)
        if not routed_max:
            calibration = routed(ctx)[0]
            calibration.scenario = "latency-at-rate"
            calibration.target = "wsgw (calibration: routed maximum)"
            out.append(calibration)
            routed_max = calibration.throughput
        rate = max(10.0, routed_max / 2)
    for target, server in (("wsgw", wsgw_node("bench.yaml")), ("websockets-echo", baseline_server("websockets-echo"))):
        m = _measure(ctx, "latency-at-rate", target, _one(server),
                     lambda s: ctx.spec("echo", s[0].url, action="echo", rate=rate))
        m.extra["target_rate"] = round(rate, 1)
        out.append(m)
    return out


# ----- 10: REST response cache, hit against miss -----------------------------------------------------------


def rest_cache(ctx: Context) -> list[Measurement]:
    """REST req/s of a cache hit, a cache miss and an uncached route (one handler, one node), 3 rounds in turn."""
    from loadtest import rest_cache as bench

    task = ctx.progress.start("rest-cache · hit / miss / plain", (ctx.options.duration + 0.5) * 9 + 3)
    try:
        figures, load = bench.run(ctx.options.duration, connections=32, rounds=3)
    except Exception as exc:
        return [ctx.note_problems(Measurement("rest-cache", "wsgw", status="failed", reason=str(exc), unit="req/s"))]
    finally:
        ctx.progress.finish(task)
    labels = {"hit": "wsgw GET cache hit", "miss": "wsgw GET cache miss", "plain": "wsgw GET no cache"}
    out = []
    for f in figures:
        m = Measurement("rest-cache", labels[f.target], unit="req/s", throughput=round(f.median, 1),
                        seconds=ctx.options.duration)
        m.extra.update({"rounds_req_per_s": [round(r, 1) for r in f.rates], "min": round(min(f.rates), 1),
                        "max": round(max(f.rates), 1), "load_average": [round(x, 2) for x in load]})
        out.append(m)
    return out


SCENARIOS: dict[str, Scenario] = {
    "echo-baseline": echo_baseline,
    "routed": routed,
    "routed-sync": routed_sync,
    "push-http": push_http,
    "push-redis": push_redis,
    "broadcast": broadcast,
    "connect-storm": connect_storm,
    "idle-memory": idle_memory,
    "latency-at-rate": latency_at_rate,
    "rest-cache": rest_cache,
}
