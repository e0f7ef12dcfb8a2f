"""Measure Lambda runtimes through the Runtime API against the in-process Python path (issue 21).

`python -m loadtest.runtimes [--seconds S]`: invocations/s and p50/p99 for a Node.js echo handler (one caller;
then 16 callers over two environments), the same for a Python echo handler called in-process (a worker thread,
as wsgw's python integration calls sync handlers), cold start times, and the RSS of a warm Node environment.
Prints a Markdown table; no thresholds, the numbers are for the report.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wsgw.runtimes.environments import FunctionEnvironments, FunctionSpec
from wsgw.runtimes.runtime_api import RuntimeApi

EVENT: dict[str, Any] = {
    "requestContext": {"routeKey": "sendmessage", "eventType": "MESSAGE", "connectionId": "Llf4ceE2NjMCF7w=",
                       "requestId": "Llf7PFSNNjMFZeA=", "stage": "dev", "domainName": "127.0.0.1",
                       "apiId": "abcdef1234", "messageDirection": "IN", "connectedAt": 1700000000000},
    "body": '{"action":"sendmessage","data":"' + "x" * 512 + '"}',
    "isBase64Encoded": False,
}
NODE_ECHO = "export const handler = async (event) => ({ statusCode: 200, body: event.body });\n"


def python_echo(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(call: Callable[[], Awaitable[object]], seconds: float, callers: int) -> tuple[float, list[float]]:
    """Run `callers` loops of `call` for `seconds`: (invocations per second, latencies in ms)."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(callers)))
    return len(latencies) / (time.perf_counter() - began), latencies


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(seconds: float) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    api = RuntimeApi()
    await api.start()
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "echo"
        code.mkdir()
        (code / "app.mjs").write_text(NODE_ECHO)

        cold: list[float] = []
        first_call: list[float] = []
        for n in range(5):
            fn = FunctionEnvironments(FunctionSpec(f"cold{n}", "nodejs20.x", "app.handler", code), api)
            started = time.perf_counter()
            await fn.invoke(EVENT)
            first_call.append((time.perf_counter() - started) * 1000)
            cold.extend(s * 1000 for s in fn.cold_starts)
            await fn.close()
        rows.append(("Node cold start (spawn → first /next), median of 5", f"{statistics.median(cold):.0f} ms"))
        rows.append(("Node first invocation incl. cold start, median of 5", f"{statistics.median(first_call):.0f} ms"))

        for callers, concurrency in ((1, 1), (16, 2)):
            fn = FunctionEnvironments(FunctionSpec("echo", "nodejs20.x", "app.handler", code,
                                                   concurrency=concurrency), api)
            await asyncio.gather(*(fn.invoke(EVENT) for _ in range(concurrency)))     # warm
            rate, lat = await drive(lambda fn=fn: fn.invoke(EVENT), seconds, callers)  # type: ignore[misc]
            rows.append((f"Node echo via Runtime API, {callers} caller(s), {concurrency} env(s)",
                         f"{rate:,.0f}/s, p50 {percentile(lat, .5):.2f} ms, p99 {percentile(lat, .99):.2f} ms"))
            if callers == 1:
                pid = fn.environments[0].pid
                assert pid is not None
                rows.append(("RSS of one warm Node environment", f"{rss_kib(pid) / 1024:.1f} MiB"))
            await fn.close()

    executor = ThreadPoolExecutor(16)
    loop = asyncio.get_running_loop()
    for callers in (1, 16):
        rate, lat = await drive(lambda: loop.run_in_executor(executor, python_echo, EVENT, None), seconds, callers)
        rows.append((f"Python echo in-process (thread pool), {callers} caller(s)",
                     f"{rate:,.0f}/s, p50 {percentile(lat, .5):.3f} ms, p99 {percentile(lat, .99):.3f} ms"))
    executor.shutdown()
    await api.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    args = parser.parse_args()
    try:
        import uvloop
        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    rows = runner(measure(args.seconds))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
