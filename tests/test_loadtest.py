"""The load tool's own checks: small runs whose counts add up, loss and errors reported, every JSON field there.

No timed assertions: these runs are bounded by message counts; only their ledgers are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.client import WorkerSpec
from loadtest.hist import Histogram, bucket_of, value_of
from loadtest.payload import make_message, message_id
from loadtest.procs import ROOT, NotAvailable, ServerProcess, baseline_server, wsgw_node
from loadtest.progress import Progress
from loadtest.report import ratios, render_markdown, to_json
from loadtest.runner import COUNT_KEYS, Measurement, run_workers
from loadtest.scenarios import Context, Options, _measure

QUIET = Progress(quiet=True)


@pytest.fixture
def echo_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A bare websockets echo server; parametrize with its fault flags."""
    flags: list[str] = getattr(request, "param", [])
    with baseline_server("websockets-echo", *flags) as server:
        yield server


def counted_run(url: str, connections: int = 2, messages: int = 20, **kw: object) -> Measurement:
    spec = WorkerSpec(mode="echo", url=url, connections=connections, duration=60, window=1, max_messages=messages,
                      msg_timeout=0.3, drain_timeout=2.0)
    for key, value in kw.items():
        setattr(spec, key, value)
    return run_workers("test", "server", spec, 1, QUIET)


# ----- histogram and payload -------------------------------------------------------------------------------


def test_histogram_percentiles_stay_within_one_percent() -> None:
    hist = Histogram()
    for value in range(1, 100_001):
        hist.record(value)
    for pct in (50, 90, 99, 99.9):
        expected = 100_000 * pct / 100
        assert abs(hist.percentile(pct) - expected) <= expected * 0.01
    assert hist.percentile(100) == hist.max_us == 100_000
    assert hist.min_us == 1


def test_histogram_buckets_hold_their_values_and_merge_exactly() -> None:
    for value in (0, 1, 127, 128, 255, 256, 1_000, 65_535, 10**7):
        assert value_of(bucket_of(value)) >= value
        assert bucket_of(value) == 0 or value_of(bucket_of(value) - 1) < value
    left, right, both = Histogram(), Histogram(), Histogram()
    for value in (5, 500, 5_000):
        left.record(value)
        both.record(value)
    for value in (7, 70_000):
        right.record(value)
        both.record(value)
    left.merge(right)
    assert left == both
    assert Histogram.from_dict(json.loads(json.dumps(both.to_dict()))) == both


def test_empty_histogram_reports_zeros() -> None:
    assert Histogram().summary_ms()["p99"] == 0.0
    assert Histogram().distribution() == []


def test_message_ids_round_trip_and_strangers_have_none() -> None:
    message = make_message(42, "echo", 100)
    assert len(message) == 100
    assert json.loads(message)["action"] == "echo"
    assert message_id(message) == 42
    assert message_id(make_message(7, "echo", 1)) == 7          # never shorter than its head
    assert message_id(b'{"message": "Internal server error"}') is None
    assert message_id(b'{"id":"12ab') is None


# ----- small real runs -------------------------------------------------------------------------------------


def test_every_message_sent_is_received_when_nothing_is_dropped(echo_server: ServerProcess) -> None:
    m = counted_run(echo_server.url)
    assert m.status == "ok"
    assert m.counts["sent"] == 40
    assert m.counts["received"] == 40
    assert m.counts["lost"] == m.counts["errored"] == 0
    assert m.accounted
    assert m.latency_ms["p50"] > 0
    assert sum(1 for _ in m.latency_distribution) > 0


@pytest.mark.parametrize("echo_server", [["--drop-every", "5"]], indirect=True)
def test_a_dropped_message_is_reported_as_lost(echo_server: ServerProcess) -> None:
    m = counted_run(echo_server.url)
    # ids 4, 9, 14, 19 of each of the 2 connections are dropped by the server
    assert m.counts["sent"] == 40
    assert m.counts["lost"] == 8
    assert m.counts["received"] == 32
    assert m.accounted
    markdown = render_markdown([m], _meta(), {})
    assert "🔴 **8 LOST**" in markdown


@pytest.mark.parametrize("echo_server", [["--error-every", "4"]], indirect=True)
def test_error_frames_are_counted_as_errored_not_received(echo_server: ServerProcess) -> None:
    m = counted_run(echo_server.url)
    assert m.counts["errored"] == 10
    assert m.counts["received"] == 30
    assert m.counts["lost"] == 0
    assert m.errors == {"error frame": 10}
    assert m.accounted


def test_routed_echo_through_wsgw_adds_up() -> None:
    with wsgw_node("bench.yaml") as node:
        m = counted_run(node.url, connections=3, messages=10, window=2)
    assert m.counts["sent"] == m.counts["received"] == 30
    assert m.accounted


def test_pushes_through_wsgw_are_delivered_and_acknowledged() -> None:
    with wsgw_node("bench.yaml") as node:
        spec = WorkerSpec(mode="push", url=node.url, push_url=node.http_base, connections=2, duration=0.3,
                          http_connections=1, pipeline=2, drain_timeout=5.0)
        m = run_workers("push-http", "wsgw", spec, 1, QUIET, [node], unit="deliveries/s")
    assert m.status == "ok"
    assert m.counts["sent"] > 0
    assert m.counts["received"] == m.counts["posts_ok"] == m.counts["sent"]
    assert m.accounted


def test_broadcast_baseline_reaches_every_connection_each_round(echo_server: ServerProcess) -> None:
    spec = WorkerSpec(mode="broadcast", url=echo_server.url, connections=5, duration=0.2, broadcast_via="server")
    m = run_workers("broadcast", "websockets.broadcast", spec, 1, QUIET, unit="deliveries/s")
    rounds = m.extra["rounds"]
    assert rounds >= 1
    assert m.counts["received"] == m.counts["sent"] == 5 * rounds
    assert m.accounted


def test_idle_connections_are_all_opened_and_counted(echo_server: ServerProcess) -> None:
    spec = WorkerSpec(mode="idle", url=echo_server.url, connections=20, duration=0, concurrency=4)
    seen: dict[str, int] = {}

    def between() -> dict[str, object]:
        seen["rss"] = echo_server.rss()
        return {"probe": 1}

    m = run_workers("idle-memory", "websockets", spec, 2, QUIET, [echo_server], "bytes/conn", between=between)
    assert m.counts["connects_ok"] == 20
    assert m.extra["probe"] == 1
    assert seen["rss"] > 0


def test_a_server_that_cannot_start_is_reported_not_available_without_figures() -> None:
    broken = ServerProcess("wsgw", [sys.executable, "-c", "print('ConfigError: unknown authorizer type'); exit(2)"])
    with pytest.raises(NotAvailable, match="unknown authorizer type"):
        broken.start()
    ctx = Context(Options(duration=0.1), QUIET)
    m = _measure(ctx, "connect-storm", "wsgw + authorizer", lambda: [broken.start()],
                 lambda s: WorkerSpec(mode="connect", url=s[0].url))
    assert m.status == "not available"
    assert "unknown authorizer type" in m.reason
    assert m.throughput == 0 and m.latency_ms == {} and m.counts["sent"] == 0
    assert "not available" in render_markdown([m], _meta(), {})
    assert all(r.value is None for r in ratios([m]))


def test_cli_json_has_every_field(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    report = tmp_path / "REPORT.md"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "routed", "--connections", "2", "--duration", "0.3", "--quiet",
         "--json", str(out), "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"meta", "measurements", "ratios"}
    assert {"machine", "options", "generated", "loadavg_start", "loadavg_end", "nofile"} <= set(data["meta"])
    assert data["meta"]["nofile"]["soft"] == data["meta"]["nofile"]["hard"]
    m, *engines = data["measurements"]          # the node's default engine, then each engine by name
    assert [e["target"] for e in engines] == ["wsgw websockets-engine", "wsgw picows-engine"]
    assert set(m) == set(Measurement("x", "y").to_dict())
    assert set(m["counts"]) == set(COUNT_KEYS)
    assert {"p50", "p90", "p99", "p99.9", "max"} <= set(m["latency_ms"])
    assert m["accounted"] is True and m["counts"]["sent"] > 0
    assert {"name", "value", "wsgw", "baseline", "note"} == set(data["ratios"][0])
    assert "## Ratios" in report.read_text()


def _meta() -> dict[str, object]:
    from loadtest.report import machine_info

    return {"generated": "now", "command": "test", "suite": "test", "elapsed_seconds": 1.0,
            "machine": machine_info(), "options": Options().__dict__, "loadavg_start": [0], "loadavg_end": [0],
            "banner": ""}


def test_json_document_holds_measurements_and_ratios() -> None:
    m = Measurement("routed", "wsgw", throughput=10.0)
    doc = to_json([m], {"k": "v"})
    assert doc["measurements"][0]["throughput"] == 10.0
    assert doc["measurements"][0]["accounted"] is True
    assert len(doc["ratios"]) == len(ratios([m]))


