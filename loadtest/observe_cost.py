"""What observability costs in messages/s: access logs (JSON to a file) on vs off, latency histograms on vs
off, measured in the same run against one `wsgw run` process per variant, interleaved.

`python -m loadtest.observe_cost [--seconds 4] [--rounds 3] [--clients 50] [--window 8]`: each round runs
every variant for `--seconds`; the report is the median messages/s of each and its ratio to the baseline
(access logs off, histograms on: the default node), and the server's CPU time per message (user + system
of the node process, its writer thread included), which other load on a shared machine disturbs far less
than messages/s. Targets: logging < 15 % cost, histograms < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
BASE = yaml.safe_load((APPS / "bench.yaml").read_text())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    """One `wsgw run` process for a variant."""

    def __init__(self, name: str, config: dict[str, object], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = _free_port()
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsgw", "run", "-c", str(path), "--port", str(self.port), "--log-level", "WARNING"],
            cwd=str(APPS), env={**os.environ, "PYTHONPATH": f"{APPS}:{ROOT}", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the node process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _pump(ws: ClientConnection, window: int, stop_at: float, counts: list[int]) -> None:
    """Keep `window` echoes in flight on one connection until stop_at; count the answers."""
    message = '{"action": "echo", "text": "hello there, a typical chat line"}'
    for _ in range(window):
        await ws.send(message)
    while time.monotonic() < stop_at:
        await ws.recv()
        counts[0] += 1
        await ws.send(message)


async def measure(node: Node, seconds: float, clients: int, window: int) -> tuple[float, float]:
    """Messages/s and the node's CPU µs per message."""
    sockets = [await connect(f"ws://127.0.0.1:{node.port}/dev", compression=None) for _ in range(clients)]
    counts = [0]
    cpu = node.cpu_seconds()
    started = time.monotonic()
    await asyncio.gather(*(_pump(ws, window, started + seconds, counts) for ws in sockets))
    elapsed = time.monotonic() - started
    cpu = node.cpu_seconds() - cpu
    for ws in sockets:
        await ws.close()
    return counts[0] / elapsed, cpu / max(counts[0], 1) * 1e6


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        variants = {
            "baseline (metrics with histograms, no access log)": ({**BASE}, {}),
            "access log JSON to a file": ({**BASE, "accessLogSettings": {"destination": {
                "file": str(folder / "access.log"), "maxBytes": 200_000_000}}}, {}),
            "metrics without histograms": ({**BASE}, {"WSGW_METRICS_HISTOGRAMS": "0"}),
        }
        nodes = [Node(f"v{i}", config, env, folder) for i, (config, env) in enumerate(variants.values())]
        try:
            for node in nodes:
                await node.ready()
            for node in nodes:                                        # warm up each (imports, JIT-free caches)
                await measure(node, 1.0, args.clients, args.window)
            results: dict[str, list[float]] = {name: [] for name in variants}
            costs: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, node in zip(variants, nodes, strict=True):
                    rate, cost = await measure(node, args.seconds, args.clients, args.window)
                    results[name].append(rate)
                    costs[name].append(cost)
        finally:
            for node in nodes:
                node.stop()
        logged = (folder / "access.log").stat().st_size if (folder / "access.log").exists() else 0
    first = next(iter(variants))
    base, base_cpu = statistics.median(results[first]), statistics.median(costs[first])
    print(f"{'variant':52} {'msg/s':>8} {'vs base':>8} {'CPU us/msg':>11} {'vs base':>8}  runs (msg/s)")
    for name, values in results.items():
        median, cpu = statistics.median(values), statistics.median(costs[name])
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{name:52} {median:8,.0f} {median / base - 1:+8.1%} {cpu:11.1f} {cpu / base_cpu - 1:+8.1%}  {runs}")
    log_cpu = statistics.median(costs["access log JSON to a file"])
    flat_cpu = statistics.median(costs["metrics without histograms"])
    print(f"\nCPU per message: access logs add {log_cpu / base_cpu - 1:.1%} (target < 15%), histograms add "
          f"{base_cpu / flat_cpu - 1:.1%} (target < 5%); access log written: {logged:,} bytes")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--window", type=int, default=8)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
