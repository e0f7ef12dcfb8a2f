"""The REST front: `METHOD /{stage}/path` served as an AWS HTTP API (payload format 2.0) on the listener's port.

Per request: header-size limit → CORS preflight → strict path decoding → route match (404) → authorizer
(401/403) → request schema (400) → integration under the deadline it is given (503 on timeout, 500 on
failure) → the handler's response with CORS headers. Error bodies are AWS's `{"message": ...}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from wsgw.authorizers import Authorizer, RestAuthRequest, run_authorizer, status_message
from wsgw.authorizers.iam import IamVerifier
from wsgw.aws.ids import method_arn, new_id
from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.models import BAD_REQUEST_BODY_MESSAGE, Model
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import ApiConfig
from wsgw.gateway.routes import function_name_for
from wsgw.gateway.usage import UsagePlans
from wsgw.http_config import HttpApiSpec, HttpRouteSpec
from wsgw.integrations import Integration, Resources, build_integration
from wsgw.integrations.calls import ContextFactory, Deadline, Failure, invoke, report_failure
from wsgw.integrations.mapping import Unsupported
from wsgw.metrics import UNMATCHED, Metrics
from wsgw.observe.access_log import AccessLog, Record
from wsgw.request import HttpRequest
from wsgw.rest.cors import CorsConfig, is_preflight, strip_cors
from wsgw.rest.events import http_event, parse_query, read_http_result
from wsgw.rest.routes import BadPath, RouteTable, split_path
from wsgw.server.http import HttpResponse
from wsgw.throttle import Throttler

log = logging.getLogger("wsgw.rest")

MAX_REQUEST_HEAD_BYTES = 10_240   # AWS HTTP API quota: request line and header values combined
_SINGLE_HEADERS = ("host", "content-length", "content-type", "authorization")
#: What a failed integration call answers over HTTP (docs/aws-contract.md, "REST front").
_FAILURE_ANSWERS = {Failure.TIMEOUT: (503, "Service Unavailable"),
                    Failure.INVALID_RESULT: (500, "Internal Server Error"),
                    Failure.ERROR: (500, "Internal Server Error")}


@dataclass(slots=True)
class RestRoute:
    key: str
    integration: Integration
    timeout_s: float
    authorizer: Authorizer | None
    authorizer_type: str
    validator: Model | None
    make_context: ContextFactory
    spec: HttpRouteSpec


def message(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse.json(status, {"message": text}, headers)


class RestFront:
    """Built once per node from the parsed `http:` section; `handle` answers a request under the stage, or
    None if no route fits. Everything it uses is handed in: the gateway does not know it exists."""

    def __init__(self, api: ApiConfig, spec: HttpApiSpec, *, resources: Resources,
                 authorizers: Mapping[str, Authorizer], throttle: Throttler, metrics: Metrics,
                 deadline: Deadline, usage: UsagePlans | None = None) -> None:
        self.api = api
        self.spec = spec
        self.cors: CorsConfig | None = spec.cors
        self.throttle = throttle
        self.metrics = metrics
        self.deadline = deadline
        self.access: AccessLog | None = None
        self.usage = usage
        self.iam: IamVerifier | None = None       # AWS_IAM routes' verifier (server/node.py sets it)
        routes: list[tuple[Any, RestRoute]] = []
        for route in spec.routes:
            integration = build_integration(route.integration, api, resources, function_name_for(api, route.key))
            authorizer = authorizers.get(route.authorizer) if route.authorizer else None
            kind = api.authorizers[route.authorizer].type if route.authorizer else ""
            routes.append((route.pattern, RestRoute(
                route.key, integration, route.integration.timeout_ms / 1000, authorizer, kind, route.validator,
                LambdaContext.factory(integration.function_name, api.region, api.account_id), route)))
        self.table: RouteTable[RestRoute] = RouteTable(routes)

    async def close(self) -> None:
        for pattern_route in self.table.routes:
            await pattern_route[1].integration.close()
        if self.table.default is not None:
            await self.table.default[1].integration.close()

    async def handle(self, request: HttpRequest, rest_path: str) -> HttpResponse | None:
        """Answer `request` whose path below the stage is `rest_path` ('/' for the stage root)."""
        if not self.table and self.cors is None:
            return None
        started = time.perf_counter()
        problem = self._head_problem(request)
        if problem is not None:
            return problem
        origin = request.header("origin")
        if self.cors is not None and is_preflight(request.method, request.headers):
            assert origin is not None
            return HttpResponse(204, b"", self.cors.preflight_headers(
                origin, request.header("access-control-request-headers")))
        try:
            segments = split_path(rest_path)
            query = parse_query(request.query_string)
        except BadPath as exc:
            return self._with_cors(message(400, f"Bad Request: {exc}"), origin)
        found = self.table.match(request.method, segments)
        record: Record = {"requestTimeEpoch": time.time_ns() // 1_000_000}
        if found is None:       # the router answers 404 (or 426 at the stage root)
            self.metrics.http_route(UNMATCHED).answered(404, time.perf_counter() - started)
            if self.access is not None:
                self._log(request, record, None, 404, 0, started)
            return None
        response = await self._run(request, found.value, found.path_parameters, query, segments, record)
        self.metrics.http_route(found.value.key).answered(response.status, time.perf_counter() - started)
        if self.access is not None:
            self._log(request, record, found.value.key, response.status, len(response.body), started)
        return self._with_cors(response, origin)

    def _log(self, request: HttpRequest, record: Record, route_key: str | None, status: int, length: int,
             started: float) -> None:
        """The access log record of one REST request: method, path (never the query), status, latencies."""
        assert self.access is not None
        record.update({"eventType": "HTTP", "routeKey": route_key, "httpMethod": request.method,
                       "path": request.raw_path, "protocol": "HTTP/1.1", "status": status,
                       "responseLength": length, "identity.sourceIp": request.source_ip,
                       "identity.userAgent": request.header("user-agent"),
                       "responseLatency": round((time.perf_counter() - started) * 1000, 3)})
        self.access.write(record)

    # ----- one matched request ---------------------------------------------------------------------

    async def _run(self, request: HttpRequest, route: RestRoute, params: dict[str, str],
                   query: list[tuple[str, str]], segments: list[str], record: Record) -> HttpResponse:
        api = self.api
        request_id = new_id()
        record["requestId"] = request_id
        now = time.time_ns() // 1_000_000
        event = http_event(request, route_key=route.key, path_parameters=params, query=query, stage=api.stage,
                           stage_variables=api.stage_variables or None, api_id=api.api_id,
                           account_id=api.account_id, request_id=request_id, now_ms=now)
        trace = [("apigw-requestid", request_id)]
        if not await self.throttle.admit(route.key, "http"):   # its own bucket, else the stage's
            self.metrics.count(self.metrics.throttled, scope="http")
            return message(429, "Too Many Requests", trace)
        if route.spec.authorization_type == "AWS_IAM":
            refused = self._signed(request, event)
            if refused is not None:
                refused.headers.extend(trace)
                return refused
        if route.authorizer is not None:
            authorized = await self._authorize(route, request, event, query, segments, request_id, now)
            if isinstance(authorized, HttpResponse):
                authorized.headers.extend(trace)
                return authorized
            record["authorizer"] = authorized
        if route.spec.api_key_required and self.usage is not None:
            context = event["requestContext"]
            authorizer = context.get("authorizer", {}).get("lambda") if isinstance(context, dict) else None
            over = await self.usage.admit(self.usage.presented(request.headers, authorizer))
            if over is not None:
                self.metrics.count(self.metrics.api_key_refused, status=str(over[0]))
                return message(*over, trace)
        if route.validator is not None:
            invalid = validate_body(route.validator, request)
            if invalid is not None:
                return message(400, invalid, trace)
        called = time.perf_counter()
        try:
            try:
                raw = await invoke(route.integration, route.make_context, event, request_id, route.timeout_s,
                                   self.deadline)
            finally:
                latency = time.perf_counter() - called
                self.metrics.http_route(route.key).integration_latency.observe(latency)
                record["integrationLatency"] = round(latency * 1000, 3)
            result = read_http_result(raw)
        except Unsupported as exc:        # passthroughBehavior refused the body's content type
            log.info("HTTP route %s: %s (requestId %s)", route.key, exc, request_id)
            record["error.message"] = exc.answer
            return message(exc.status, exc.answer, trace)
        except Exception as exc:
            failure = report_failure(exc, self.metrics, f"HTTP route {route.key}", route.timeout_s, request_id)
            record["error.message"] = _FAILURE_ANSWERS[failure][1]
            return message(*_FAILURE_ANSWERS[failure], trace)
        headers = result.headers + trace
        return HttpResponse(result.status, result.body, headers)

    async def _authorize(self, route: RestRoute, request: HttpRequest, event: dict[str, Any],
                         query: list[tuple[str, str]], segments: list[str], request_id: str,
                         now: int) -> HttpResponse | dict[str, object] | None:
        """Run the route's authorizer; on Allow put its context into requestContext.authorizer (and return
        it, for the access log); else the refusal."""
        assert route.authorizer is not None
        api = self.api
        info = ConnectionInfo(request_id, now, request.source_ip, request.header("user-agent"),
                              request.domain_name, api.stage, api.api_id)
        arn = route_arn(api.region, api.account_id, api.api_id, api.stage, request.method, segments)
        auth = RestAuthRequest(info, request.headers, query, api.stage_variables, request_id, now, route.key, arn,
                               event, required_scopes=route.spec.authorization_scopes)
        outcome = await run_authorizer(route.authorizer, auth)
        if not outcome.allowed:
            self.metrics.count(self.metrics.http_refused, status=str(outcome.status))
            status = outcome.status if outcome.status in (401, 403) else 500
            return message(status, status_message(status))
        context = event["requestContext"]
        assert isinstance(context, dict)
        context["authorizer"] = authorizer_context(route.authorizer_type, outcome.context)
        return outcome.context

    def _signed(self, request: HttpRequest, event: dict[str, Any]) -> HttpResponse | None:
        """AWS_IAM on a REST route: the request must carry a valid SigV4 signature (API Gateway's 403s)."""
        from wsgw.aws.sigv4 import SignatureError

        if self.iam is None:
            return message(500, "Internal Server Error")
        try:
            caller = self.iam.verify(request)
        except SignatureError as exc:
            self.metrics.count(self.metrics.http_refused, status="403")
            return HttpResponse.aws_error(exc.status, exc.error_type, exc.message)
        context = event["requestContext"]
        assert isinstance(context, dict)
        context["authorizer"] = {"iam": {"accessKey": caller.access_key_id, "accountId": self.api.account_id}}
        return None

    # ----- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _head_problem(request: HttpRequest) -> HttpResponse | None:
        size = len(request.method) + len(request.raw_path) + len(request.query_string) + 12
        seen: dict[str, int] = {}
        for name, value in request.headers:
            size += len(value)
            low = name.lower()
            seen[low] = seen.get(low, 0) + 1
        if size > MAX_REQUEST_HEAD_BYTES:
            return message(431, f"Request Header Fields Too Large: the request line and header values "
                           f"may hold {MAX_REQUEST_HEAD_BYTES} bytes")
        for name in _SINGLE_HEADERS:
            if seen.get(name, 0) > 1:
                return message(400, f"Bad Request: more than one {name} header")
        return None

    def _with_cors(self, response: HttpResponse, origin: str | None) -> HttpResponse:
        if self.cors is None:
            return response
        response.headers = strip_cors(response.headers) + self.cors.response_headers(origin)
        return response


def route_arn(region: str, account_id: str, api_id: str, stage: str, method: str, segments: list[str]) -> str:
    """`routeArn` of an HTTP API authorizer event: `.../{stage}/{METHOD}/{path}` with the *decoded* path.

    Built from the segments the router matched, never from the raw request path: a policy that denies
    `GET/admin/*` must also deny `/%61dmin/1`, which the router serves as `/admin/1`.
    """
    return method_arn(region, account_id, api_id, stage, f"{method}/" + "/".join(segments))


def authorizer_context(kind: str, context: dict[str, object] | None) -> dict[str, object]:
    """requestContext.authorizer of a 2.0 event: `{"lambda": ctx}` for REQUEST, `{"jwt": {...}}` for JWT.

    An authorizer that already shaped its context (a single `lambda`, `jwt` or `iam` key) is passed as is.
    """
    ctx = dict(context or {})
    if len(ctx) == 1 and next(iter(ctx)) in ("lambda", "jwt", "iam"):
        return ctx
    return {"jwt": ctx} if kind == "jwt" else {"lambda": ctx}


def validate_body(model: Model, request: HttpRequest) -> str | None:
    """None when the JSON body satisfies the route's schema; else the message naming the failing field and the
    rule (never the field's value: wsgw.aws.models.describe)."""
    body = request.body
    if not body:
        return f"{BAD_REQUEST_BODY_MESSAGE}: a JSON body is required"
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"{BAD_REQUEST_BODY_MESSAGE}: $: the body is not JSON"
    problem = model.problem(document)
    return None if problem is None else f"{BAD_REQUEST_BODY_MESSAGE}: {problem}"
