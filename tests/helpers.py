"""Test harness: real gateways (in-process on port 0, or as processes), real clients, real Redis."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from wsgw.config import ApiConfig, parse_api
from wsgw.config.node import DEFAULT_WS_ENGINE, NodeConfig
from wsgw.server.app import GatewayServer
from wsgw.server.node import build_node

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
# The frame engine `serve` gives a node unless told: the `ws_engine` fixture (tests/conftest.py) runs a test
# once per engine by setting this.
ENGINE = {"name": os.environ.get("WSGW_WS_ENGINE", DEFAULT_WS_ENGINE)}
APPS = Path(__file__).resolve().parent / "apps"


def api_from(raw: dict[str, Any], base_dir: Path = APPS) -> ApiConfig:
    return parse_api(raw, base_dir)


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@asynccontextmanager
async def serve(raw: dict[str, Any] | ApiConfig, **kwargs: Any) -> AsyncIterator[GatewayServer]:
    """An in-process gateway on a free port, stopped (every $disconnect run) on exit."""
    api = raw if isinstance(raw, ApiConfig) else api_from(raw)
    registry = kwargs.pop("registry", None)
    kwargs.setdefault("ws_engine", ENGINE["name"])
    server = GatewayServer(build_node(api, NodeConfig(host="127.0.0.1", port=0, **kwargs), registry))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll a condition until it is truthy or the deadline passes (then fail with a clear message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], object], timeout: float = 5.0,
                     interval: float = 0.01) -> T:
    """Await `probe()` until `ok(result)` holds or the deadline passes (then fail showing the last result)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {value!r}")
        await asyncio.sleep(interval)


def wait_for_sync(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """`wsgw run` as a real process; parses its printed URLs; SIGTERM (or kill -9) on stop."""

    def __init__(self, config: Path, *extra: str, env: dict[str, str] | None = None, port: int = 0,
                 prefix: tuple[str, ...] = ()) -> None:
        self.config = config
        self.prefix = prefix                 # e.g. ("ip", "netns", "exec", NAME): run the node in a network namespace
        self.extra = extra
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.ws_url = ""
        self.http_url = ""

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "wsgw", "run", "-c", str(self.config), "--port", str(self.port),
             *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=str(ROOT),
        )
        ready = threading.Event()

        def drain() -> None:
            # Read everything the node prints, so a chatty node never blocks on a full pipe.
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = re.search(r"WebSocket:\s+(wss?://\S+)", line)
                if match:
                    self.ws_url = match.group(1)
                    self.http_url = self.ws_url.replace("ws", "http", 1)
                    self.port = int(self.ws_url.rsplit(":", 1)[1].split("/")[0])
                if "health:" in line:
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        if not ready.wait(timeout) or not self.ws_url or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("gateway did not start:\n" + "".join(self.output))
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        return int(self.proc.returncode)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


async def open_client(server: GatewayServer) -> tuple[Any, str]:
    """A WebSocket client on `server` and its connection id (the one connection that node gained)."""
    from websockets.asyncio.client import connect

    before = set(server.gateway.connections)
    ws = await connect(server.urls.websocket)
    new = await wait_for(lambda: set(server.gateway.connections) - before)
    return ws, next(iter(new))


def endpoint(server: GatewayServer) -> str:
    """The @connections endpoint boto3 is given: http://HOST:PORT/{stage}."""
    return f"http://127.0.0.1:{server.port}/{server.api.stage}"


def management_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


async def raw_http(port: int, payload: bytes, read_until_close: bool = True, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the node and read what it answers (until it closes, or one response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                    break
        return b"".join(chunks)
    finally:
        writer.close()


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """Each live (not zombie) process as its pid and the fields of /proc/<pid>/stat after the command name
    (state, ppid, pgrp, session, ...)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry), fields
