"""One node's gateway: the composition of the connect flow, the inboxes, the deadline watchdog, the keepalive
sweep and the local node table, plus the connection's end and the @connections operations.

The server layer owns sockets and HTTP; it calls in here with plain values and a SocketSink:
`connect` once per upgrade, `on_message`/`on_peer_activity` while open, `on_closed` once at the end.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from wsgw.authorizers import Authorizer, build_authorizers
from wsgw.aws.ids import new_id
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import ApiConfig
from wsgw.gateway.clock import Clock
from wsgw.gateway.connect import ConnectFlow, ConnectOutcome
from wsgw.gateway.connection import CloseFrame, Connection, close_code
from wsgw.gateway.deadlines import Deadlines
from wsgw.gateway.dispatch import TOO_MANY, Dispatcher
from wsgw.gateway.groups import Groups
from wsgw.gateway.inbox import Inboxes
from wsgw.gateway.keepalive import KeepaliveSweep
from wsgw.gateway.local import LocalTable
from wsgw.gateway.routes import RouteTable
from wsgw.gateway.sink import SocketSink
from wsgw.integrations import Resources
from wsgw.integrations.environment import node_environment
from wsgw.integrations.group import PUBLISHER as GROUP_PUBLISHER
from wsgw.metrics import Dimensions, Metrics
from wsgw.observe.access_log import AccessLog
from wsgw.registry import ConnectionRecord, Registry, RegistryUnavailable
from wsgw.registry.base import Member
from wsgw.request import HttpRequest
from wsgw.throttle import Throttler, build_throttler

log = logging.getLogger("wsgw.gateway")


class Gateway:
    """The connection lifecycle for one API on one node; also the registry's LocalNode."""

    def __init__(self, api: ApiConfig, registry: Registry, node_id: str | None = None,
                 resources: Resources | None = None, clock: Clock | None = None, *,
                 routes: RouteTable | None = None, authorizers: dict[str, Authorizer] | None = None,
                 throttle: Throttler | None = None, dimensions: Dimensions | None = None) -> None:
        """The parts come built from wsgw.server.node.build_node; given none, they are built here."""
        clock = clock or Clock()
        self.api = api
        self.limits = api.limits
        self.registry = registry
        self.node_id = node_id or f"node-{os.getpid()}-{new_id()[:8]}"
        self.resources = resources or Resources(environment=node_environment(api, os.environ, Path.home()))
        self.epoch_ms = clock.epoch_ms
        self._monotonic = clock.monotonic
        self.routes = routes if routes is not None else RouteTable(api, self.resources)
        self.authorizers: dict[str, Authorizer] = (authorizers if authorizers is not None
                                                   else build_authorizers(api, self.resources))
        self.throttle = throttle if throttle is not None else build_throttler(api, time.monotonic)
        # WSGW_METRICS_HISTOGRAMS=0 keeps every count but skips latency histograms (loadtest/observe_cost.py)
        dims = dimensions or Dimensions(api.api_id, api.stage)
        self.metrics = Metrics(dims.api, dims.stage, dims.version, canary=dims.canary,
                               histograms=os.environ.get("WSGW_METRICS_HISTOGRAMS") != "0")
        self.deployment = dims.deployment
        self.local = LocalTable(self.node_id, self.metrics, self.deployment)
        # deployment key → the gateway of this process serving it (the Site sets one that knows every deployment)
        self.deployment_gateway: Callable[[str], Gateway | None] = (
            lambda key: self if key == self.deployment else None)
        self.metrics.gauges(lambda: float(len(self.local)), self._queue_depth)
        self.metrics.authorizer_caches(self._authorizer_caches)
        registry.roundtrip_observer = self.metrics.redis_roundtrip.labels(**self.metrics.node).observe
        self.workers: set[asyncio.Future[Any]] = set()      # $disconnect workers and deregistrations
        self.accepting = False
        self.access: AccessLog | None = None
        self.deadlines = Deadlines()
        self.dispatcher = Dispatcher(api, self.routes, self.throttle, self.deadlines, self.metrics,
                                     self.local.__contains__, self.epoch_ms)
        self.inboxes = Inboxes(self.dispatcher.handle_message, self._run_disconnect, self.dispatcher.message_failed,
                               self.limits.max_queued_messages, self.metrics)
        self.keepalive = KeepaliveSweep(self.limits, self.local, self.now, self.close_connection)
        self.connect_flow = ConnectFlow(api, self.routes, self.authorizers, self.throttle, self.dispatcher,
                                        registry, self.local, self.metrics, self.now, self.epoch_ms,
                                        lambda: self.accepting, self._spawn_deregister)
        self.groups = Groups(api.groups, registry, self.local, self.metrics, self.epoch_ms, self._track)
        self.connect_flow.joins = self.groups.admitted
        self.groups.member_route = self._member_route
        self.resources.shared[GROUP_PUBLISHER] = self.groups      # relay routes (integrations/group.py)

    def _queue_depth(self) -> float:
        return float(sum(len(conn.inbox) for conn in self.local.connections.values()))

    def _authorizer_caches(self) -> list[tuple[str, int, int]]:
        return [(name, getattr(a, "cache_hits", 0), getattr(a, "calls", 0)) for name, a in self.authorizers.items()]

    @property
    def connections(self) -> dict[str, Connection]:
        """The local table by connection id (read-only use)."""
        return self.local.connections

    def now(self) -> float:
        """Monotonic seconds: the loop's clock unless one was injected."""
        assert self._monotonic is not None, "the gateway has not started"
        return self._monotonic()

    # ----- lifecycle of the node -------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._monotonic is None:
            self._monotonic = loop.time
        await self.registry.start(self)
        self.keepalive.start(loop)
        self.deadlines.start(loop)
        self.accepting = True

    async def shutdown(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting, close every socket with 1001, wait for every $disconnect, stop the registry."""
        self.accepting = False
        for conn in self.local.all():
            # Messages still queued behind a running one are dropped (counted, logged) so that every
            # $disconnect runs within the grace period instead of after a long queue of handler calls.
            dropped = self.inboxes.drop_queued(conn)
            if dropped:
                self.metrics.count(self.metrics.dropped, dropped, reason="shutdown")
                log.warning("shutdown: %d queued message(s) of %s not handled", dropped, conn.info.connection_id)
            self.close_connection(conn, 1001, "Going away")
        deadline = time.monotonic() + grace_seconds
        while (self.local.connections or self.workers) and time.monotonic() < deadline:
            pending = list(self.workers)
            if pending:
                await asyncio.wait(pending, timeout=max(0.01, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0.01)
        for conn in self.local.all():    # peers that never answered the close
            conn.sink.abort()
        if self.workers:
            await asyncio.wait(list(self.workers), timeout=max(0.1, deadline - time.monotonic()))
        if self.workers:
            log.error("shutdown: %d $disconnect/handler call(s) still running after %.0f s; abandoned",
                      len(self.workers), grace_seconds)
        self.keepalive.stop()
        self.deadlines.stop()
        await self.registry.stop()
        await self.routes.close()
        for authorizer in self.authorizers.values():
            await authorizer.close()
        await self.resources.close()

    # ----- one connection: $connect, messages, the end ---------------------------------------------

    async def connect(self, hs: HttpRequest, sink: SocketSink) -> ConnectOutcome:
        """Authorizer, $connect, then admission in one step: registered, 101 written (sink.accept), reachable.

        The listener acts on the outcome: switch to the WebSocket (`conn` set) or answer the refusal."""
        return await self.connect_flow.run(hs, sink)

    def on_message(self, conn: Connection, data: str | bytes) -> None:
        """A complete message arrived: text (str, valid UTF-8) or binary (bytes)."""
        if conn.tap is not None:
            conn.tap.copy("in", data)
        if isinstance(data, str):
            self._enqueue(conn, data, False)
        elif not self.api.binary_as_base64:       # AWS refuses binary frames unless the API opts into base64
            self.close_connection(conn, 1003, "Binary frames are not supported")
        else:
            self._enqueue(conn, base64.b64encode(data).decode("ascii"), True)

    def on_peer_activity(self, conn: Connection) -> None:
        """Any bytes from the peer (pongs included): it is alive, so no keepalive ping is owed."""
        conn.last_seen = self.now()
        conn.ping_sent_at = None

    def _enqueue(self, conn: Connection, body: str, is_base64: bool) -> None:
        at = self.epoch_ms()
        conn.last_active_ms = at
        conn.last_active = self.now()
        self.registry.touch(conn.info.connection_id, at)
        self.metrics.received_one.inc()
        if not self.throttle.admit_message(conn.info.connection_id):
            self.metrics.count(self.metrics.throttled, scope="connection")
            self.dispatcher.send_error(conn, TOO_MANY, new_id())
            return
        if not self.inboxes.push(conn, body, is_base64, at):
            self.metrics.count(self.metrics.integration_errors, kind="queue_full")
            self.dispatcher.send_error(conn, TOO_MANY, new_id())

    def close_connection(self, conn: Connection, code: int, reason: str, report: str | None = None) -> None:
        """Close from our side; $disconnect reports (code, report or reason) unless an earlier decision stands."""
        conn.decide_close(code, reason if report is None else report)
        conn.sink.close(code, reason)

    def on_closed(self, conn: Connection, received: CloseFrame | None, sent: CloseFrame | None) -> None:
        """The socket is gone (any cause), with the close frames it saw. Runs $disconnect exactly once per
        admitted connection, after its queued messages, with the code close_code decides."""
        if self.local.remove(conn.info.connection_id) is None:
            return
        if conn.tap is not None:
            conn.tap.closed()
        self.metrics.count(self.metrics.closed)
        self.throttle.forget(conn.info.connection_id)
        conn.close_decided = close_code(conn.close_decided, received, sent)
        self.groups.closed(conn.info.connection_id)
        self._spawn_deregister(conn.info.connection_id)
        self._track(self.inboxes.finish(conn))

    async def _run_disconnect(self, conn: Connection) -> None:
        code, reason = conn.close_decided or (1006, "")
        await self.dispatcher.run_disconnect(conn.info, code, reason)

    async def run_orphan_disconnect(self, record: ConnectionRecord, groups: Collection[str] = ()) -> None:
        """$disconnect (1006) for a connection whose node died; the registry hands each such record to one node,
        with the groups it already removed the connection from (their leave notices and $leave calls go first).
        It runs on the deployment the connection was served by; when this process serves none, it is logged and
        counted, never run on another version's code."""
        if record.deployment and record.deployment != self.deployment:
            owner = self.deployment_gateway(record.deployment)
            if owner is None:
                log.warning("connection %s of a dead node was served by %s, which this node does not serve: its "
                            "$disconnect is not run", record.connection_id, record.deployment)
                self.metrics.count(self.metrics.orphans_unserved, deployment=record.deployment)
                return
            if owner is not self:
                await owner.run_orphan_disconnect(replace(record, deployment=owner.deployment), groups)
                return
        self.metrics.count(self.metrics.orphan_disconnects)
        info = ConnectionInfo(record.connection_id, record.connected_at_ms, record.source_ip, record.user_agent,
                              record.domain_name, self.api.stage, self.api.api_id, record.authorizer)
        if groups:
            self.groups.orphaned(info, groups)
        await self.dispatcher.run_disconnect(info, 1006, "")

    def _member_route(self, event: str, info: ConnectionInfo, group: str, reason: str, since: int | None) -> None:
        """Call $join or $leave (groups with joinRoutes: true) in the background, like $disconnect."""
        route = self.routes.join if event == "join" else self.routes.leave
        if route is not None:
            self._track(asyncio.get_running_loop().create_task(
                self.dispatcher.run_member_route(route, info, event, group, reason, since)))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    def _spawn_deregister(self, connection_id: str) -> None:
        self._track(asyncio.get_running_loop().create_task(self._deregister(connection_id)))

    async def _deregister(self, connection_id: str) -> None:
        try:
            await self.registry.deregister(connection_id)
        except Exception as exc:   # the registry's own liveness sweep removes it later
            log.warning("deregister %s failed: %s", connection_id, exc)

    def sweep(self) -> None:
        """One keepalive pass now (the sweep also runs by itself)."""
        self.keepalive.sweep()

    # ----- @connections ----------------------------------------------------------------------------

    async def post(self, connection_id: str, data: bytes) -> bool:
        """Deliver to a connection wherever it is; True only once a socket took the frame."""
        if connection_id in self.local:
            self._check_lease(connection_id)
        if self.local.deliver(connection_id, data):
            self.metrics.delivered.inc()
            delivered = True
        else:
            delivered = connection_id not in self.local and await self.registry.deliver(connection_id, data)
            (self.metrics.delivered if delivered else self.metrics.gone).inc()
        if self.access is not None:
            self.access.write({"eventType": "PUSH", "routeKey": "@connections", "connectionId": connection_id,
                               "status": 200 if delivered else 410, "requestTimeEpoch": self.epoch_ms(),
                               "responseLength": len(data)})
        return delivered

    def use_access_log(self, access: AccessLog | None) -> None:
        """Write access log records from now on (None: stop)."""
        self.access = access
        self.dispatcher.access = access
        self.connect_flow.access = access

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        return self.local.lookup(connection_id) or await self.registry.lookup(connection_id)

    async def broadcast(self, data: bytes) -> int:
        """Push to every connection of the API, on every node; how many sockets took the frame."""
        local = self.local.broadcast(data) if self.registry.holds_lease() else 0
        return local + await self.registry.broadcast(data)

    async def connections_of(self, principal_id: str) -> list[ConnectionRecord]:
        """Every connection of one principal (its authorizer's principalId), on every node."""
        local = [r for r in self.local.records() if (r.authorizer or {}).get("principalId") == principal_id]
        return local + await self.registry.connections_of(principal_id)

    async def delete(self, connection_id: str) -> bool:
        return self.disconnect_local(connection_id) or await self.registry.disconnect(connection_id)

    # ----- LocalNode: what the registry reaches on this node ---------------------------------------

    def _check_lease(self, connection_id: str) -> None:
        """Fencing: a node whose registry lease ran out (stalled past node_ttl, cut off from Redis) must not
        act for sockets a survivor may have reaped: no frame written, no 200, no second $disconnect."""
        if not self.registry.holds_lease(connection_id):
            self.metrics.count(self.metrics.pushes, result="fenced")
            raise RegistryUnavailable("this node's registry lease ran out; its connections may have been reaped")

    def deliver_local(self, connection_id: str, data: bytes) -> bool:
        if connection_id in self.local:
            self._check_lease(connection_id)
        return self.local.deliver(connection_id, data)

    def broadcast_local(self, data: bytes) -> int:
        return self.local.broadcast(data) if self.registry.holds_lease() else 0

    def disconnect_local(self, connection_id: str) -> bool:
        conn = self.local.get(connection_id)
        if conn is None:
            return False
        self._check_lease(connection_id)
        self.close_connection(conn, 1000, "", report="Connection Closed Normally")
        return True

    def drop_local(self, connection_id: str) -> bool:
        """Close a local socket (1001) WITHOUT running $disconnect or deregistering: the registry found that
        another node already ran its $disconnect (this node had been reaped as dead while stalled)."""
        conn = self.local.remove(connection_id)    # gone from the table: on_closed will do nothing
        if conn is None:
            return False
        self.metrics.count(self.metrics.closed)
        self.throttle.forget(connection_id)
        self.groups.closed(connection_id, drop=True)
        conn.inbox.clear()
        if conn.reading_paused:                # the peer's close frame must still be read
            conn.sink.resume_reading()
        conn.sink.close(1001, "Going away")
        return True

    def lookup_local(self, connection_id: str) -> ConnectionRecord | None:
        return self.local.lookup(connection_id)

    def local_records(self) -> Iterable[ConnectionRecord]:
        return self.local.records()

    async def join_local(self, group: str, connection_id: str, since: int | None) -> dict[str, Any] | None:
        return await self.groups.join_here(group, connection_id, since)

    async def leave_local(self, group: str, connection_id: str) -> bool | None:
        return await self.groups.leave_here(group, connection_id)

    def publish_local(self, group: str, frame: bytes, exclude: str | None, seq: int | None) -> int:
        if not self.registry.holds_lease():      # fenced, as broadcast_local: the members may have been reaped
            return 0
        return self.groups.publish_local(group, frame, exclude, seq)

    def local_memberships(self) -> Iterable[tuple[str, Member]]:
        return self.groups.local_memberships()

    async def publish_group(self, group: str, data: bytes, exclude: str | None) -> int:
        return await self.groups.publish(group, data, exclude)
