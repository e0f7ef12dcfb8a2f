"""What routing by stage and version costs, and how fast a reload reaches new connections.

`python -m loadtest.stages [--seconds 5] [--connections 50]`: one `wsgw run` process per layout, measured
from this process in one run so the ratios compare like with like:

- messages/s (request/response over open connections) and connects/s (open, one message, close) with one
  stage, then with four stages where the measured stage has a 50% canary (every connection and message
  pays for the stage lookup and the canary draw);
- the time from SIGHUP to the first new connection served by the new version (polling with new connections).

Rates swing with whatever else runs on the machine; the node's CPU time per message and per connect (from
/proc) is what routing costs, so both are reported, per round and best of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
HANDLER = ("VERSION = {version!r}\n\n"
           "def on_default(event, context):\n    return {{'statusCode': 200, 'body': VERSION}}\n")


def write_versions(root: Path) -> dict[str, str]:
    files = {}
    for version in ("v1", "v2"):
        folder = root / version
        (folder / "handlers").mkdir(parents=True, exist_ok=True)
        (folder / "handlers" / "__init__.py").write_text("")
        (folder / "handlers" / "echo.py").write_text(HANDLER.format(version=version))
        raw = {"routes": {"$default": {"handler": "handlers.echo:on_default", "routeResponse": True}},
               "limits": {"idleTimeoutSeconds": 600}}
        (folder / "api.yaml").write_text(yaml.safe_dump(raw))
        files[version] = f"{version}/api.yaml"
    return files


def layouts(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    one = {"versions": {"v1": files["v1"]}, "stages": {"prod": {"version": "v1"}}}
    four = {"versions": files, "stages": {
        "prod": {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50}},
        "beta": {"version": "v2"}, "dev": {"version": "v2"}, "test": {"version": "v1"}}}
    return {"one stage": one, "four stages + canary": four}


class Node:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0",
                                      "--log-level", "INFO"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=ROOT)
        self.port = 0
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "WebSocket:" in line:
                self.port = int(line.rsplit(":", 1)[1].split("/")[0])
            if "health:" in line:
                break
        if not self.port:
            raise RuntimeError("node did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the node process has used: the cost of the work, whatever else runs on the
        machine (rates swing with other load on shared cores; CPU per message does not)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(node: Node, run: Any) -> tuple[float, float]:
    """(operations per second, node CPU microseconds per operation) of one load run."""
    before = node.cpu_seconds()
    rate, count = asyncio.run(run)
    return rate, (node.cpu_seconds() - before) * 1e6 / max(count, 1)


async def messages_per_second(url: str, connections: int, seconds: float) -> tuple[float, int]:
    done = 0
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done
        async with connect(url) as ws:
            while time.monotonic() < stop:
                await ws.send("x")
                await ws.recv()
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    return done / (time.monotonic() - started), done


async def connects_per_second(url: str, concurrency: int, seconds: float) -> tuple[float, int]:
    done = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            async with connect(url) as ws:
                await ws.send("x")
                await ws.recv()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.monotonic() - started), done


async def first_new_version(url: str, want: str, started: float, timeout: float = 30.0) -> float:
    while time.perf_counter() - started < timeout:
        async with connect(url) as ws:
            await ws.send("x")
            if await ws.recv() == want:
                return time.perf_counter() - started
    raise RuntimeError("the new version never served a connection")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the layouts this many times")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_versions(root)
        for _ in range(args.rounds):
            for name, layout in layouts(files).items():
                config = root / "wsgw.yaml"
                config.write_text(yaml.safe_dump(layout))
                node = Node(config)
                try:
                    url = f"ws://127.0.0.1:{node.port}/prod"
                    mps, cpu_message = measured(node, messages_per_second(url, args.connections, args.seconds))
                    cps, cpu_connect = measured(node, connects_per_second(url, args.concurrency, args.seconds))
                finally:
                    node.stop()
                entry = results.setdefault(name, {"messages/s": [], "connects/s": [], "node CPU µs/message": [],
                                                  "node CPU µs/connect": []})
                for key, value in (("messages/s", mps), ("connects/s", cps), ("node CPU µs/message", cpu_message),
                                   ("node CPU µs/connect", cpu_connect)):
                    entry[key].append(value)
        reload_times = []
        config = root / "wsgw.yaml"
        for _ in range(3):
            config.write_text(yaml.safe_dump(layouts(files)["one stage"]))
            node = Node(config)
            try:
                url = f"ws://127.0.0.1:{node.port}/prod"
                config.write_text(yaml.safe_dump({"versions": files, "stages": {"prod": {"version": "v2"}}}))
                started = time.perf_counter()
                node.proc.send_signal(signal.SIGHUP)
                reload_times.append(asyncio.run(first_new_version(url, "v2", started)))
            finally:
                node.stop()
    best = {name: {k: (min(v) if "CPU" in k else max(v)) for k, v in entry.items()} for name, entry in results.items()}
    one, four = best["one stage"], best["four stages + canary"]
    report = {
        "load average (1, 5, 15 min) at the end": [round(x, 2) for x in os.getloadavg()],
        "every round": {name: {k: [round(x) for x in v] for k, v in entry.items()} for name, entry in results.items()},
        "ratio four/one per round": {k: [round(f / o, 3) for f, o in zip(results["four stages + canary"][k],
                                                                         results["one stage"][k], strict=True)]
                                     for k in results["one stage"]},
        "best of rounds": best,
        "ratio four/one": {k: round(four[k] / one[k], 3) for k in one},
        "SIGHUP to first connection on the new version (ms)": [round(t * 1000, 1) for t in reload_times],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
