"""One integration call as both fronts make it: its Lambda context, its deadline, and how a failure counts.

The WebSocket routes and the REST front answer a failed call in their own words (an error frame, 504/502
on $connect, 503/500 over HTTP), but make the call and log and count its failure the same way, here; the
kind of failure returned is what each front maps to its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Protocol

from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.proxy_result import InvalidIntegrationResult
from wsgw.integrations.base import Integration
from wsgw.metrics import Metrics

log = logging.getLogger("wsgw.integrations")

#: (requestId, timeout in ms) → the Lambda context of one call; LambdaContext.factory makes one per route.
ContextFactory = Callable[[str, int], LambdaContext]


class Cancellable(Protocol):
    """What a deadline needs of the task awaiting a call: an asyncio.Task, or the stand-in of one while its
    first step runs eagerly (wsgw/gateway/eager.py)."""

    def cancel(self, msg: Any | None = None) -> bool: ...

    def uncancel(self) -> int: ...


class Deadline(Protocol):
    """Awaits `call`, raising TimeoutError once `timeout_s` passed (the gateway's watchdog enforces it);
    `task` is the task awaiting, when the caller knows it."""

    def __call__(self, call: Awaitable[object], timeout_s: float, task: Cancellable | None = None,
                 /) -> Awaitable[object]: ...


def invoke(integration: Integration, make_context: ContextFactory, event: dict[str, Any], request_id: str,
           timeout_s: float, deadline: Deadline, task: Cancellable | None = None) -> Awaitable[object]:
    """Call `integration` with this request's Lambda context under `deadline` (not a coroutine of its own:
    no extra frame on the message path)."""
    return deadline(integration.invoke(event, make_context(request_id, integration.timeout_ms)), timeout_s, task)


class Failure(Enum):
    """Why a call gave no usable result; the value is the `kind` label of wsgw_integration_errors_total.

    AWS's metrics split them: an invalid result is the integration's error (IntegrationError), the others
    are errors calling it (ExecutionError)."""

    TIMEOUT = "timeout"
    INVALID_RESULT = "invalid_result"
    ERROR = "error"


def report_failure(exc: Exception, metrics: Metrics, what: str, timeout_s: float, request_id: str) -> Failure:
    """Log `exc` with its cause (never shown to the client) and count it; `what` names the call in the log."""
    if isinstance(exc, TimeoutError):
        log.error("%s timed out after %.0f ms (requestId %s)", what, timeout_s * 1000, request_id)
        failure = Failure.TIMEOUT
    elif isinstance(exc, InvalidIntegrationResult):
        log.error("%s returned an invalid result: %s (requestId %s)", what, exc, request_id)
        failure = Failure.INVALID_RESULT
    else:
        log.error("%s failed (requestId %s)", what, request_id, exc_info=exc)
        failure = Failure.ERROR
    metrics.count(metrics.integration_errors, kind=failure.value)
    return failure
