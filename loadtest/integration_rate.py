"""Round-trip rate through an `http_event` integration (the AWS event POSTed) to a local backend vs the
in-process `python` one.

Starts a backend (aiohttp, a Lambda-proxy echo) and a `wsgw run` node as separate processes, then keeps
CONNECTIONS WebSocket clients doing send -> route response round trips for SECONDS per route, and prints
messages per second for each. Usage:

    PYTHONPATH=. python loadtest/integration_rate.py [--seconds 5] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BACKEND = """
import sys, orjson
from aiohttp import web
async def echo(request):
    event = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps({"statusCode": 200, "body": event["body"]}),
                        content_type="application/json")
app = web.Application()
app.router.add_post("/echo", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

HANDLER = """
async def echo(event, context):
    return {"statusCode": 200, "body": event["body"]}
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Window:
    """One measured window: round trips, wall seconds, and what `clock` advanced meanwhile (e.g. CPU seconds)."""

    count: int
    elapsed: float
    clock: float


async def measure_window(url: str, message: str, connections: int, seconds: float,
                         clock: Callable[[], float] = lambda: 0.0) -> Window:
    """`connections` clients each sending `message` and awaiting the answer, after a 1 s warm-up."""
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None) for _ in range(connections)]
    count = 0
    stop = 0.0

    async def client(ws: object) -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await ws.send(message)  # type: ignore[attr-defined]
            await ws.recv()  # type: ignore[attr-defined]
            count += 1

    stop = time.perf_counter() + 1.0           # warm-up (keep-alive pool, caches)
    await asyncio.gather(*(client(ws) for ws in sockets))
    count = 0
    clock_started = clock()
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(client(ws) for ws in sockets))
    elapsed = time.perf_counter() - started
    clocked = clock() - clock_started
    for ws in sockets:
        await ws.close()
    return Window(count, elapsed, clocked)


async def measure(url: str, action: str, connections: int, seconds: float) -> float:
    """Round trips/s to the route `action`."""
    window = await measure_window(url, json.dumps({"action": action, "payload": "x" * 64}), connections, seconds)
    return window.count / window.elapsed


async def measure_all(url: str, backend_port: int, seconds: float, connections: int) -> None:
    await wait_port(backend_port)
    results: dict[str, list[float]] = {}
    for action in ("python", "http_event", "python", "http_event"):
        rate = await measure(url, action, connections, seconds)
        results.setdefault(action, []).append(rate)
        print(f"{action:>10}: {rate:8.0f} round trips/s ({connections} connections, {seconds:.0f} s)", flush=True)
    best = {k: max(v) for k, v in results.items()}
    print(f"best of two: python {best['python']:.0f}/s, http_event {best['http_event']:.0f}/s, "
          f"ratio {best['http_event'] / best['python']:.2f}")


def start_node(config: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """`wsgw run -c config` on a free port; the process and its WebSocket URL once it printed it."""
    node = subprocess.Popen([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0",
                             "--log-level", "WARNING", *options], stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    assert node.stdout is not None
    for line in node.stdout:
        match = re.search(r"WebSocket:\s+(ws://\S+)", line)
        if match:
            return node, match.group(1)
    node.wait(30)
    raise SystemExit("the node did not start")


def main(seconds: float, connections: int) -> None:
    backend_port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "rate_handlers.py").write_text(HANDLER)
        config = Path(folder, "wsgw.yaml")
        config.write_text(json.dumps({"routes": {
            "python": {"handler": "rate_handlers:echo", "routeResponse": True},
            "http_event": {"integration": {"type": "http_event", "uri": f"http://127.0.0.1:{backend_port}/echo"},
                           "routeResponse": True},
        }}))
        backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port)])
        node, url = start_node(config)
        try:
            asyncio.run(measure_all(url, backend_port, seconds, connections))
        finally:
            node.terminate()
            backend.terminate()
            node.wait(30)
            backend.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main(args.seconds, args.connections)
