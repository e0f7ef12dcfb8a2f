"""The REST front: `METHOD /{stage}/path` served as an AWS HTTP API (payload format 2.0) on the listener's port.

Per request: header-size limit → CORS preflight → strict path decoding → route match (404) → authorizer
(401/403) → request schema (400) → the stage's response cache (a hit answers here) → `requestParameters` →
integration under the deadline it is given (503 on timeout, 500 on failure) → a 2xx answer kept in the cache →
`responseParameters` → the response with CORS headers. Error bodies are AWS's `{"message": ...}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from wsgw.authorizers import Authorizer, AuthOutcome, RestAuthRequest, run_authorizer, status_message
from wsgw.authorizers.iam import IamVerifier
from wsgw.aws.ids import method_arn, new_id
from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.models import BAD_REQUEST_BODY_MESSAGE, Model
from wsgw.aws.parameter_mapping import MappingError, MappingSource
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.cache import CachedResponse
from wsgw.cache.keys import cache_key, principal_of
from wsgw.cache.stage import StageCache
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
from wsgw.rest.caching import (
    CACHE_HEADER,
    IGNORED_WARNING,
    INVALIDATE_ACTION,
    CacheStep,
    Invalidation,
    RoutePolicy,
    asks_invalidation,
    invalidation,
    route_policy,
)
from wsgw.rest.cors import CorsConfig, is_preflight, strip_cors
from wsgw.rest.events import HttpResult, http_event, parse_query, read_http_result
from wsgw.rest.mapping import MAPPED_PATH, map_request, map_response, request_source
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
    cache_policy: RoutePolicy | None = None     # None: the stage has no cache, or this route is not cached


def message(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    return HttpResponse.json(status, {"message": text}, headers)


class RestFront:
    """Built once per node from the parsed `http:` section; `handle` answers a request under the stage, or
    None if no route fits. Everything it uses is handed in: the gateway does not know it exists."""

    def __init__(self, api: ApiConfig, spec: HttpApiSpec, *, resources: Resources,
                 authorizers: Mapping[str, Authorizer], throttle: Throttler, metrics: Metrics,
                 deadline: Deadline, usage: UsagePlans | None = None, cache: StageCache | None = None) -> None:
        self.api = api
        self.spec = spec
        self.cors: CorsConfig | None = spec.cors
        self.throttle = throttle
        self.metrics = metrics
        self.deadline = deadline
        self.access: AccessLog | None = None
        self.usage = usage
        self.iam: IamVerifier | None = None       # AWS_IAM routes' verifier (server/node.py sets it)
        self.cache = cache                        # the stage's response cache, when caching.cacheClusterEnabled
        routes: list[tuple[Any, RestRoute]] = []
        for route in spec.routes:
            integration = build_integration(route.integration, api, resources, function_name_for(api, route.key))
            authorizer = authorizers.get(route.authorizer) if route.authorizer else None
            kind = api.authorizers[route.authorizer].type if route.authorizer else ""
            routes.append((route.pattern, RestRoute(
                route.key, integration, route.integration.timeout_ms / 1000, authorizer, kind, route.validator,
                LambdaContext.factory(integration.function_name, api.region, api.account_id), route,
                route_policy(api.caching, route.caching, route.pattern.method) if cache is not None else None)))
        self.table: RouteTable[RestRoute] = RouteTable(routes)

    async def close(self) -> None:
        for pattern_route in self.table.routes:
            await pattern_route[1].integration.close()
        if self.table.default is not None:
            await self.table.default[1].integration.close()
        if self.cache is not None:
            await self.cache.close()

    async def flush_cache(self) -> int | None:
        """FlushStageCache: forget every cached answer of this stage (None: the stage has no cache).
        CacheUnavailable when the store cannot be reached."""
        return await self.cache.flush() if self.cache is not None else None

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
        signed = route.spec.authorization_type == "AWS_IAM"
        if signed:
            refused = self._signed(request, event)
            if refused is not None:
                refused.headers.extend(trace)
                return refused
        outcome: AuthOutcome | None = None
        if route.authorizer is not None:
            authorized = await self._authorize(route, request, event, query, segments, request_id, now)
            if isinstance(authorized, HttpResponse):
                authorized.headers.extend(trace)
                return authorized
            outcome = authorized
            record["authorizer"] = authorized.context
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
        principal_id = outcome.decision.principal_id if outcome is not None and outcome.decision else None
        spec = route.spec
        source: MappingSource | None = None
        if spec.request_parameters is not None or spec.response_parameters is not None:
            source = request_source(event, "/" + "/".join(segments), principal_id)
        cached: CacheStep | None = None
        result: HttpResult | None = None
        policy = route.cache_policy
        counters = self.metrics.http_cache(route.key) if policy is not None else None
        if policy is not None and self.cache is not None and request.method in policy.methods:
            found = await self._from_cache(route, policy, request, event, params, query, segments, outcome,
                                           signed, principal_id)
            if isinstance(found, HttpResponse):
                found.headers.extend(trace)
                return found
            entry, cached = found
            if entry is not None:
                result = HttpResult(entry.status, list(entry.headers), entry.body)
        if result is None:
            called = time.perf_counter()
            token = None
            lease = cached.lease if cached is not None else None
            try:
                if spec.request_parameters is not None and source is not None:
                    try:
                        path = map_request(event, spec.request_parameters, source, api.stage)
                    except MappingError as exc:
                        return message(400, f"Bad Request: {exc}", trace)
                    if path is not None:
                        token = MAPPED_PATH.set(path)
                try:
                    raw = await invoke(route.integration, route.make_context, event, request_id, route.timeout_s,
                                       self.deadline)
                finally:
                    if token is not None:
                        MAPPED_PATH.reset(token)
                    latency = time.perf_counter() - called
                    self.metrics.http_route(route.key).integration_latency.observe(latency)
                    record["integrationLatency"] = round(latency * 1000, 3)
                result = read_http_result(raw)
            except Unsupported as exc:        # passthroughBehavior refused the body's content type
                log.info("HTTP route %s: %s (requestId %s)", route.key, exc, request_id)
                record["error.message"] = exc.answer
                return message(exc.status, exc.answer, trace)
            except Exception as exc:
                failure = report_failure(exc, self.metrics, f"HTTP route {route.key}", route.timeout_s,
                                         request_id)
                record["error.message"] = _FAILURE_ANSWERS[failure][1]
                return message(*_FAILURE_ANSWERS[failure], trace)
            finally:
                if lease is not None and result is None and self.cache is not None and counters is not None:
                    await self.cache.settle(counters, lease, None, 0)     # failed or cancelled: waiters call
            if (cached is not None and cached.state != "bypass" and self.cache is not None and policy is not None
                    and counters is not None):
                answer = CachedResponse(result.status, tuple(result.headers), result.body)
                if lease is not None:
                    await self.cache.settle(counters, lease, answer, policy.ttl_seconds)
                else:
                    await self.cache.keep(counters, cached.key, answer, policy.ttl_seconds)
        if spec.response_parameters is not None and source is not None:
            try:
                result = map_response(result, spec.response_parameters, source)
            except MappingError as exc:
                log.error("HTTP route %s: responseParameters: %s (requestId %s)", route.key, exc, request_id)
                return message(500, "Internal Server Error", trace)
        headers = result.headers + trace
        if cached is not None:
            headers.append((CACHE_HEADER, cached.state))
            if cached.invalidation is Invalidation.WARN:
                headers.append(("Warning", IGNORED_WARNING))
        return HttpResponse(result.status, result.body, headers)

    async def _from_cache(self, route: RestRoute, policy: RoutePolicy, request: HttpRequest, event: dict[str, Any],
                          params: dict[str, str], query: list[tuple[str, str]], segments: list[str],
                          outcome: AuthOutcome | None, signed: bool, principal_id: str | None
                          ) -> HttpResponse | tuple[CachedResponse | None, CacheStep]:
        """The cached answer (or None) with what the cache did; or AWS's 403 for an invalidation
        FAIL_WITH_403 refuses."""
        assert self.cache is not None
        asked = asks_invalidation(request.headers)
        allowed = asked and self._may_invalidate(request, segments, outcome, signed)
        what = invalidation(policy, asked, allowed)
        if what is Invalidation.REFUSE:
            self.metrics.count(self.metrics.cache_invalidations, result="refused")
            return message(403, "Forbidden")
        if what in (Invalidation.WARN, Invalidation.IGNORE):
            self.metrics.count(self.metrics.cache_invalidations, result="ignored")
        context = event["requestContext"]
        authorizer = context.get("authorizer") if isinstance(context, dict) else None
        principal = principal_of(authorizer, principal_id) if policy.principal_in_key else None
        key = cache_key(route.key, request.method, "/" + "/".join(segments), query=query,
                        headers=list(request.headers), path_parameters=params,
                        parameters=policy.key_parameters, principal=principal)
        if what is Invalidation.REFRESH:
            await self.cache.forget(self.metrics.http_cache(route.key), key)
            self.metrics.http_cache(route.key).misses.inc()
            return None, CacheStep(key, "refresh", what)
        entry, state, lease = await self.cache.lookup(self.metrics.http_cache(route.key), key, route.timeout_s)
        return entry, CacheStep(key, state, what, lease)

    def _may_invalidate(self, request: HttpRequest, segments: list[str], outcome: AuthOutcome | None,
                        signed: bool) -> bool:
        """Whether the caller may refresh a cached answer: its Lambda authorizer's policy allows
        execute-api:InvalidateCache on this route's ARN, or it signed the request with accepted IAM
        credentials (an AWS_IAM route)."""
        if signed:
            return True
        decision = outcome.decision if outcome is not None else None
        if decision is None or decision.simple:
            return False
        api = self.api
        arn = route_arn(api.region, api.account_id, api.api_id, api.stage, request.method, segments)
        return decision.evaluate(arn, INVALIDATE_ACTION)

    async def _authorize(self, route: RestRoute, request: HttpRequest, event: dict[str, Any],
                         query: list[tuple[str, str]], segments: list[str], request_id: str,
                         now: int) -> HttpResponse | AuthOutcome:
        """Run the route's authorizer; on Allow put its context into requestContext.authorizer (and return
        the outcome: the access log's context, the cache's principal and policy); else the refusal."""
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
        return outcome

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
