"""Issue 20's attacks, run against a real `wsgw run` process while a canary client measures its own round trips.

Each attack runs in a thread on blocking sockets (as an attacker's script would); the assertions are on what
the node holds afterwards, read from /proc (RSS growth, open fds) and on the canary's worst round trip, with
bounds wide enough for a loaded 2-core machine: they separate "bounded" from "grows with the attack" (main
grew by hundreds of MB on the same attacks), not fast from slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import APPS, ROOT, GatewayProcess, wait_for, write_config

API: dict[str, Any] = {
    "routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:ok"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    },
    "limits": {"handshakeTimeoutSeconds": 2, "maxMessagesPerSecond": 1000},
}
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (f"GET /dev HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
RSS_GROWTH_MB = 64          # per attack; the attacks below moved main by 100 MB to 800 MB
CANARY_WORST_S = 3.0        # main: up to 10 s behind an empty-fragment message


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Node:
    def __init__(self, proc: GatewayProcess, events: Path) -> None:
        self.proc = proc
        self.events = events

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def connects(self) -> int:
        if not self.events.exists():
            return 0
        return sum('"$connect"' in line for line in self.events.read_text().splitlines())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("attacks")
    events = tmp / "events.jsonl"
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{APPS}", "WSGW_TEST_EVENT_LOG": str(events)}
    with GatewayProcess(write_config(tmp / "api.yaml", API), "--log-level", "error", env=env) as proc:
        yield Node(proc, events)


def ws_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def send_until_refused(sock: socket.socket, chunk: bytes, total: int) -> int:
    """Send up to `total` bytes; stop when the node stops reading (timeout) or closes. → bytes sent."""
    sent = 0
    sock.settimeout(3)
    with contextlib.suppress(OSError):
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    return sent


def drain_in_background(sock: socket.socket) -> threading.Thread:
    def drain() -> None:
        with contextlib.suppress(OSError):
            while sock.recv(1 << 16):
                pass
    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread


async def under_attack(node: Node, attack: Callable[[int], object]) -> tuple[float, float]:
    """Run the attack in a thread while a canary echoes and RSS is sampled; → (peak RSS growth in MB during
    the attack, the canary's worst round trip). The peak, not the end: a node frees what a peer made it hold
    once that peer leaves."""
    before = node.rss_mb()
    peak = before
    worst = 0.0
    done = threading.Event()
    async with connect(node.proc.ws_url, ping_interval=None) as canary:
        async def measure() -> None:
            nonlocal worst
            n = 0
            while not done.is_set():
                n += 1
                start = time.monotonic()
                await canary.send(f"canary {n}")
                assert await asyncio.wait_for(canary.recv(), 30) == f"canary {n}"
                worst = max(worst, time.monotonic() - start)
                await asyncio.sleep(0.02)

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.02):
                with contextlib.suppress(OSError, AssertionError):
                    peak = max(peak, node.rss_mb())

        probe = asyncio.create_task(measure())
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            await asyncio.to_thread(attack, node.proc.port)
        finally:
            done.set()
            await probe
            sampler.join(5)
    peak = max(peak, node.rss_mb())
    print(f"\n{getattr(attack, '__qualname__', 'attack').split('.')[0]}: RSS {before:.0f} MB, peak {peak:.0f} MB, "
          f"canary worst {worst:.3f} s")
    return peak - before, worst


async def settles(node: Node, fds_before: int) -> None:
    """Every socket the attack opened is gone: the node's fd count is back where it was."""
    await wait_for(lambda: node.fds() <= fds_before + 2, timeout=20, interval=0.1)


# ----- the attacks --------------------------------------------------------------------------------------

async def test_pings_never_read(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        sock = ws_socket(port, rcvbuf=4096)
        send_until_refused(sock, frame(0x9, b"p" * 125) * 512, 200 * 1024 * 1024)
        sock.close()

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_pipelined_metrics_never_read(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # before connect: a small window
        sock.connect(("127.0.0.1", port))
        send_until_refused(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2000, 20 * 1024 * 1024)
        sock.close()

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_empty_continuation_frames(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        sock = ws_socket(port)
        drain_in_background(sock)
        sock.sendall(frame(0x1, b"a", fin=False))
        send_until_refused(sock, frame(0x0, fin=False) * 10_000, 60 * 1024 * 1024)
        sock.close()

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_ping_flood_read_and_throttled_burst(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        pings = ws_socket(port)
        drain_in_background(pings)
        burst = ws_socket(port)
        drain_in_background(burst)
        ping_chunk, message_chunk = frame(0x9) * 43_690, frame(0x1, b"m") * 37_449    # 256 KiB each
        for _ in range(16):                       # 4 MiB of pings, 600,000 messages past the throttle
            pings.sendall(ping_chunk)
            burst.sendall(message_chunk)
        pings.close()
        burst.close()

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_refused_handshakes_run_no_connect_handler(node: Node) -> None:
    fds = node.fds()
    connects = node.connects()
    bad = [UPGRADE.replace(b"websocket\r\n", b"websocketx\r\n", 1),
           UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),
           UPGRADE.replace(b"/dev ", b"/%64ev "),
           UPGRADE.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\nabc")]

    def attack(port: int) -> None:
        for payload in bad * 50:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(10)
                sock.sendall(payload)
                assert not sock.recv(4096).startswith(b"HTTP/1.1 101")

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    assert node.connects() == connects + 1        # the canary's own
    await settles(node, fds)


async def test_slowloris_first_request_and_after_a_fast_one(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        socks = []
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.settimeout(15)
            if i % 2:                              # one fast request first, then a slow one
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(4096)
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
            socks.append(sock)
        start = time.monotonic()
        for sock in socks:                         # each is answered 408 and closed by the 2 s handshake timeout
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass
            sock.close()
        assert time.monotonic() - start < 12

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_malformed_http_and_frames(node: Node) -> None:
    fds = node.fds()
    rng = random.Random(20)

    def attack(port: int) -> None:
        for i in range(300):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(10)
                if i % 2:                          # garbage after a valid upgrade: a close, never a crash
                    sock.sendall(UPGRADE)
                sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))))
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):
                        pass

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_push_flood_and_oversized_chunked_pushes(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:   # 5,000 pipelined pushes to gone ids
            drain_in_background(sock)
            body = b"x" * 1000
            one = (b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % len(body)) + body
            for _ in range(50):
                sock.sendall(one * 100)
        for _ in range(20):                                             # chunked past maxPostBytes: 413 at once
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(5)
                chunk = b"y" * 200_000
                sock.sendall(b"POST /dev/@connections/AAAAAAAAAAAAAAA= HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk)
                assert sock.recv(64).startswith(b"HTTP/1.1 413")

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)


async def test_a_thousand_idle_websockets_come_and_go(node: Node) -> None:
    fds = node.fds()

    def attack(port: int) -> None:
        socks = [ws_socket(port) for _ in range(1000)]
        for sock in socks:
            sock.close()

    growth, worst = await under_attack(node, attack)
    assert growth < RSS_GROWTH_MB and worst < CANARY_WORST_S, (growth, worst)
    await settles(node, fds)
