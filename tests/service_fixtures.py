"""Real brokers and a real AWS stand-in for the service and queue integrations: moto in server mode, our own
nats-server (JetStream on) on a free port, RabbitMQ at AMQP_URL (unique names per test). A missing service fails
the test naming the Debian package; nothing here stops or flushes a shared service."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.02)


class NatsServer:
    """One nats-server with JetStream, restartable on the same port (its store dir kept across restarts)."""

    def __init__(self) -> None:
        binary = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server")
                                                 else None)
        if binary is None:
            pytest.fail("nats-server is not installed: apt-get install nats-server")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wsgw-nats-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "nats-server")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (a clean shutdown), or SIGKILL: the server dies as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode on a free port, for the whole session (each test makes its own queues/streams)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
async def amqp_url() -> AsyncIterator[str]:
    """The RabbitMQ at AMQP_URL (reachable, else the test fails naming the package)."""
    import aio_pika

    try:
        connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 5)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL} ({exc}): apt-get install rabbitmq-server")
    await connection.close()
    yield AMQP_URL


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def close_amqp_connections(name: str) -> int:
    """Close, from the broker's side, the connections whose client named itself `name` (this test process's own:
    wsgw names them by role and pid), never another's on the shared broker; how many were closed."""
    listing = subprocess.run(["rabbitmqctl", "-s", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, check=True).stdout
    closed = 0
    for line in listing.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and f'{{"connection_name","{name}"}}' in parts[1]:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", parts[0], "test"], capture_output=True,
                           check=False)
            closed += 1
    return closed
