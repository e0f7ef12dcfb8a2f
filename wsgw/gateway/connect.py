"""The $connect flow: throttle, authorizer, $connect integration, then admission (register, 101, local table).

One call, `ConnectFlow.run`, takes an upgrade request and its socket and returns the outcome the listener
acts on: an admitted Connection, or a refusal with its HTTP status and body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from urllib.parse import parse_qsl

from wsgw.authorizers import Authorizer, WebSocketAuthRequest, run_authorizer, status_message
from wsgw.authorizers.iam import IamVerifier
from wsgw.aws.ids import method_arn, new_id
from wsgw.aws.proxy_result import read_integration_result
from wsgw.aws.websocket_events import ConnectionInfo, connect_event
from wsgw.config import ApiConfig
from wsgw.gateway.connection import Connection
from wsgw.gateway.dispatch import TOO_MANY, Dispatcher
from wsgw.gateway.local import LocalTable
from wsgw.gateway.routes import RouteTable
from wsgw.gateway.sink import SocketSink
from wsgw.gateway.usage import UsagePlans
from wsgw.integrations.calls import Failure, report_failure
from wsgw.metrics import Metrics
from wsgw.observe.access_log import AccessLog, Record
from wsgw.registry import Registry, RegistryUnavailable
from wsgw.request import HttpRequest
from wsgw.throttle import Throttler

log = logging.getLogger("wsgw.gateway")

GONE = 499     # the client left, or the socket answered the handshake by itself: nothing more to write


@dataclass(slots=True)
class ConnectOutcome:
    """Admitted (101 written, `conn` set) or refused with an HTTP status and body for the listener to answer."""

    status: int
    body: str = ""
    conn: Connection | None = None


@dataclass(slots=True)
class ConnectFlow:
    """Everything $connect needs, passed in by the Gateway that composes it."""

    api: ApiConfig
    routes: RouteTable
    authorizers: dict[str, Authorizer]
    throttle: Throttler
    dispatcher: Dispatcher
    registry: Registry
    local: LocalTable
    metrics: Metrics
    monotonic: Callable[[], float]
    epoch_ms: Callable[[], int]
    accepting: Callable[[], bool]
    forget: Callable[[str], None]         # deregister in the background (a write that may have landed)
    access: AccessLog | None = None
    # the group joins a $connect handler asked for, applied once the connection is open (gateway/groups.py)
    joins: Callable[[Connection, list[tuple[str, int | None]]], Awaitable[None]] | None = None
    iam: IamVerifier | None = None        # SigV4 of an `authorizationType: AWS_IAM` $connect (server/node.py)
    usage: UsagePlans | None = None       # API keys of an `apiKeyRequired` $connect

    async def run(self, hs: HttpRequest, sink: SocketSink) -> ConnectOutcome:
        record: Record = {"eventType": "CONNECT", "routeKey": "$connect"}
        if not self.accepting():
            outcome = ConnectOutcome(503, "Service Unavailable: the node is shutting down")
        else:
            connection_id = new_id()
            self.local.connecting[connection_id] = []
            try:
                refused, info, subprotocol, greeting = await self._decide(hs, connection_id, record)
                if refused is not None:
                    outcome = refused
                else:
                    assert info is not None
                    outcome = await self._admit(info, sink, subprotocol, greeting)
            finally:
                self.local.connecting.pop(connection_id, None)
        if self.access is not None:
            record["status"] = outcome.status
            if outcome.status >= 400:
                record["error.message"] = outcome.body.split(":")[0][:200] if outcome.body else None
            record["identity.sourceIp"] = hs.source_ip
            record["identity.userAgent"] = hs.header("user-agent")
            self.access.write(record)
        return outcome

    async def _decide(self, hs: HttpRequest, connection_id: str, record: Record
                      ) -> tuple[ConnectOutcome | None, ConnectionInfo | None, str | None, str]:
        """Authorizer then $connect integration for the upgrade request `hs`; nothing is registered yet.
        `record` gathers the access log's variables."""
        api = self.api
        started = self.epoch_ms()
        info = ConnectionInfo(connection_id, started, hs.source_ip, hs.header("user-agent"), hs.domain_name,
                              api.stage, api.api_id, None)
        record["connectionId"] = info.connection_id
        record["requestTimeEpoch"] = started
        query = parse_qsl(hs.query_string, keep_blank_values=True)
        offered = hs.headers.tokens("sec-websocket-protocol")
        route = self.routes.connect
        metrics = self.metrics
        metrics.connects.inc()
        if not await self.throttle.admit("$connect"):
            metrics.count(metrics.throttled, scope="route")
            self._refused(429, client_error=True)
            return ConnectOutcome(429, TOO_MANY), None, None, ""
        subprotocol: str | None = None
        consumed: tuple[str, ...] = ()          # subprotocols that carried a token: never answered
        request_id = new_id()
        record["requestId"] = request_id
        spec = api.routes.get("$connect")
        if spec is not None and spec.authorization_type == "AWS_IAM":
            refused = self._signed(hs, info)
            if refused is not None:
                return refused, None, None, ""
        if route is not None and route.authorizer is not None:
            authorizer = self.authorizers[route.authorizer]
            request = WebSocketAuthRequest(
                info, hs.headers, query, api.stage_variables, request_id, started, "$connect",
                method_arn(api.region, api.account_id, api.api_id, api.stage, "$connect"), offered,
                required_scopes=api.routes["$connect"].authorization_scopes)
            outcome = await run_authorizer(authorizer, request)
            if not outcome.allowed:
                self._refused(outcome.status, client_error=outcome.status < 500)
                return ConnectOutcome(outcome.status, outcome.message or status_message(outcome.status)), \
                    None, None, ""
            info.authorizer = outcome.context
            record["authorizer"] = outcome.context
            subprotocol = outcome.subprotocol
            consumed = outcome.consumed
        if spec is not None and spec.api_key_required and self.usage is not None:
            over = await self.usage.admit(self.usage.presented(hs.headers, info.authorizer))
            if over is not None:
                self._refused(over[0], client_error=True)
                return ConnectOutcome(*over), None, None, ""
        if route is None:
            return None, info, subprotocol, ""
        event = connect_event(info, hs.headers, query, api.stage_variables or None, request_id, started)
        called = perf_counter()
        try:
            try:
                raw = await self.dispatcher.invoke(route, event, request_id)
            finally:
                record["integrationLatency"] = round((perf_counter() - called) * 1000)
            result = read_integration_result(raw)
        except Exception as exc:
            failure = report_failure(exc, self.metrics, f"$connect {info.connection_id}", route.timeout_s,
                                     request_id)
            self.dispatcher.count_failure("$connect", failure)
            if failure is Failure.TIMEOUT:
                return ConnectOutcome(504, "Endpoint request timed out"), None, None, ""
            self._refused(502)
            return ConnectOutcome(502, "Internal server error"), None, None, ""
        if not 200 <= result.status_code < 300:
            self._refused(result.status_code)
            self.metrics.ws_route("$connect").integration_errors.inc()
            return ConnectOutcome(result.status_code, result.body or ""), None, None, ""
        chosen = _header(result.headers, "sec-websocket-protocol")
        if chosen is not None and subprotocol is None:
            # When the authorizer already picked the subprotocol (a token rode in the header), the handler
            # cannot override it: the only other offered values are the token itself.
            first = chosen.split(",")[0].strip()
            subprotocol = first if first in offered and first not in consumed else None
        greeting = result.body if route.route_response and result.body else ""
        return None, info, subprotocol, greeting

    def _signed(self, hs: HttpRequest, info: ConnectionInfo) -> ConnectOutcome | None:
        """AWS_IAM on $connect: the handshake (a presigned URL, or signed headers) must verify; the signer's
        access key goes to requestContext.identity.accessKey of every event of the connection."""
        from wsgw.aws.sigv4 import SignatureError

        assert self.iam is not None
        try:
            caller = self.iam.verify(hs)
        except SignatureError as exc:
            log.warning("refusing a $connect: %s (%s)", exc.error_type, exc.message)
            self._refused(403, client_error=True)
            return ConnectOutcome(403, exc.message)
        info.access_key = caller.access_key_id
        return None

    async def _admit(self, info: ConnectionInfo, sink: SocketSink, subprotocol: str | None,
                     greeting: str) -> ConnectOutcome:
        """Register the accepted connection, write the 101, then make it reachable locally.

        Registration comes first so that a refused registration refuses the handshake (503); the local
        table entry comes after the 101 so that no pushed frame can precede the handshake response.
        """
        if not self.accepting():                 # $connect finished after shutdown began: too late to admit
            self._refused(503)
            return ConnectOutcome(503, "Service Unavailable: connection registry unreachable")
        conn = Connection(info, sink, self.monotonic())
        try:
            await self.registry.register(self.local.record(conn))
        except RegistryUnavailable:
            log.warning("refusing %s: registry unavailable", info.connection_id)
            self._refused(503)
            self.forget(info.connection_id)      # the write may have landed before the error
            return ConnectOutcome(503, "Service Unavailable: connection registry unreachable")
        if not sink.accept(subprotocol):          # the client vanished while $connect ran
            self.forget(info.connection_id)
            return ConnectOutcome(GONE)
        self.local.add(conn)
        self.metrics.count(self.metrics.opened)
        joins = self.local.connecting.pop(info.connection_id, None)
        if joins and self.joins is not None:
            await self.joins(conn, joins)
        if greeting:                              # the $connect route response, right behind the 101
            sink.send(greeting)
        return ConnectOutcome(101, conn=conn)

    def _refused(self, status: int, client_error: bool = False) -> None:
        """Count a refused handshake; `client_error` when the gateway refused before the integration ran."""
        self.metrics.count(self.metrics.refused, status=str(status))
        if client_error:
            self.metrics.ws_route("$connect").client_errors.inc()


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
