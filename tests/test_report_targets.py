"""The report's issue-19 table (loadtest/report.py: path_targets): each row is this run's ratio against its target,
with the figure the issue started from; the idle row reads the idle-memory scenario when it measured the CPU."""

from __future__ import annotations

from loadtest.report import PathTarget, path_targets
from loadtest.runner import Measurement


def run(idle_cpu: float | None = None, idle_held: int = 100_000) -> list[Measurement]:
    idle = Measurement("idle-memory", "wsgw memory", unit="bytes/conn",
                       extra={"server_bytes_per_connection": 14_000.0})
    idle.counts["connects_ok"] = idle_held
    if idle_cpu is not None:
        idle.extra["idle_cpu_percent"] = idle_cpu
    return [
        Measurement("echo-baseline", "websockets-echo", throughput=30_000.0, latency_ms={"p99": 3.0}),
        Measurement("routed", "wsgw", throughput=36_000.0),
        Measurement("routed-sync", "wsgw", throughput=15_000.0),
        Measurement("latency-at-rate", "wsgw", latency_ms={"p99": 4.5}),
        Measurement("latency-at-rate", "websockets-echo", latency_ms={"p99": 3.0}),
        Measurement("push-http", "wsgw", throughput=27_000.0, unit="deliveries/s"),
        Measurement("push-redis", "wsgw A←B (HTTP on B)", throughput=6_000.0, unit="deliveries/s"),
        idle,
        Measurement("idle-memory", "websockets", unit="bytes/conn", extra={"server_bytes_per_connection": 15_000.0}),
    ]


def row_of(rows: list[PathTarget], start: str) -> PathTarget:
    return next(row for row in rows if row.figure.startswith(start))


def test_each_row_is_this_runs_ratio_against_its_target_beside_the_issues_starting_figure() -> None:
    rows = path_targets(run(idle_cpu=1.5))
    routed = row_of(rows, "routed messages/s, async")
    assert (routed.before, routed.goal, routed.measured, routed.met) == ("0.54x", "≥ 1.2x", "1.20x", True)
    sync = row_of(rows, "routed messages/s, sync")
    assert (sync.before, sync.goal, sync.measured, sync.met) == ("0.26x", "≥ 0.7x", "0.50x", False)
    p99 = row_of(rows, "p99")
    assert (p99.before, p99.goal, p99.measured, p99.met) == ("2.65x", "≤ 1.2x", "1.50x", False)
    push = row_of(rows, "POST @connections")
    assert (push.before, push.goal, push.measured, push.met) == ("0.52x", "≥ 0.8x", "0.90x", True)
    remote = row_of(rows, "push from another node")
    assert (remote.before, remote.goal, remote.measured, remote.met) == ("0.19x", "≥ 0.4x", "0.20x", False)


def test_the_idle_row_reads_the_scenario_when_it_measured_cpu_and_says_not_measured_otherwise() -> None:
    measured = row_of(path_targets(run(idle_cpu=1.5)), "idle")
    assert (measured.measured, measured.met) == ("100,000, 0.93x, 1.5%", True)
    assert row_of(path_targets(run(idle_cpu=7.0)), "idle").met is False
    assert row_of(path_targets(run(idle_cpu=1.0, idle_held=10_000)), "idle").met is False
    missing = row_of(path_targets(run()), "idle")
    assert (missing.measured, missing.met) == ("not measured", None)


def test_a_scenario_that_did_not_run_leaves_its_row_not_measured() -> None:
    remote = row_of(path_targets([m for m in run() if m.scenario != "push-redis"]), "push from another node")
    assert (remote.measured, remote.met) == ("not available", None)
