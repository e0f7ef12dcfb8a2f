"""Real brokers and a real AWS stand-in for the service and queue integrations: moto in server mode, our own
nats-server (JetStream on) on a free port, RabbitMQ at AMQP_URL (unique names per test), or our own private
RabbitMQ node on free ports for the tests that restart the broker. A missing service fails the test naming the
Debian package; nothing here stops or flushes a shared service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.helpers import live_processes

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_outside_ephemeral() -> int:
    """A free port below the kernel's ephemeral range, so no client's outgoing connection (nor a server on port 0)
    takes it between a stop and a start of a server that must come back on the same port."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        first_ephemeral = int(f.read().split()[0])
    while True:
        port = random.randrange(10000, first_ephemeral)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


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


RABBITMQ_SERVER = os.environ.get("RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitServer:
    """A private RabbitMQ node (its own node name, AMQP and distribution ports, data dir), restartable on the same
    ports and data dir so durable queues and persistent messages survive. Never the shared broker on 5672: it runs
    in its own session, and stop() signals only that process group. The unprivileged /usr/sbin wrapper is not
    used (it drops root and fails); RABBITMQ_CONF_ENV_FILE names a missing file so the system's
    rabbitmq-env.conf (its NODENAME) does not apply."""

    def __init__(self) -> None:
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            pytest.fail(f"{RABBITMQ_SERVER} not found: apt-get install rabbitmq-server (or set RABBITMQ_SERVER)")
        self.port = free_port_outside_ephemeral()
        self.dir = tempfile.mkdtemp(prefix="wsgw-rabbit-")
        os.makedirs(f"{self.dir}/mnesia")
        os.makedirs(f"{self.dir}/log")
        with open(f"{self.dir}/enabled_plugins", "w") as f:
            f.write("[].\n")
        with open(f"{self.dir}/rabbitmq.conf", "w") as f:
            f.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        self.env = {**os.environ, "HOME": self.dir, "RABBITMQ_CONF_ENV_FILE": f"{self.dir}/no-env",
                    "RABBITMQ_NODENAME": f"wsgwtest{uuid.uuid4().hex[:8]}@localhost",
                    "RABBITMQ_DIST_PORT": str(free_port_outside_ephemeral()),
                    "RABBITMQ_MNESIA_BASE": f"{self.dir}/mnesia",
                    "RABBITMQ_LOG_BASE": f"{self.dir}/log",
                    "RABBITMQ_ENABLED_PLUGINS_FILE": f"{self.dir}/enabled_plugins",
                    "RABBITMQ_FEATURE_FLAGS_FILE": f"{self.dir}/feature_flags", "RABBITMQ_PID_FILE": f"{self.dir}/pid",
                    "RABBITMQ_CONFIG_FILE": f"{self.dir}/rabbitmq.conf"}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RabbitServer:
        """Start the node and wait until it accepts AMQP (about 20 s on a loaded 2-core machine)."""
        with open(f"{self.dir}/output", "ab") as output:
            self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env, start_new_session=True, cwd=self.dir,
                                         stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_port(self.port, self.proc, "private rabbitmq-server", timeout=90)
        except RuntimeError:
            self.stop(signal.SIGKILL)
            with open(f"{self.dir}/output", "rb") as output:
                tail = output.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"private rabbitmq-server did not listen on {self.port}:\n{tail}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (a clean shutdown: the broker closes its connections) or SIGKILL (a crash) to the node's whole
        process group; returns once no process of its session is left."""
        if self.proc is None:
            return
        session = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(session, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 10        # its helpers (erl_child_setup, inet_gethost) leave with it
        while _session_alive(session):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(session, signal.SIGKILL)
            time.sleep(0.05)
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _session_alive(session: int) -> bool:
    """Whether a process of session `session` (the node we started with start_new_session) is still there."""
    return any(int(fields[3]) == session for _pid, fields in live_processes())


@pytest.fixture(scope="module")
def private_rabbit_node() -> Iterator[RabbitServer]:
    """One private RabbitMQ node per test module (its start costs ~20 s), removed with its data at the end."""
    server = RabbitServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def private_rabbit(private_rabbit_node: RabbitServer) -> RabbitServer:
    """The module's private node, running (started again if an earlier test left it stopped)."""
    if not private_rabbit_node.running:
        private_rabbit_node.start()
    return private_rabbit_node


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
