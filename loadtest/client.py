"""The load generator's worker process: picows WebSocket clients (C-accelerated) and pipelined HTTP pushers.

One worker runs one asyncio loop (uvloop) holding many connections. The orchestrator starts several workers,
releases them together (`go`), and collects one result dict each. Counting is exact: every message sent ends
as received, errored (an error frame, a failed send, a non-200 push) or lost (no answer by the deadline).
Timestamps are CLOCK_MONOTONIC nanoseconds, which all processes on the machine share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from loadtest.hist import Histogram
from loadtest.payload import make_message, message_id

TICK_SECONDS = 0.5


@dataclass
class WorkerSpec:
    """What one worker does; picklable so it crosses into the worker process."""

    mode: str                          # echo | push | broadcast | connect | idle
    url: str                           # ws://127.0.0.1:PORT/stage
    connections: int = 10
    duration: float = 5.0
    size: int = 64
    action: str = "echo"
    window: int = 1                    # messages in flight per connection (closed loop)
    rate: float = 0.0                  # messages/s for this worker (open loop); 0 = closed loop
    max_messages: int = 0              # per connection; 0 = bounded by duration only
    msg_timeout: float = 5.0           # an unanswered message is lost after this long
    drain_timeout: float = 5.0
    push_url: str = ""                 # push/broadcast: http://HOST:PORT/stage of the node that receives POSTs
    http_connections: int = 4
    pipeline: int = 16                 # requests in flight per HTTP connection
    pusher: str = "http"               # http | redis
    redis_url: str = ""
    broadcast_via: str = "http"        # api (one POST @broadcast) | http (N POSTs) | server (websockets.broadcast)
    concurrency: int = 32              # connect/idle: handshakes in flight
    query: str = ""                    # connect: query string (e.g. token=...)
    worker_index: int = 0
    spread_sources: bool = False       # each worker connects from its own loopback address (127.0.1.x):
                                       # one address has ~28,000 ephemeral ports, 100,000 sockets need several


@dataclass
class Counts:
    """The exact ledger of one worker."""

    sent: int = 0
    received: int = 0
    errored: int = 0
    lost: int = 0
    unmatched: int = 0                 # frames that answer nothing we sent (reported, never counted as received)
    posts_ok: int = 0
    posts_failed: int = 0
    connects_ok: int = 0
    connects_failed: int = 0
    connection_drops: int = 0


@dataclass
class WorkerState:
    spec: WorkerSpec
    counts: Counts = field(default_factory=Counts)
    hist: Histogram = field(default_factory=Histogram)
    series: list[tuple[float, int, int]] = field(default_factory=list)   # (t, received, sent) per tick
    running: bool = True
    errors: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    stopped_at: float = 0.0

    def stop(self) -> None:
        """Stop sending; what arrives from now on is the drain (counted, but not in the rate's time)."""
        if self.running:
            self.running = False
            self.stopped_at = time.monotonic()

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def now_ns() -> int:
    return time.monotonic_ns()


async def wait_until(done: Callable[[], bool], deadline: float, interval: float = 0.02) -> None:
    """Poll (bounded by a monotonic deadline): the conditions live in C callbacks, not in awaitables."""
    while time.monotonic() < deadline:
        if done():
            return
        await asyncio.sleep(interval)


# ----- WebSocket clients ---------------------------------------------------------------------------


class EchoClient(WSListener):
    """Sends numbered messages and matches each answer by id; an error frame answers the oldest outstanding."""

    def __init__(self, state: WorkerState, sender: Callable[[EchoClient], None] | None) -> None:
        self.state = state
        self.sender = sender
        self.transport: WSTransport | None = None
        self.outstanding: dict[int, int] = {}      # id -> send time (ns); insertion order = send order
        self.timed_out: set[int] = set()
        self.next_id = 0
        self.inbox: deque[bytes] = deque()          # frames a setup step waits for (whoami)
        self.waiter: asyncio.Future[bytes] | None = None
        self.disconnected = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        if self.state.running:
            self.state.counts.connection_drops += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("disconnected"))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            return
        payload = frame.get_payload_as_bytes()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(payload)
            return
        self.answer(payload, now_ns())

    def answer(self, payload: bytes, at: int) -> None:
        state = self.state
        ident = message_id(payload)
        if ident is None:                          # an error frame: it answers the oldest message in flight
            if self.outstanding:
                self.outstanding.pop(next(iter(self.outstanding)))
                state.counts.errored += 1
                state.error("error frame")
            elif self.timed_out:
                self.timed_out.remove(min(self.timed_out))
                state.counts.errored += 1
                state.error("error frame (late)")
            else:
                state.counts.unmatched += 1
            self.refill()
            return
        sent_at = self.outstanding.pop(ident, None)
        if sent_at is None:
            if ident in self.timed_out:            # late, but it did arrive: not lost after all
                self.timed_out.remove(ident)
                state.counts.received += 1
                state.extra["late"] = state.extra.get("late", 0) + 1
            else:
                state.counts.unmatched += 1
            return
        state.counts.received += 1
        state.hist.record((at - sent_at) // 1000)
        self.refill()

    def refill(self) -> None:
        if self.sender is not None and self.state.running:
            self.sender(self)

    def send_message(self, intended_ns: int | None = None) -> bool:
        """Send the next numbered message; latency counts from intended_ns (open loop) or now."""
        state = self.state
        ident = self.next_id
        self.next_id += 1
        state.counts.sent += 1
        if self.transport is None or self.disconnected:
            state.counts.errored += 1
            state.error("send on closed connection")
            return False
        self.outstanding[ident] = intended_ns if intended_ns is not None else now_ns()
        self.transport.send(WSMsgType.TEXT, make_message(ident, state.spec.action, state.spec.size))
        return True

    def sweep(self, deadline_ns: int) -> None:
        """Move messages older than the deadline from outstanding to timed out (lost unless they turn up)."""
        moved = False
        while self.outstanding:
            ident, sent_at = next(iter(self.outstanding.items()))
            if sent_at > deadline_ns:
                break
            del self.outstanding[ident]
            self.timed_out.add(ident)
            moved = True
        if moved:
            self.refill()

    async def request(self, data: bytes, timeout: float = 10.0) -> bytes:
        """One setup round-trip (e.g. whoami) before the measured run."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.send(WSMsgType.TEXT, data)
        try:
            return await asyncio.wait_for(self.waiter, timeout)
        finally:
            self.waiter = None


def _no_linger(transport: WSTransport) -> None:
    """Close with RST: a connect storm must not fill the port range with TIME_WAIT sockets."""
    sock = transport.underlying_transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def open_clients(state: WorkerState, count: int, factory: Callable[[], EchoClient],
                       url: str | None = None) -> list[EchoClient]:
    """Open `count` connections, at most spec.concurrency handshakes at a time; failures are counted."""
    spec = state.spec
    target = url or spec.url
    clients: list[Any] = []
    gate = asyncio.Semaphore(max(1, spec.concurrency))
    source = source_address(spec.worker_index) if spec.spread_sources else None

    async def from_source(parsed: Any) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind((source, 0))
            await asyncio.get_running_loop().sock_connect(sock, (parsed.host, parsed.port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def one() -> None:
        async with gate:
            try:
                _, client = await ws_connect(factory, target, websocket_handshake_timeout=30,
                                             max_frame_size=16 * 1024 * 1024,
                                             socket_factory=from_source if source else None)
            except Exception as exc:
                state.counts.connects_failed += 1
                state.error(f"connect: {type(exc).__name__}")
                return
            if client is None:                     # picows: the socket ended before the 101 arrived
                state.counts.connects_failed += 1
                state.error("connect: closed before the handshake completed")
                return
            state.counts.connects_ok += 1
            clients.append(client)

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


def source_address(worker_index: int) -> str:
    """The loopback address worker N connects from when sources are spread (the server stays on 127.0.0.1)."""
    return f"127.0.{1 + worker_index // 250}.{1 + worker_index % 250}"


def close_clients(clients: list[EchoClient]) -> None:
    for client in clients:
        if client.transport is not None and not client.disconnected:
            _no_linger(client.transport)
            client.transport.disconnect(graceful=False)


# ----- pipelined HTTP pusher ------------------------------------------------------------------------


class HttpPipe(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with many requests in flight; answers arrive in order."""

    def __init__(self, on_response: Callable[[Any, int], None]) -> None:
        self.on_response = on_response
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.inflight: deque[Any] = deque()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's transports do not subclass it
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        while self.inflight:                          # requests the server will never answer
            self.on_response(self.inflight.popleft(), 0)

    def send(self, request: bytes, tag: Any) -> None:
        assert self.transport is not None
        self.inflight.append(tag)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            status = int(head[9:12]) if head[:5] == b"http/" else 0
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
            total = end + 4 + length
            if len(buf) < total:
                return
            del buf[:total]
            if self.inflight:
                self.on_response(self.inflight.popleft(), status)


def post_request(host: str, path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(),
                                                                            len(body), body)


async def open_pipes(base: str, count: int, on_response: Callable[[Any, int], None]) -> list[HttpPipe]:
    hostport = base.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    pipes = []
    for _ in range(count):
        _, pipe = await loop.create_connection(lambda: HttpPipe(on_response), host, int(port))
        pipes.append(pipe)
    return pipes


# ----- the modes ----------------------------------------------------------------------------------


async def whoami(clients: list[EchoClient]) -> list[str]:
    """Ask each wsgw connection its connectionId (the bench app's `whoami` route)."""
    ids = []
    for client in clients:
        answer = orjson.loads(await client.request(b'{"action":"whoami"}'))
        ids.append(str(answer["connectionId"]))
    return ids


async def run_echo(state: WorkerState, go: Callable[[], Awaitable[None]]) -> None:
    spec = state.spec
    max_messages = spec.max_messages

    def closed_loop(client: EchoClient) -> None:
        while (len(client.outstanding) < spec.window and state.running
               and (not max_messages or client.next_id < max_messages)):
            if not client.send_message():
                return

    clients = await open_clients(state, spec.connections, lambda: EchoClient(state, None))
    await go()
    started = time.monotonic()
    deadline = started + spec.duration
    if spec.rate > 0:
        await _open_loop(state, clients, started, deadline)
    else:
        for client in clients:
            client.sender = closed_loop
            closed_loop(client)
        await _run_until(state, clients, deadline,
                         lambda: bool(max_messages) and all(c.next_id >= max_messages and not c.outstanding
                                                            for c in clients))
    state.stop()
    await _drain(state, clients)
    close_clients(clients)


async def _open_loop(state: WorkerState, clients: list[EchoClient], started: float, deadline: float) -> None:
    """Send at a fixed rate, round robin; latency counts from each message's scheduled time (no coordinated
    omission). A generator that falls behind is visible as sent < scheduled."""
    spec = state.spec
    if not clients:
        return
    start_ns = now_ns()
    interval_ns = int(1e9 / spec.rate)
    scheduled = 0
    turn = 0
    last_sweep = time.monotonic()
    while time.monotonic() < deadline:
        due = (now_ns() - start_ns) // interval_ns + 1
        burst = 0
        while scheduled < due and burst < 10_000:
            client = clients[turn % len(clients)]
            turn += 1
            client.send_message(start_ns + scheduled * interval_ns)
            scheduled += 1
            burst += 1
        if time.monotonic() - last_sweep > 0.25:
            _sweep(state, clients)
            last_sweep = time.monotonic()
        await asyncio.sleep(0.001)
    state.extra["scheduled"] = scheduled


def _sweep(state: WorkerState, clients: list[EchoClient]) -> None:
    cutoff = now_ns() - int(state.spec.msg_timeout * 1e9)
    for client in clients:
        client.sweep(cutoff)


async def _run_until(state: WorkerState, clients: list[EchoClient], deadline: float,
                     done: Callable[[], bool]) -> None:
    while time.monotonic() < deadline and not done():
        await asyncio.sleep(0.05)
        _sweep(state, clients)


async def _drain(state: WorkerState, clients: list[EchoClient]) -> None:
    """Wait (bounded) for answers still in flight; whatever is missing then is lost."""
    deadline = time.monotonic() + state.spec.drain_timeout
    await wait_until(lambda: not any(c.outstanding for c in clients), deadline)
    for client in clients:
        state.counts.lost += len(client.outstanding) + len(client.timed_out)
        client.outstanding.clear()
        client.timed_out.clear()


class PushLedger:
    """Process-wide ledger for pushes: id -> post time; frames and HTTP answers settle entries."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.outstanding: dict[int, int] = {}
        self.acked: set[int] = set()
        self.next_id = 0

    def frame(self, payload: bytes, at: int) -> None:
        ident = message_id(payload)
        sent_at = self.outstanding.pop(ident, None) if ident is not None else None
        if sent_at is None:
            self.state.counts.unmatched += 1
            return
        self.state.counts.received += 1
        self.state.hist.record((at - sent_at) // 1000)

    def response(self, ident: int, status: int) -> None:
        if status == 200:
            self.state.counts.posts_ok += 1
            return
        self.state.counts.posts_failed += 1
        self.state.error(f"POST answered {status}" if status else "POST: connection lost")
        if self.outstanding.pop(ident, None) is not None:
            self.state.counts.errored += 1


class PushReceiver(EchoClient):
    """A wsgw connection that only receives pushes and settles them in the shared ledger."""

    def __init__(self, state: WorkerState, ledger: PushLedger) -> None:
        super().__init__(state, None)
        self.ledger = ledger

    def answer(self, payload: bytes, at: int) -> None:
        self.ledger.frame(payload, at)


async def run_push(state: WorkerState, go: Callable[[], Awaitable[None]]) -> None:
    """Closed-loop pushes: spec.http_connections x spec.pipeline POSTs in flight (or as many Redis pushes)."""
    spec = state.spec
    ledger = PushLedger(state)
    clients = await open_clients(state, spec.connections, lambda: PushReceiver(state, ledger))
    targets = await whoami(clients)
    if not targets:
        raise RuntimeError("no connection to push to")
    path_prefix = "/" + spec.push_url.split("://", 1)[1].split("/", 1)[1] + "/@connections/"
    host = spec.push_url.split("://", 1)[1].split("/", 1)[0]
    turn = 0

    def next_push() -> tuple[int, str, bytes]:
        nonlocal turn
        ident = ledger.next_id
        ledger.next_id += 1
        target = targets[turn % len(targets)]
        turn += 1
        state.counts.sent += 1
        ledger.outstanding[ident] = now_ns()
        return ident, target, make_message(ident, "push", spec.size)

    pusher_tasks: list[asyncio.Task[None]] = []
    pipes: list[HttpPipe] = []
    if spec.pusher == "redis":
        push, close_pusher = await redis_pusher(spec.redis_url)

        async def pushing() -> None:
            while state.running:
                ident, target, body = next_push()
                try:
                    ok = await push(target, body)
                except Exception as exc:
                    state.error(f"RedisPusher: {type(exc).__name__}")
                    ok = False
                ledger.response(ident, 200 if ok else 410)
    else:
        def on_response(tag: Any, status: int) -> None:
            ident, pipe = tag
            ledger.response(ident, status)
            if state.running and status:
                refill(pipe)

        def refill(pipe: HttpPipe) -> None:
            while len(pipe.inflight) < spec.pipeline and state.running:
                ident, target, body = next_push()
                pipe.send(post_request(host, path_prefix + target, body), (ident, pipe))

        pipes = await open_pipes(spec.push_url, spec.http_connections, on_response)
    await go()
    deadline = time.monotonic() + spec.duration
    if spec.pusher == "redis":
        pusher_tasks = [asyncio.create_task(pushing()) for _ in range(spec.http_connections * spec.pipeline)]
    else:
        for pipe in pipes:
            refill(pipe)
    await wait_until(lambda: False, deadline, 0.05)
    state.stop()
    if pusher_tasks:
        await asyncio.wait(pusher_tasks, timeout=spec.drain_timeout)
        for task in pusher_tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await close_pusher()
    drain_until = time.monotonic() + spec.drain_timeout
    await wait_until(lambda: not ledger.outstanding and not any(p.inflight for p in pipes), drain_until)
    state.counts.lost += len(ledger.outstanding)
    for pipe in pipes:
        if pipe.transport is not None:
            pipe.transport.close()
    close_clients(clients)


async def redis_pusher(url: str) -> tuple[Callable[[str, bytes], Awaitable[bool]], Callable[[], Awaitable[None]]]:
    """`wsgw.client.AsyncRedisPusher`: push straight through Redis; True = delivered, False = gone."""
    from wsgw.client import AsyncRedisPusher

    pusher = AsyncRedisPusher(url)
    return pusher.post, pusher.close


class BroadcastReceiver(EchoClient):
    """Counts one delivery per round; latency from the round's start."""

    def __init__(self, state: WorkerState, rounds: dict[int, list[int]]) -> None:
        super().__init__(state, None)
        self.rounds = rounds                          # round -> [start ns, deliveries]
        self.seen: set[int] = set()

    def answer(self, payload: bytes, at: int) -> None:
        ident = message_id(payload)
        entry = self.rounds.get(ident) if ident is not None else None
        if entry is None or ident in self.seen:
            self.state.counts.unmatched += 1
            return
        assert ident is not None
        self.seen.add(ident)
        entry[1] += 1
        self.state.counts.received += 1
        self.state.hist.record((at - entry[0]) // 1000)


async def run_broadcast(state: WorkerState, go: Callable[[], Awaitable[None]]) -> None:
    """Rounds of one message to every connection; the next round starts when this one has fully arrived."""
    spec = state.spec
    rounds: dict[int, list[int]] = {}
    clients = await open_clients(state, spec.connections, lambda: BroadcastReceiver(state, rounds))
    pipes: list[HttpPipe] = []
    targets: list[str] = []
    host = path_prefix = ""
    if spec.broadcast_via in ("http", "api"):
        targets = await whoami(clients) if spec.broadcast_via == "http" else []
        host = spec.push_url.split("://", 1)[1].split("/", 1)[0]
        stage_path = "/" + spec.push_url.split("://", 1)[1].split("/", 1)[1]
        path_prefix = stage_path + ("/@connections/" if spec.broadcast_via == "http" else "/@broadcast")

        def on_response(tag: Any, status: int) -> None:
            if status == 200:
                state.counts.posts_ok += 1
            else:
                state.counts.posts_failed += 1
                state.counts.errored += 1
                state.error(f"POST answered {status}")

        pipes = await open_pipes(spec.push_url, spec.http_connections, on_response)
    await go()
    deadline = time.monotonic() + spec.duration
    number = 0
    n = len(clients)
    round_times = Histogram()
    while time.monotonic() < deadline and clients:
        entry = [now_ns(), 0]
        rounds[number] = entry
        message = make_message(number, "bcast", spec.size)
        state.counts.sent += n
        if spec.broadcast_via == "http":
            for i, target in enumerate(targets):
                pipes[i % len(pipes)].send(post_request(host, path_prefix + target, message), None)
        elif spec.broadcast_via == "api":
            pipes[0].send(post_request(host, path_prefix, message), None)
        else:
            sender = clients[0]
            assert sender.transport is not None
            sender.transport.send(WSMsgType.TEXT, b"B" + message)
        round_deadline = time.monotonic() + spec.msg_timeout
        await wait_until(lambda e=entry: e[1] >= n, round_deadline, 0.0005)  # type: ignore[misc]
        round_times.record((now_ns() - entry[0]) // 1000)
        number += 1
    state.stop()
    drain_until = time.monotonic() + spec.drain_timeout
    await wait_until(lambda: not any(p.inflight for p in pipes), drain_until)
    state.counts.lost += state.counts.sent - state.counts.received - state.counts.errored
    state.extra["rounds"] = number
    state.extra["round_ms"] = round_times.summary_ms()
    for pipe in pipes:
        if pipe.transport is not None:
            pipe.transport.close()
    close_clients(clients)


async def run_connect(state: WorkerState, go: Callable[[], Awaitable[None]]) -> None:
    """Handshake after handshake, spec.concurrency at a time; each connection is closed (RST) once open."""
    spec = state.spec
    url = spec.url + (("?" + spec.query) if spec.query else "")
    await go()
    deadline = time.monotonic() + spec.duration

    async def connector() -> None:
        while time.monotonic() < deadline:
            started = now_ns()
            state.counts.sent += 1
            try:
                transport, _ = await ws_connect(WSListener, url, websocket_handshake_timeout=10)
            except Exception as exc:
                state.counts.errored += 1
                state.counts.connects_failed += 1
                state.error(f"connect: {type(exc).__name__}")
                await asyncio.sleep(0.01)
                continue
            state.counts.received += 1
            state.counts.connects_ok += 1
            state.hist.record((now_ns() - started) // 1000)
            _no_linger(transport)
            transport.disconnect(graceful=False)

    await asyncio.gather(*(connector() for _ in range(spec.concurrency)))
    state.stop()


async def run_idle(state: WorkerState, go: Callable[[], Awaitable[None]], hold: Callable[[], Awaitable[None]]) -> None:
    """Open spec.connections and keep them idle until the orchestrator has measured memory."""
    spec = state.spec
    started = now_ns()
    clients = await open_clients(state, spec.connections, lambda: EchoClient(state, None))
    state.extra["open_seconds"] = (now_ns() - started) / 1e9
    state.counts.sent = spec.connections
    state.counts.received = len(clients)
    state.counts.errored = spec.connections - len(clients)
    await go()
    await hold()
    state.stop()
    close_clients(clients)


# ----- process entry --------------------------------------------------------------------------------


def worker_main(spec: WorkerSpec, out: Any, go_event: Any, stop_event: Any) -> None:
    """Entry of a worker process: run one mode, send ('ready'), ('tick', ...) and finally ('result', dict)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    state = WorkerState(spec)
    try:
        asyncio.run(_worker(state, out, go_event, stop_event))
    except Exception as exc:
        state.error(f"worker failed: {type(exc).__name__}: {exc}")
        out.put(("ready", spec.worker_index))
    out.put(("result", spec.worker_index, result_of(state)))


async def _worker(state: WorkerState, out: Any, go_event: Any, stop_event: Any) -> None:
    cpu_start: list[float] = []

    async def go() -> None:
        out.put(("ready", state.spec.worker_index))
        await wait_until(go_event.is_set, time.monotonic() + 120, 0.005)
        times = os.times()
        cpu_start.extend([times.user + times.system, time.monotonic()])
        asyncio.get_running_loop().create_task(ticker())

    async def hold() -> None:
        await wait_until(stop_event.is_set, time.monotonic() + 300)

    async def ticker() -> None:
        t0 = time.monotonic()
        while state.running:
            await asyncio.sleep(TICK_SECONDS)
            point = (round(time.monotonic() - t0, 3), state.counts.received, state.counts.sent)
            state.series.append(point)
            out.put(("tick", state.spec.worker_index, point))

    mode = state.spec.mode
    if mode == "echo":
        await run_echo(state, go)
    elif mode == "push":
        await run_push(state, go)
    elif mode == "broadcast":
        await run_broadcast(state, go)
    elif mode == "connect":
        await run_connect(state, go)
    elif mode == "idle":
        await run_idle(state, go, hold)
    else:
        raise ValueError(f"unknown mode {mode}")
    if cpu_start:
        times = os.times()
        wall = time.monotonic() - cpu_start[1]
        state.extra["cpu_percent"] = 100.0 * (times.user + times.system - cpu_start[0]) / wall if wall else 0.0
        state.extra["wall_seconds"] = wall
        state.extra["active_seconds"] = (state.stopped_at or time.monotonic()) - cpu_start[1]


def result_of(state: WorkerState) -> dict[str, Any]:
    return {"counts": asdict(state.counts), "hist": state.hist.to_dict(), "series": state.series,
            "errors": state.errors, "extra": state.extra}
