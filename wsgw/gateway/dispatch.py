"""One message (or $disconnect) to its route's integration: the event, the call under its deadline, the
route response or AWS's error frame."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any

import orjson

from wsgw.aws.ids import new_id
from wsgw.aws.models import BAD_REQUEST_BODY_MESSAGE
from wsgw.aws.proxy_result import read_integration_result
from wsgw.aws.websocket_events import ConnectionInfo, disconnect_event, error_frame, message_event
from wsgw.config import ApiConfig
from wsgw.gateway.connection import Connection
from wsgw.gateway.deadlines import Deadlines
from wsgw.gateway.route_cache import RouteResponseCache
from wsgw.gateway.routes import Route, RouteTable
from wsgw.group_events import group_event
from wsgw.integrations import Refused
from wsgw.integrations.calls import Cancellable, Failure, invoke, report_failure
from wsgw.metrics import UNMATCHED, Metrics
from wsgw.observe.access_log import AccessLog
from wsgw.throttle import Throttler

log = logging.getLogger("wsgw.gateway")

FORBIDDEN = "Forbidden"
INTERNAL_ERROR = "Internal server error"
TIMED_OUT = "Endpoint request timed out"
TOO_MANY = "Too Many Requests"      # AWS: "429 Too Many Requests" (docs/aws-contract.md)
NOT_JSON: Any = object()             # a message body that is not JSON (selects no route key, fails any model)


class Dispatcher:
    """Calls integrations for the gateway: $connect, messages and $disconnect."""

    def __init__(self, api: ApiConfig, routes: RouteTable, throttle: Throttler, deadlines: Deadlines,
                 metrics: Metrics, is_open: Callable[[str], bool], epoch_ms: Callable[[], int]) -> None:
        self.api = api
        self.routes = routes
        self.throttle = throttle
        self.deadlines = deadlines
        self.metrics = metrics
        self.is_open = is_open             # connection id → still in the local table (route responses)
        self.epoch_ms = epoch_ms
        self.access: AccessLog | None = None
        self.cache: RouteResponseCache | None = None     # the stage's response cache (routes with `caching:`)

    async def handle_message(self, conn: Connection, body: str, is_base64: bool, at_ms: int) -> None:
        request_id = new_id()
        try:     # parsed once: for the route selection and, on a validated route, the model
            document = orjson.loads(base64.b64decode(body) if is_base64 else body)
        except orjson.JSONDecodeError:
            document = NOT_JSON
        route = self.routes.route_for_parsed(document)
        if route is None:
            self.metrics.count(self.metrics.route_misses)
            counted = self.metrics.ws_route(UNMATCHED)
            counted.messages.inc()
            counted.client_errors.inc()
            self.send_error(conn, FORBIDDEN, request_id)
            if self.access is not None:
                self._log_message(conn, None, request_id, 403, at_ms, FORBIDDEN)
            return
        counted = self.metrics.ws_route(route.key)
        counted.messages.inc()
        if not await self.throttle.admit(route.key):
            self.metrics.count(self.metrics.throttled, scope="route")
            counted.client_errors.inc()
            self.send_error(conn, TOO_MANY, request_id)
            if self.access is not None:
                self._log_message(conn, route.key, request_id, 429, at_ms, TOO_MANY)
            return
        if route.validator is not None:
            problem = (route.validator.problem_parsed(document) if document is not NOT_JSON
                       else "$: the body is not JSON")
            if problem is not None:
                self.refuse_body(conn, route.key, problem, request_id, at_ms)
                return
        event = message_event(conn.info, route.key, body, is_base64, self.api.stage_variables or None,
                              request_id, new_id(), at_ms)
        started = perf_counter()
        try:
            if route.caching is None or self.cache is None:
                raw = await self.invoke(route, event, request_id, conn.worker)
            else:        # the route response may come from the stage's cache (wsgw/gateway/route_cache.py)
                raw = await self.cache.call(route.key, route.caching, route.timeout_s, conn.info, body, is_base64,
                                            document, lambda: self.invoke(route, event, request_id, conn.worker))
            if route.route_response:
                result = read_integration_result(raw)
                if result.body is not None and self.is_open(conn.info.connection_id):
                    data = base64.b64decode(result.body) if result.is_base64 else result.body
                    if conn.sink.send(data):
                        self.metrics.sent_one.inc()
                        counted.messages.inc()
        except Refused:
            self.send_error(conn, FORBIDDEN, request_id)
        except Exception as exc:
            failure = report_failure(exc, self.metrics, f"route {route.key} (connection {conn.info.connection_id})",
                                     route.timeout_s, request_id)
            self.count_failure(route.key, failure)
            answer = TIMED_OUT if failure is Failure.TIMEOUT else INTERNAL_ERROR
            self.send_error(conn, answer, request_id)
            if self.access is not None:
                self._log_message(conn, route.key, request_id, 504 if failure is Failure.TIMEOUT else 500, at_ms,
                                  answer, started)
            return
        if self.access is not None:
            self._log_message(conn, route.key, request_id, 200, at_ms, None, started)

    def refuse_body(self, conn: Connection, route_key: str, problem: str, request_id: str, at_ms: int) -> None:
        """AWS's "Bad request body" gateway response: the integration is never called, the connection stays
        open; the log names the model and field that failed (never the body)."""
        log.info("route %s: request body refused for connection %s (requestId %s): %s", route_key,
                 conn.info.connection_id, request_id, problem)
        self.metrics.ws_route(route_key).client_errors.inc()
        self.send_error(conn, BAD_REQUEST_BODY_MESSAGE, request_id)
        if self.access is not None:
            self._log_message(conn, route_key, request_id, 400, at_ms, BAD_REQUEST_BODY_MESSAGE)

    def _log_message(self, conn: Connection, route_key: str | None, request_id: str, status: int, at_ms: int,
                     error: str | None, started: float | None = None) -> None:
        assert self.access is not None
        self.access.write({
            "eventType": "MESSAGE", "routeKey": route_key, "connectionId": conn.info.connection_id,
            "requestId": request_id, "status": status, "requestTimeEpoch": at_ms, "error.message": error,
            "identity.sourceIp": conn.info.source_ip, "authorizer": conn.info.authorizer,
            "integrationLatency": None if started is None else round((perf_counter() - started) * 1000, 3)})

    def message_failed(self, conn: Connection, request_id: str) -> None:
        """A message failed outside its handler call: answered like a failed handler."""
        self.send_error(conn, INTERNAL_ERROR, request_id)

    async def invoke(self, route: Route, event: dict[str, Any], request_id: str,
                     task: Cancellable | None = None) -> object:
        """Call a route's integration under its timeout ($connect, messages, $disconnect); its latency is
        IntegrationLatency whatever the outcome."""
        started = perf_counter()
        try:
            return await invoke(route.integration, route.make_context, event, request_id, route.timeout_s,
                                self.deadlines.within, task)
        finally:
            self.metrics.ws_route(route.key).integration_latency.observe(perf_counter() - started)

    def count_failure(self, route_key: str, failure: Failure) -> None:
        """AWS's split: an invalid result is the integration's error, anything else an error calling it."""
        counted = self.metrics.ws_route(route_key)
        (counted.integration_errors if failure is Failure.INVALID_RESULT else counted.execution_errors).inc()

    async def run_disconnect(self, info: ConnectionInfo, code: int, reason: str) -> None:
        route = self.routes.disconnect
        if route is None:
            return
        request_id = new_id()
        at = self.epoch_ms()
        event = disconnect_event(info, code, reason, self.api.stage_variables or None, request_id, at)
        started = perf_counter()
        status = 200
        try:
            await self.invoke(route, event, request_id)
        except Exception:
            log.exception("$disconnect handler failed (connection %s, requestId %s)", info.connection_id,
                          request_id)
            self.metrics.count(self.metrics.integration_errors, kind="disconnect")
            self.metrics.ws_route("$disconnect").execution_errors.inc()
            status = 500
        if self.access is not None:
            self.access.write({
                "eventType": "DISCONNECT", "routeKey": "$disconnect", "connectionId": info.connection_id,
                "requestId": request_id, "status": status, "requestTimeEpoch": at,
                "identity.sourceIp": info.source_ip, "authorizer": info.authorizer,
                "disconnectStatusCode": code, "disconnectReason": reason or None,
                "integrationLatency": round((perf_counter() - started) * 1000, 3)})

    async def run_member_route(self, route: Route, info: ConnectionInfo, event: str, group: str, reason: str,
                               since: int | None) -> None:
        """A $join or $leave call (wsgw's own event, wsgw/group_events.py); its result is not sent anywhere."""
        request_id = new_id()
        built = group_event(info, "join" if event == "join" else "leave", group, reason, since,
                            self.api.stage_variables or None, request_id, new_id(), self.epoch_ms())
        try:
            await self.invoke(route, built, request_id)
        except Exception as exc:
            report_failure(exc, self.metrics, f"route {route.key} (connection {info.connection_id}, group {group})",
                           route.timeout_s, request_id)

    def send_error(self, conn: Connection, message: str, request_id: str) -> None:
        if conn.sink.send(error_frame(message, conn.info.connection_id, request_id).decode()):
            self.metrics.sent_one.inc()
