"""One failed integration call, accounted for once for both fronts.

The WebSocket routes and the REST front answer a failed call in their own words (an error frame, 504/502
on $connect, 503/500 over HTTP), but log its cause and count it the same way, here; the kind returned is
what each front maps to its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from wsgw.events import InvalidIntegrationResult
from wsgw.metrics import Metrics

log = logging.getLogger("wsgw.integrations")

#: Awaits a call and raises TimeoutError once the given seconds have passed (the gateway's watchdog).
Deadline = Callable[[Awaitable[object], float], Awaitable[object]]


class Failure(Enum):
    """Why a call gave no usable result; the value is the `kind` label of wsgw_integration_errors_total."""

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
    metrics.inc("wsgw_integration_errors_total", f'kind="{failure.value}"')
    return failure
