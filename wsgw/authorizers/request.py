"""`request`: an AWS REQUEST authorizer, i.e. any integration that returns an IAM policy.

The function receives AWS's REQUEST authorizer event (WebSocket: `methodArn` of `$connect`; REST front:
the HTTP API 2.0 authorizer event with `routeArn`) and answers `{principalId, policyDocument, context}`
(the REST front also takes the simple `{isAuthorized, context}`). Outcomes, as on AWS:

- an identity source missing or empty → 401, the function is not called;
- it raises ``Exception("Unauthorized")`` → 401;
- its policy allows ``execute-api:Invoke`` on the route's ARN → allowed; a Deny or no matching Allow → 403;
- it raises anything else, times out, or answers something malformed → 500.

Decisions are cached by the front (WebSocket or REST) and the identity-source values for
``resultTtlInSeconds`` and re-evaluated against the ARN of each route they are used for; concurrent calls
with the same front and identity share one invocation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

import orjson

from wsgw.authorizers.base import Authorizer, AuthOutcome, status_message
from wsgw.authorizers.fronts import AuthRequest
from wsgw.authorizers.identity import IdentitySource
from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.policy import AuthorizerDecision, AuthorizerResponseError, DecisionCache
from wsgw.config import ApiConfig, AuthorizerSpec, RequestAuthorizerOptions
from wsgw.integrations import Integration, Resources, build_integration

log = logging.getLogger("wsgw.authorizers")

UNAUTHORIZED = "Unauthorized"


@dataclass(slots=True)
class _CallResult:
    """One invocation's result, shared by every connect that waited on it."""

    status: int                       # 200: a decision was parsed (its policy is evaluated per ARN)
    decision: AuthorizerDecision | None
    latency_ms: int


class RequestAuthorizer(Authorizer):
    """Runs a Lambda-style authorizer through any integration type."""

    type_name = "request"

    def __init__(self, spec: AuthorizerSpec, integration: Integration, region: str, account_id: str,
                 cache_max_entries: int) -> None:
        super().__init__(spec)
        self.integration = integration
        self.region = region
        self.account_id = account_id
        self.sources = tuple(s for s in (IdentitySource.parse(t) for t in spec.identity_sources) if s is not None)
        # Without identity sources there is nothing to key a cache by (AWS requires one when caching).
        caching = spec.ttl_seconds > 0 and bool(self.sources)
        self.cache = DecisionCache(spec.ttl_seconds, cache_max_entries) if caching else None
        self._inflight: dict[tuple[str, ...], asyncio.Task[_CallResult]] = {}
        # (decision, ARN) → allowed: every WebSocket connect asks about the same ARN, so a cached policy is
        # evaluated once per ARN, not once per connect. The decision is held so its id stays unique.
        self._verdicts: dict[tuple[int, str], tuple[AuthorizerDecision, bool]] = {}
        self._verdicts_max = cache_max_entries
        self.cache_hits = 0                # decisions answered from the cache (the node's metrics read both)
        self.calls = 0                     # invocations made (cache hits and shared calls excluded)

    @classmethod
    def from_spec(cls, spec: AuthorizerSpec, api: ApiConfig, resources: Resources) -> RequestAuthorizer:
        options = spec.options
        assert isinstance(options, RequestAuthorizerOptions) and spec.integration is not None
        function_name = f"wsgw-{api.stage}-authorizer-{spec.name}"
        integration = build_integration(spec.integration, api, resources, function_name)
        return cls(spec, integration, api.region, api.account_id, options.cache_max_entries)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self.integration.close()

    # ----- deciding --------------------------------------------------------------------------------

    def identity(self, request: AuthRequest) -> list[str] | None:
        """The identity sources' values; None (logged) when one is missing: 401 without calling."""
        values: list[str] = []
        for source in self.sources:
            value = source.resolve(request)
            if value is None:
                log.warning("authorizer %s: identity source %s missing (requestId %s): 401",
                            self.spec.name, source.text, request.request_id)
                return None
            values.append(value)
        return values

    def event(self, request: AuthRequest, identity: list[str]) -> dict[str, object]:
        """The function's input event: AWS's REQUEST event of the request's front."""
        return request.lambda_event(identity)

    def read(self, request: AuthRequest, raw: object) -> AuthorizerDecision:
        """The function's answer (JSON-decoded), as the request's front reads a REQUEST authorizer's."""
        return request.read_decision(raw)

    async def authorize(self, request: AuthRequest) -> AuthOutcome:
        values = self.identity(request)
        if values is None:
            return AuthOutcome(401, message=status_message(401))
        # The front is part of the key: a REST decision (a simple `isAuthorized`, which allows every ARN,
        # or a nested context WebSocket must refuse) never answers a $connect, nor the other way round.
        key = (request.front.value, *values)
        if self.cache is None:
            result = await self._call(request, values, None)
        else:
            cached = self.cache.get(key)
            if cached is not None:
                self.cache_hits += 1
                return self._decide(cached, request, 0)
            task = self._inflight.get(key)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._call(request, values, key))
                self._inflight[key] = task
                task.add_done_callback(partial(self._forget, key))
            result = await asyncio.shield(task)
        if result.decision is None:
            return AuthOutcome(result.status, message=status_message(result.status))
        return self._decide(result.decision, request, result.latency_ms)

    def _forget(self, key: tuple[str, ...], _task: asyncio.Task[_CallResult]) -> None:
        self._inflight.pop(key, None)

    def _decide(self, decision: AuthorizerDecision, request: AuthRequest, latency_ms: int) -> AuthOutcome:
        """Evaluate the (possibly cached) policy against this route's ARN."""
        context = request.lambda_context(decision, latency_ms)
        if context is None:
            # Unreachable while the cache is keyed by front; kept so a simple "yes" can never open a socket.
            log.warning("authorizer %s: a simple response cannot authorize %s (requestId %s): 500",
                        self.spec.name, request.route_key, request.request_id)
            return AuthOutcome(500, message=status_message(500))
        if not self._allows(decision, request.method_arn):
            log.warning("authorizer %s: policy does not allow %s for principal %r (requestId %s): 403",
                        self.spec.name, request.method_arn, decision.principal_id, request.request_id)
            return AuthOutcome(403, message=status_message(403))
        return AuthOutcome(200, context, decision=decision)

    def _allows(self, decision: AuthorizerDecision, arn: str) -> bool:
        slot = (id(decision), arn)
        known = self._verdicts.get(slot)
        if known is not None and known[0] is decision:
            return known[1]
        verdict = decision.evaluate(arn)
        if self.cache is not None:
            if len(self._verdicts) >= self._verdicts_max:
                self._verdicts.clear()
            self._verdicts[slot] = (decision, verdict)
        return verdict

    async def _call(self, request: AuthRequest, identity: list[str], key: tuple[str, ...] | None) -> _CallResult:
        """Invoke the function once and read its answer; never raises (the status says what went wrong)."""
        self.calls += 1
        event = self.event(request, identity)
        context = LambdaContext(self.integration.function_name, request.request_id, self.integration.timeout_ms,
                                self.region, self.account_id)
        started = time.monotonic()
        name = self.spec.name
        try:
            async with asyncio.timeout(self.integration.timeout_ms / 1000):
                raw = await self.integration.invoke(event, context)
        except TimeoutError:
            log.warning("authorizer %s timed out after %d ms (requestId %s): 500", name,
                        self.integration.timeout_ms, request.request_id)
            return _CallResult(500, None, _since(started))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _is_unauthorized(exc):
                log.warning("authorizer %s answered Unauthorized (requestId %s): 401", name, request.request_id)
                return _CallResult(401, None, _since(started))
            log.warning("authorizer %s failed (requestId %s): 500", name, request.request_id, exc_info=True)
            return _CallResult(500, None, _since(started))
        latency = _since(started)
        try:
            decision = self.read(request, _decoded(raw))
        except AuthorizerResponseError as exc:
            log.warning("authorizer %s answered a malformed response (requestId %s): %s: 500", name,
                        request.request_id, exc)
            return _CallResult(500, None, latency)
        if self.cache is not None and key is not None:
            self.cache.put(key, decision)
        return _CallResult(200, decision, latency)


def _decoded(raw: object) -> object:
    """What the integration returned: an object, or its JSON text (HTTP integrations answer bytes)."""
    if isinstance(raw, bytes | str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AuthorizerResponseError("authorizer response is not a JSON object") from None
    return raw


def _is_unauthorized(exc: BaseException) -> bool:
    """Lambda's convention: an error whose message is exactly "Unauthorized" means 401 (also a function reached
    through the Invoke API, whose errorMessage says so)."""
    return (str(exc) == UNAUTHORIZED or (len(exc.args) == 1 and exc.args[0] == UNAUTHORIZED)
            or getattr(exc, "function_message", None) == UNAUTHORIZED)


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
