"""Requests per second through the REST front vs a bare httptools hello-world, in the same run.

Starts, as separate processes: a `wsgw run` node with two trivial HTTP routes (`GET /dev/mock`: a mock
integration; `GET /dev/py`: an async Python handler returning a string) and a bare asyncio + httptools
server answering "Hello world!" (uvloop for both, as `wsgw run` uses it). Each URL is driven for SECONDS
with keep-alive connections by `wrk` (apt: wrk) or, without it, by an aiohttp client. Usage:

    PYTHONPATH=. python loadtest/rest_rate.py [--seconds 5] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE_SERVER = r"""
import asyncio, sys
import httptools, uvloop

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello world!"

class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()
    def on_message_complete(self):
        self.transport.write(RESPONSE)

async def main(port):
    server = await asyncio.get_running_loop().create_server(Hello, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    await server.serve_forever()

uvloop.run(main(int(sys.argv[1])))
"""

CONFIG = """
stage: dev
routes: {}
http:
  routes:
    "GET /mock": {integration: {type: mock, statusCode: 200, response: "Hello world!"}}
    "GET /py":   {handler: bench_rest:hello}
"""

HANDLER = """
async def hello(event, context):
    return "Hello world!"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def run_wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(out)
    return float(match.group(1))


async def run_aiohttp(url: str, seconds: int, connections: int) -> float:
    import aiohttp

    done = 0
    stop = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < stop:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: status {response.status}")
            done += 1

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return done / (time.monotonic() - started)


def measure(url: str, seconds: int, connections: int) -> float:
    if shutil.which("wrk"):
        return run_wrk(url, seconds, connections)
    return asyncio.run(run_aiohttp(url, seconds, connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    processes: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "wsgw.yaml").write_text(CONFIG)
        (folder / "bench_rest.py").write_text(HANDLER)
        gw_port, bare_port = free_port(), free_port()
        try:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "wsgw", "run", "-c", str(folder / "wsgw.yaml"), "--port", str(gw_port),
                 "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL, text=True))
            processes.append(subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)],
                                              stdout=subprocess.DEVNULL, text=True))
            wait_listening(gw_port)
            wait_listening(bare_port)
            tool = "wrk -t1" if shutil.which("wrk") else "aiohttp"
            print(f"{args.connections} keep-alive connections, {args.seconds} s per target, client: {tool}")
            targets = [("bare httptools hello-world", f"http://127.0.0.1:{bare_port}/"),
                       ("wsgw GET /dev/mock (mock integration)", f"http://127.0.0.1:{gw_port}/dev/mock"),
                       ("wsgw GET /dev/py (async python handler)", f"http://127.0.0.1:{gw_port}/dev/py")]
            results = []
            for name, url in targets:
                measure(url, 1, args.connections)                      # warm up
                results.append((name, measure(url, args.seconds, args.connections)))
            bare = results[0][1]
            for name, rate in results:
                print(f"  {name:42s} {rate:10.0f} req/s  ({rate / bare:5.1%} of bare)")
        finally:
            for proc in processes:
                proc.terminate()
            for proc in processes:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
