"""One node's core: the connection lifecycle ($connect, messages, $disconnect), limits and keepalive.

The server layer owns sockets and HTTP; it calls in here with plain values and a SocketSink. The gateway
owns the local socket table and asks the registry about connections held elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.frames import Frame, Opcode

from wsgw.authorizers import Authorizer, AuthRequest, build_authorizers, status_message
from wsgw.config import ApiConfig
from wsgw.events import (
    ConnectionInfo,
    InvalidIntegrationResult,
    LambdaContext,
    connect_event,
    disconnect_event,
    error_frame,
    fast_id,
    header_value,
    message_event,
    method_arn,
    new_id,
    read_integration_result,
)
from wsgw.gateway.connection import Connection
from wsgw.gateway.routes import Route, RouteTable
from wsgw.gateway.sink import SocketSink
from wsgw.integrations import Integration, Resources
from wsgw.integrations.environment import node_environment
from wsgw.metrics import Metrics
from wsgw.registry import ConnectionRecord, Registry, RegistryUnavailable
from wsgw.throttle import Throttler, build_throttler

log = logging.getLogger("wsgw.gateway")

FORBIDDEN = "Forbidden"
INTERNAL_ERROR = "Internal server error"
TIMED_OUT = "Endpoint request timed out"
TOO_MANY = "Too Many Requests"      # AWS: "429 Too Many Requests" (docs/aws-contract.md)
INBOX_HIGH_WATER = 64          # pause reading from a socket whose messages queue up beyond this
INBOX_LOW_WATER = 16
WATCHDOG_SECONDS = 0.025       # integration timeouts are enforced within this


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Handshake:
    """A WebSocket upgrade request as the gateway sees it (no sockets)."""

    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    source_ip: str
    host: str
    subprotocols: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(slots=True)
class ConnectOutcome:
    """Accept (status 101 with a pending connection) or refuse with an HTTP status and body."""

    status: int
    info: ConnectionInfo | None = None
    subprotocol: str | None = None
    body: str = ""     # refused: the HTTP body; accepted: the $connect route response to relay, if any


class Gateway:
    """The connection lifecycle for one API on one node."""

    def __init__(self, api: ApiConfig, registry: Registry, node_id: str | None = None,
                 resources: Resources | None = None, *, routes: RouteTable | None = None,
                 authorizers: dict[str, Authorizer] | None = None, throttle: Throttler | None = None) -> None:
        """The parts come built from wsgw.server.node.build_node; given none, they are built here."""
        self.api = api
        self.registry = registry
        self.node_id = node_id or f"node-{os.getpid()}-{new_id()[:8]}"
        self.resources = resources or Resources(environment=node_environment(api, os.environ, Path.home()))
        self.routes = routes if routes is not None else RouteTable(api, self.resources)
        self.authorizers: dict[str, Authorizer] = (authorizers if authorizers is not None
                                                   else build_authorizers(api, self.resources))
        self.throttle = throttle if throttle is not None else build_throttler(api, time.monotonic)
        self.connections: dict[str, Connection] = {}
        self.metrics = Metrics()
        self.metrics.gauge("wsgw_connections", lambda: float(len(self.connections)))
        self.workers: set[asyncio.Task[None]] = set()
        self.accepting = False
        self.limits = api.limits
        self._sweeper: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.deadlines: dict[asyncio.Task[Any], float] = {}   # tasks inside an integration call → loop deadline
        self.expired: set[asyncio.Task[Any]] = set()          # ... that the watchdog cancelled
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- lifecycle of the node -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.registry.start(self)
        self._sweeper = self._loop.create_task(self._sweep_forever())
        self._watchdog = self._loop.create_task(self._watch_deadlines())
        self.accepting = True

    async def shutdown(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting, close every socket with 1001, wait for every $disconnect, stop the registry."""
        self.accepting = False
        for conn in list(self.connections.values()):
            # Messages still queued behind a running one are dropped (counted, logged) so that every
            # $disconnect runs within the grace period instead of after a long queue of handler calls.
            dropped = sum(1 for item in conn.inbox if item is not None)
            if dropped:
                conn.inbox.clear()
                self.metrics.inc("wsgw_messages_dropped_total", 'reason="shutdown"', dropped)
                log.warning("shutdown: %d queued message(s) of %s not handled", dropped, conn.info.connection_id)
            self.close_connection(conn, 1001, "Going away")
        deadline = time.monotonic() + grace_seconds
        while (self.connections or self.workers) and time.monotonic() < deadline:
            pending = list(self.workers)
            if pending:
                await asyncio.wait(pending, timeout=max(0.01, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0.01)
        for conn in list(self.connections.values()):    # peers that never answered the close
            conn.sink.abort()
        if self.workers:
            await asyncio.wait(list(self.workers), timeout=max(0.1, deadline - time.monotonic()))
        if self.workers:
            log.error("shutdown: %d $disconnect/handler call(s) still running after %.0f s; abandoned",
                      len(self.workers), grace_seconds)
        for background in (self._sweeper, self._watchdog):
            if background is not None:
                background.cancel()
        await self.registry.stop()
        await self.routes.close()
        for authorizer in self.authorizers.values():
            await authorizer.close()
        await self.resources.close()

    # ----- $connect --------------------------------------------------------------------------------

    async def connect(self, hs: Handshake) -> ConnectOutcome:
        """Run the authorizer and the $connect integration; nothing is registered yet."""
        if not self.accepting:
            return ConnectOutcome(503, body="Service Unavailable: the node is shutting down")
        api = self.api
        started = now_ms()
        info = ConnectionInfo(new_id(), started, hs.source_ip, hs.header("user-agent"), hs.host,
                              api.stage, api.api_id, None)
        route = self.routes.connect
        if not self.throttle.admit_route("$connect"):
            self.metrics.inc("wsgw_throttled_total", 'scope="route"')
            self.metrics.inc("wsgw_connections_refused_total", 'status="429"')
            return ConnectOutcome(429, body=TOO_MANY)
        subprotocol: str | None = None
        consumed: tuple[str, ...] = ()          # subprotocols that carried a token: never answered
        request_id = new_id()
        if route is not None and route.authorizer is not None:
            authorizer = self.authorizers[route.authorizer]
            request = AuthRequest(info, hs.headers, hs.query, api.stage_variables, request_id, started, "$connect",
                                  method_arn(api.region, api.account_id, api.api_id, api.stage, "$connect"),
                                  hs.subprotocols)
            outcome = await authorizer.authorize(request)
            if not outcome.allowed:
                self.metrics.inc("wsgw_connections_refused_total", f'status="{outcome.status}"')
                return ConnectOutcome(outcome.status, body=outcome.message or status_message(outcome.status))
            info.authorizer = outcome.context
            subprotocol = outcome.subprotocol
            consumed = outcome.consumed
        if route is None:
            return ConnectOutcome(101, info, subprotocol)
        event = connect_event(info, hs.headers, hs.query, api.stage_variables or None, request_id, started)
        try:
            raw = await self._invoke(route, event, request_id)
            result = read_integration_result(raw)
        except TimeoutError:
            log.error("$connect %s timed out after %.0f ms (requestId %s)", info.connection_id,
                      route.timeout_s * 1000, request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="timeout"')
            return ConnectOutcome(504, body="Endpoint request timed out")
        except Exception:
            log.exception("$connect handler failed (requestId %s)", request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="error"')
            self.metrics.inc("wsgw_connections_refused_total", 'status="502"')
            return ConnectOutcome(502, body="Internal server error")
        if not 200 <= result.status_code < 300:
            self.metrics.inc("wsgw_connections_refused_total", f'status="{result.status_code}"')
            return ConnectOutcome(result.status_code, body=result.body or "")
        chosen = _header(result.headers, "sec-websocket-protocol")
        if chosen is not None and subprotocol is None:
            # When the authorizer already picked the subprotocol (a token rode in the header), the handler
            # cannot override it: the only other offered values are the token itself.
            first = chosen.split(",")[0].strip()
            subprotocol = first if first in hs.subprotocols and first not in consumed else None
        greeting = result.body if route.route_response and result.body else ""
        return ConnectOutcome(101, info, subprotocol, body=greeting)

    async def admit(self, info: ConnectionInfo, sink: SocketSink, send_accept: Callable[[], bool]) -> Connection | None:
        """Register the accepted connection, write the 101 (send_accept), then make it reachable locally.

        Registration comes first so that a refused registration refuses the handshake (503); the local
        table entry comes after the 101 so that no pushed frame can precede the handshake response.
        """
        if not self.accepting:                 # $connect finished after shutdown began: too late to admit
            self.metrics.inc("wsgw_connections_refused_total", 'status="503"')
            return None
        loop = self._loop or asyncio.get_running_loop()
        conn = Connection(info, sink, loop.time())
        try:
            await self.registry.register(conn.record(self.node_id))
        except RegistryUnavailable:
            log.warning("refusing %s: registry unavailable", info.connection_id)
            self.metrics.inc("wsgw_connections_refused_total", 'status="503"')
            self._spawn_deregister(info.connection_id)     # the write may have landed before the error
            return None
        if not send_accept():                  # the client vanished while $connect ran
            self._spawn_deregister(info.connection_id)
            return None
        self.connections[info.connection_id] = conn
        self.metrics.inc("wsgw_connections_opened_total")
        return conn

    # ----- messages --------------------------------------------------------------------------------

    def on_text(self, conn: Connection, body: str) -> None:
        """A complete text message arrived (already valid UTF-8)."""
        self._enqueue(conn, body, False)

    def on_binary(self, conn: Connection, data: bytes) -> None:
        """AWS refuses binary frames unless the API opts into base64 delivery."""
        if not self.api.binary_as_base64:
            conn.close_override = (1003, "Binary frames are not supported")
            conn.sink.close(1003, "Binary frames are not supported")
            return
        self._enqueue(conn, base64.b64encode(data).decode("ascii"), True)

    def on_peer_activity(self, conn: Connection) -> None:
        """Any bytes from the peer (pongs included): it is alive, so no keepalive ping is owed."""
        if self._loop is not None:
            conn.last_seen = self._loop.time()
        conn.ping_sent_at = None

    def _enqueue(self, conn: Connection, body: str, is_base64: bool) -> None:
        at = now_ms()
        conn.last_active_ms = at
        self.registry.touch(conn.info.connection_id, at)
        self.metrics.inc("wsgw_messages_received_total")
        if not self.throttle.admit_message(conn.info.connection_id):
            self.metrics.inc("wsgw_throttled_total", 'scope="connection"')
            self._send_error(conn, TOO_MANY, fast_id())
            return
        if len(conn.inbox) >= self.limits.max_queued_messages:
            self.metrics.inc("wsgw_integration_errors_total", 'kind="queue_full"')
            self._send_error(conn, TOO_MANY, fast_id())
            return
        conn.inbox.append((body, is_base64, at))
        if len(conn.inbox) > INBOX_HIGH_WATER and not conn.reading_paused:
            conn.reading_paused = True
            conn.sink.pause_reading()
        if conn.worker is None:
            self._start_worker(conn)

    def _start_worker(self, conn: Connection) -> None:
        # Not tracked in self.workers while the connection is open (a set add and a done callback per message
        # showed in the profile); on_closed tracks it, so shutdown still waits for every $disconnect.
        loop = self._loop or asyncio.get_running_loop()
        conn.worker = loop.create_task(self._drain(conn))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    async def _drain(self, conn: Connection) -> None:
        """Handle one connection's messages in the order they arrived, $disconnect last.

        Nothing a message does may end the worker early: a worker that died would leave the rest of the
        inbox unhandled and the socket's reading paused, a silent hang. Such an error is logged, counted and
        answered like a failed handler; the worker goes on with the next message."""
        try:
            while conn.inbox:
                item = conn.inbox.popleft()
                if item is None:
                    await self._run_disconnect(conn)
                    return
                try:
                    await self._handle_message(conn, *item)
                except Exception:
                    request_id = fast_id()
                    log.exception("handling a message of %s failed (requestId %s)", conn.info.connection_id,
                                  request_id)
                    self.metrics.inc("wsgw_integration_errors_total", 'kind="internal"')
                    self._send_error(conn, INTERNAL_ERROR, request_id)
                if conn.reading_paused and len(conn.inbox) <= INBOX_LOW_WATER:
                    conn.reading_paused = False
                    conn.sink.resume_reading()
        finally:
            conn.worker = None
            if conn.reading_paused:              # never leave a socket unread behind a worker that stopped
                conn.reading_paused = False
                conn.sink.resume_reading()

    async def _handle_message(self, conn: Connection, body: str, is_base64: bool, at_ms: int) -> None:
        request_id = fast_id()
        route = self.routes.route_for(base64.b64decode(body) if is_base64 else body)
        if route is None:
            self.metrics.inc("wsgw_route_misses_total")
            self._send_error(conn, FORBIDDEN, request_id)
            return
        if not self.throttle.admit_route(route.key):
            self.metrics.inc("wsgw_throttled_total", 'scope="route"')
            self._send_error(conn, TOO_MANY, request_id)
            return
        event = message_event(conn.info, route.key, body, is_base64, self.api.stage_variables or None,
                              request_id, fast_id(), at_ms)
        try:
            raw = await self._invoke(route, event, request_id, conn.worker)
            if route.route_response:
                result = read_integration_result(raw)
                if result.body is not None and conn.info.connection_id in self.connections:
                    data = base64.b64decode(result.body) if result.is_base64 else result.body
                    if conn.sink.send(data):
                        self.metrics.inc("wsgw_messages_sent_total")
        except TimeoutError:
            log.error("route %s timed out after %.0f ms (connection %s, requestId %s)", route.key,
                      route.timeout_s * 1000, conn.info.connection_id, request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="timeout"')
            self._send_error(conn, TIMED_OUT, request_id)
        except InvalidIntegrationResult as exc:
            log.error("route %s returned an invalid result: %s (requestId %s)", route.key, exc, request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="invalid_result"')
            self._send_error(conn, INTERNAL_ERROR, request_id)
        except Exception:
            log.exception("route %s failed (connection %s, requestId %s)", route.key,
                          conn.info.connection_id, request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="error"')
            self._send_error(conn, INTERNAL_ERROR, request_id)

    async def _invoke(self, route: Route, event: dict[str, Any], request_id: str,
                      task: asyncio.Task[Any] | None = None) -> object:
        """Call a route's integration under its timeout ($connect, messages, $disconnect).

        `task` is the task running this (the connection's worker on the message path: asyncio.current_task()
        showed at a tenth of the routed profile under uvloop)."""
        context = route.make_context(request_id, route.integration.timeout_ms)
        return await self.within_deadline(route.integration.invoke(event, context), route.timeout_s, task)

    async def invoke_integration(self, integration: Integration, timeout_s: float, event: dict[str, Any],
                                 request_id: str) -> object:
        """Call an integration with a Lambda context; TimeoutError past timeout_s (the REST front uses it)."""
        context = LambdaContext(integration.function_name, request_id, integration.timeout_ms,
                                self.api.region, self.api.account_id)
        return await self.within_deadline(integration.invoke(event, context), timeout_s)

    async def within_deadline(self, call: Awaitable[object], timeout_s: float,
                              task: asyncio.Task[Any] | None = None) -> object:
        """Await `call`; TimeoutError once timeout_s passed. The watchdog enforces it, not a timer per call.

        A timer per call (asyncio.timeout) cost about a tenth of the routed path and more of a connect; the
        watchdog keeps one deadline per running task and cancels the task when it passes.
        """
        task = task or asyncio.current_task()
        assert task is not None and self._loop is not None
        self.deadlines[task] = self._loop.time() + timeout_s
        try:
            return await call
        except asyncio.CancelledError:
            if task not in self.expired:
                raise
            raise TimeoutError from None
        finally:
            del self.deadlines[task]
            if task in self.expired:             # our cancel, delivered or swallowed: take it back
                self.expired.discard(task)
                task.uncancel()

    async def _watch_deadlines(self) -> None:
        """Cancel integration calls that outlive their timeout (checked every WATCHDOG_SECONDS)."""
        assert self._loop is not None
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            now = self._loop.time()
            for task, deadline in list(self.deadlines.items()):
                if now >= deadline and task not in self.expired:
                    self.expired.add(task)
                    task.cancel()

    def _send_error(self, conn: Connection, message: str, request_id: str) -> None:
        if conn.sink.send(error_frame(message, conn.info.connection_id, request_id).decode()):
            self.metrics.inc("wsgw_messages_sent_total")

    # ----- the end of a connection -----------------------------------------------------------------

    def close_connection(self, conn: Connection, code: int, reason: str, report: str | None = None) -> None:
        """Close from our side; $disconnect reports (code, report or reason)."""
        if conn.close_override is None:
            conn.close_override = (code, reason if report is None else report)
        conn.sink.close(code, reason)

    def on_closed(self, conn: Connection, code: int, reason: str) -> None:
        """The socket is gone (any cause). Runs exactly once per admitted connection: schedules $disconnect."""
        if self.connections.pop(conn.info.connection_id, None) is None:
            return
        self.metrics.inc("wsgw_connections_closed_total")
        self.throttle.forget(conn.info.connection_id)
        if conn.close_override is not None:
            code, reason = conn.close_override
        conn.close_override = (code, reason)
        self._spawn_deregister(conn.info.connection_id)
        conn.inbox.append(None)
        if conn.worker is None:
            self._start_worker(conn)
        assert conn.worker is not None
        self._track(conn.worker)

    async def _run_disconnect(self, conn: Connection) -> None:
        code, reason = conn.close_override or (1006, "")
        await self._invoke_disconnect(conn.info, code, reason)

    async def run_orphan_disconnect(self, record: ConnectionRecord) -> None:
        """$disconnect (1006) for a connection whose node died; the registry hands each such record to one node."""
        self.metrics.inc("wsgw_orphan_disconnects_total")
        info = ConnectionInfo(record.connection_id, record.connected_at_ms, record.source_ip, record.user_agent,
                              record.domain_name, self.api.stage, self.api.api_id, record.authorizer)
        await self._invoke_disconnect(info, 1006, "")

    async def _invoke_disconnect(self, info: ConnectionInfo, code: int, reason: str) -> None:
        route = self.routes.disconnect
        if route is None:
            return
        request_id = new_id()
        event = disconnect_event(info, code, reason, self.api.stage_variables or None, request_id, now_ms())
        try:
            await self._invoke(route, event, request_id)
        except Exception:
            log.exception("$disconnect handler failed (connection %s, requestId %s)", info.connection_id,
                          request_id)
            self.metrics.inc("wsgw_integration_errors_total", 'kind="disconnect"')

    def _spawn_deregister(self, connection_id: str) -> None:
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(self._deregister(connection_id))
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    async def _deregister(self, connection_id: str) -> None:
        try:
            await self.registry.deregister(connection_id)
        except Exception as exc:   # the registry's own liveness sweep removes it later
            log.warning("deregister %s failed: %s", connection_id, exc)

    # ----- @connections ----------------------------------------------------------------------------

    async def post(self, connection_id: str, data: bytes) -> bool:
        """Deliver to a connection wherever it is; True only once a socket took the frame."""
        if self.deliver_local(connection_id, data):
            self.metrics.inc("wsgw_pushes_total", 'result="delivered"')
            return True
        delivered = connection_id not in self.connections and await self.registry.deliver(connection_id, data)
        self.metrics.inc("wsgw_pushes_total", 'result="delivered"' if delivered else 'result="gone"')
        return delivered

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        return self.lookup_local(connection_id) or await self.registry.lookup(connection_id)

    async def broadcast(self, data: bytes) -> int:
        """Push to every connection of the API, on every node; how many sockets took the frame."""
        local = self.broadcast_local(data)
        return local + await self.registry.broadcast(data)

    async def delete(self, connection_id: str) -> bool:
        return self.disconnect_local(connection_id) or await self.registry.disconnect(connection_id)

    # ----- LocalNode: what the registry reaches on this node ---------------------------------------

    def deliver_local(self, connection_id: str, data: bytes) -> bool:
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        if conn.sink.send(data):
            self.metrics.inc("wsgw_messages_sent_total")
            return True
        return False

    def broadcast_local(self, data: bytes) -> int:
        """One frame to every local socket, encoded once (server frames are unmasked, so identical)."""
        opcode = Opcode.BINARY
        try:
            data.decode("utf-8")
            opcode = Opcode.TEXT
        except UnicodeDecodeError:
            pass
        frame = Frame(opcode, data).serialize(mask=False, extensions=[])
        sent = 0
        for conn in self.connections.values():
            if conn.sink.send_encoded(frame):
                sent += 1
        self.metrics.inc("wsgw_messages_sent_total", amount=sent)
        return sent

    def disconnect_local(self, connection_id: str) -> bool:
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        self.close_connection(conn, 1000, "", report="Connection Closed Normally")
        return True

    def drop_local(self, connection_id: str) -> bool:
        """Close a local socket (1001) WITHOUT running $disconnect or deregistering: the registry found that
        another node already ran its $disconnect (this node had been reaped as dead while stalled)."""
        conn = self.connections.pop(connection_id, None)    # gone from the table: on_closed will do nothing
        if conn is None:
            return False
        self.metrics.inc("wsgw_connections_closed_total")
        self.throttle.forget(connection_id)
        conn.inbox.clear()
        if conn.reading_paused:                # the peer's close frame must still be read
            conn.sink.resume_reading()
        conn.sink.close(1001, "Going away")
        return True

    def lookup_local(self, connection_id: str) -> ConnectionRecord | None:
        conn = self.connections.get(connection_id)
        return None if conn is None else conn.record(self.node_id)

    def local_records(self) -> Iterable[ConnectionRecord]:
        return [conn.record(self.node_id) for conn in list(self.connections.values())]

    # ----- idle, max age, keepalive: one sweep for all connections ---------------------------------

    def _sweep_interval(self) -> float:
        limits = self.limits
        shortest = min(limits.idle_timeout_seconds, limits.max_connection_seconds, limits.ping_interval_seconds,
                       limits.ping_timeout_seconds)
        return max(0.05, min(1.0, shortest / 4))

    async def _sweep_forever(self) -> None:
        interval = self._sweep_interval()
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed")

    def sweep(self) -> None:
        """Close idle and too-old connections; ping quiet peers and drop those that never answer."""
        assert self._loop is not None
        now = self._loop.time()
        wall = now_ms()
        limits = self.limits
        idle_ms = limits.idle_timeout_seconds * 1000
        max_age_ms = limits.max_connection_seconds * 1000
        for conn in list(self.connections.values()):
            if conn.close_override is not None:
                continue
            if wall - conn.info.connected_at_ms >= max_age_ms or wall - conn.last_active_ms >= idle_ms:
                self.close_connection(conn, 1001, "Going away")
            elif conn.ping_sent_at is not None:
                if now - conn.ping_sent_at >= limits.ping_timeout_seconds:
                    conn.close_override = (1006, "")
                    conn.sink.abort()
            elif now - conn.last_seen >= limits.ping_interval_seconds:
                conn.ping_sent_at = now
                conn.sink.ping()


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


