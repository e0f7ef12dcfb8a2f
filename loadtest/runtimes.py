"""Measure Lambda runtimes through the Runtime API against the in-process Python path (issue 21).

`python -m loadtest.runtimes [--seconds S] [--callers N]`: invocations/s and p50/p99 for a Node.js echo handler
(one caller; then 16 callers over two environments), the same for a Python echo handler called in-process (a
worker thread, as wsgw's python integration calls sync handlers), cold start times, and the RSS of a warm Node
environment; then the same comparison end to end, through a `wsgw run` process: WebSocket clients sending to a
Node.js echo route and to an in-process Python echo route of one gateway in the same run (route responses), the
first message of the Node route (its cold start) and the RSS of each warm Node environment. With
`--serverless-offline DIR` (a folder where `npm install serverless@3 serverless-offline@13` ran), the same Node
handler under serverless-offline's WebSocket server too. Prints a Markdown table; no thresholds, the numbers are
for the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
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


GATEWAY_NODE_ECHO = ("export const handler = async (event) => ({ statusCode: 200, "
                     "body: JSON.parse(event.body).data });\n"
                     "export const connect = async () => ({ statusCode: 200 });\n")
GATEWAY_PY_ECHO = ("import json\n\n\ndef handler(event, context):\n"
                   "    return {'statusCode': 200, 'body': json.loads(event['body'])['data']}\n")
OFFLINE_CONFIG = """service: echo
frameworkVersion: '3'
provider: {name: aws, runtime: nodejs20.x}
plugins: [serverless-offline]
custom:
  serverless-offline: {websocketPort: PORT, httpPort: HTTP_PORT, lambdaPort: LAMBDA_PORT}
functions:
  connect:
    handler: app.connect
    events: [{websocket: {route: $connect}}]
  echo:
    handler: app.handler
    events: [{websocket: {route: $default, routeResponseSelectionExpression: $default}}]
"""


async def ws_drive(url: str, action: str, seconds: float, callers: int) -> tuple[float, list[float]]:
    """`callers` WebSocket clients, each sending one message and awaiting its route response, for `seconds`."""
    from websockets.asyncio.client import connect

    payload = json.dumps({"action": action, "data": "x" * 512})
    sockets = [await connect(url, max_size=None) for _ in range(callers)]
    try:
        return await _drive_each(sockets, payload, seconds)
    finally:
        for ws in sockets:
            await ws.close()


async def _drive_each(sockets: list[Any], payload: str, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop(ws: Any) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(loop(ws) for ws in sockets))
    return len(latencies) / (time.perf_counter() - began), latencies


def node_children(pid: int) -> list[int]:
    """Node processes the gateway started (its runtime environments)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if int(fields[1]) == pid and command.endswith(b"node"):
            found.append(int(entry.name))
    return found


async def through_gateway(seconds: float, callers: int, offline: Path | None) -> list[tuple[str, str]]:
    from loadtest.procs import NotAvailable, ServerProcess, free_port

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "node").mkdir()
        (root / "node" / "app.mjs").write_text(GATEWAY_NODE_ECHO)
        (root / "py").mkdir()
        (root / "py" / "pyecho.py").write_text(GATEWAY_PY_ECHO)
        config = {"routes": {
            "node": {"routeResponse": True, "integration": {"type": "python", "runtime": "nodejs20.x",
                                                            "handler": "app.handler", "codeUri": "node",
                                                            "concurrency": 2, "timeoutMs": 10000}},
            "py": {"routeResponse": True, "integration": {"type": "python", "handler": "pyecho:handler",
                                                          "codeUri": "py"}}}}
        (root / "wsgw.yaml").write_text(json.dumps(config))
        argv = [sys.executable, "-m", "wsgw", "run", "-c", str(root / "wsgw.yaml"), "--port", "0",
                "--log-level", "WARNING"]
        with ServerProcess("wsgw", argv) as gateway:
            from websockets.asyncio.client import connect

            async with connect(gateway.url) as ws:
                started = time.perf_counter()
                await ws.send(json.dumps({"action": "node", "data": "cold"}))
                await ws.recv()
                rows.append(("Gateway: first message to the Node route (cold start included)",
                             f"{(time.perf_counter() - started) * 1000:.0f} ms"))
            for action, label in (("node", "Node.js echo route (Runtime API, 2 envs)"),
                                  ("py", "Python echo route (in-process)")):
                for n in sorted({1, callers}):
                    rate, lat = await ws_drive(gateway.url, action, seconds, n)
                    rows.append((f"Gateway: {label}, {n} client(s)",
                                 f"{rate:,.0f}/s, p50 {percentile(lat, .5):.2f} ms, p99 {percentile(lat, .99):.2f} ms"))
            sizes = [rss_kib(pid) / 1024 for pid in node_children(gateway.pid)]
            rows.append(("Gateway: RSS of each warm Node environment",
                         ", ".join(f"{size:.1f} MiB" for size in sizes) or "none found"))
        if offline is not None:
            (root / "offline").mkdir()
            (root / "offline" / "app.mjs").write_text(GATEWAY_NODE_ECHO)
            port = free_port()
            (root / "offline" / "serverless.yml").write_text(
                OFFLINE_CONFIG.replace("HTTP_PORT", str(free_port())).replace("LAMBDA_PORT", str(free_port()))
                .replace("PORT", str(port)))
            (root / "offline" / "node_modules").symlink_to(offline / "node_modules")
            argv = ["env", "-C", str(root / "offline"), str(offline / "node_modules" / ".bin" / "serverless"),
                    "offline", "start"]
            process = ServerProcess("serverless-offline", argv, ready=r"http for websocket\] listening on (\S+)",
                                    timeout=90.0,
                                    env={"SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"})
            try:
                process.start()
                url = f"ws://localhost:{port}"      # it listens on localhost (::1 with Node 20)
                for n in sorted({1, callers}):
                    rate, lat = await ws_drive(url, "echo", seconds, n)
                    rows.append((f"serverless-offline: the same Node.js handler, {n} client(s)",
                                 f"{rate:,.0f}/s, p50 {percentile(lat, .5):.2f} ms, "
                                 f"p99 {percentile(lat, .99):.2f} ms"))
            except NotAvailable as exc:
                rows.append(("serverless-offline", f"not measured: {exc}"))
            finally:
                process.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--callers", type=int, default=16, help="clients of the through-the-gateway runs")
    parser.add_argument("--serverless-offline", type=Path, default=None, dest="offline",
                        help="a folder with serverless@3 and serverless-offline installed (npm), to compare with")
    parser.add_argument("--gateway-only", action="store_true", help="skip the direct Runtime API measurements")
    args = parser.parse_args()
    try:
        import uvloop
        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    rows = [] if args.gateway_only else runner(measure(args.seconds))
    rows += runner(through_gateway(args.seconds, args.callers, args.offline))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
