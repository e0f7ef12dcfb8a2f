"""`python -m loadtest SCENARIO …` and `python -m loadtest suite [--full]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.procs import raise_nofile_limit
from loadtest.progress import Progress
from loadtest.runner import Measurement
from loadtest.scenarios import SCENARIOS, Context, Options

HERE = Path(__file__).resolve().parent
PRESETS = {
    # quick: ≤ 2 minutes on 2 cores; full: ≤ 10 minutes
    "quick": {"duration": 2.5, "connections": 50, "idle_connections": 2_000, "broadcast_connections": 200,
              "drain_timeout": 2.0, "msg_timeout": 3.0},
    "full": {"duration": 10.0, "connections": 100, "idle_connections": 10_000, "broadcast_connections": 1_000,
             "drain_timeout": 5.0, "msg_timeout": 5.0},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest",
                                     description="Load wsgw and the bare WebSocket stack side by side.")
    parser.add_argument("scenario", choices=[*SCENARIOS, "suite"], help="one scenario, or the whole suite")
    parser.add_argument("--full", action="store_true", help="suite: the full run (≤ 10 min) instead of quick")
    parser.add_argument("--connections", type=int, help="WebSocket connections (default 50; suite preset)")
    parser.add_argument("--duration", type=float, help="seconds of load per measurement")
    parser.add_argument("--rate", type=float, default=0.0, help="latency-at-rate: messages/s (default: 50%% of "
                        "the routed maximum)")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--processes", type=int, help="load generator processes (default: half the cores)")
    parser.add_argument("--idle-connections", type=int, help="idle-memory: connections to hold open")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    parser.add_argument("--report", type=Path, help="write the Markdown report here (suite default: "
                        "loadtest/REPORT.md)")
    parser.add_argument("--banner", default=os.environ.get("BENCH_BANNER", ""),
                        help="a line printed at the top of the report (e.g. how quiet the machine was)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--from-json", type=Path, help="measure nothing: re-render the report (and plots) from "
                        "a results file written earlier")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    preset = PRESETS["full" if args.full else "quick"] if args.scenario == "suite" else {}
    opts = Options(**preset)  # type: ignore[arg-type]
    for key in ("connections", "duration", "processes", "idle_connections"):
        value = getattr(args, key)
        if value is not None:
            setattr(opts, key, value)
    opts.rate = args.rate
    opts.size = args.size
    return opts


def run(names: list[str], opts: Options, progress: Progress) -> list[Measurement]:
    ctx = Context(opts, progress)
    for name in names:
        ctx.results.extend(SCENARIOS[name](ctx))
    return ctx.results


def write_report(path: Path, results: list[Measurement], meta: dict[str, Any]) -> None:
    plots = report.write_plots(results, path.parent / "plots")
    links = {title: os.path.relpath(plot, path.parent) for title, plot in plots.items()}
    path.write_text(report.render_markdown(results, meta, links), encoding="utf-8")
    print(f"report: {path}", file=sys.stderr)


def _command(argv: list[str]) -> str:
    """The command line as the report shows it (without the banner, which is printed on its own)."""
    shown: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--banner":
            skip = True
            continue
        if not word.startswith("--banner="):
            shown.append(word)
    return " ".join(["python -m loadtest", *shown])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_json is not None:
        results, meta = report.from_json(json.loads(args.from_json.read_text(encoding="utf-8")))
        if args.banner:
            meta["banner"] = args.banner
        write_report(args.report or HERE / "REPORT.md", results, meta)
        return 0
    opts = options_from(args)
    soft, hard = raise_nofile_limit(max(opts.idle_connections, opts.connections, opts.broadcast_connections))
    names = list(SCENARIOS) if args.scenario == "suite" else [args.scenario]
    progress = Progress(quiet=args.quiet)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    try:
        results = run(names, opts, progress)
    finally:
        progress.close()
    meta = {
        "generated": report.now_iso(),
        "command": _command(argv if argv is not None else sys.argv[1:]),
        "suite": ("full suite" if args.full else "quick suite") if args.scenario == "suite" else args.scenario,
        "elapsed_seconds": time.monotonic() - started,
        "machine": report.machine_info(),
        "options": opts.__dict__,
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "nofile": {"soft": soft, "hard": hard},
        "banner": args.banner,
    }
    json_path = args.json or (HERE / "results" / "latest.json" if args.scenario == "suite" else None)
    if json_path is not None:
        report.write_json(json_path, results, meta)
    report_path = args.report or (HERE / "REPORT.md" if args.scenario == "suite" else None)
    if report_path is not None:
        write_report(report_path, results, meta)
    print("\n".join(report.measurement_rows(results)))
    for ratio in report.ratios(results):
        if ratio.value is not None:
            print(f"{ratio.name}: {ratio.value:.2f}x")
    failed = [m for m in results if m.status == "failed" or not m.accounted]
    return 1 if failed else 0
