"""One invocation as the Runtime API hands it out, and the typed outcomes a caller can get instead of a result.

Pure values: no I/O. The error payloads are the JSON Lambda's Invoke API returns for each failure
(docs/lambda-runtime-api.md lists them with sources).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "FunctionError",
    "FunctionTimeout",
    "InitError",
    "Invocation",
    "InvocationError",
    "NotDelivered",
    "RuntimeCrash",
    "RuntimeUnavailable",
    "exit_text",
    "trace_id",
]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Lambda's limit for a synchronous invocation's request and response payloads (6 MB)."""


class RuntimeUnavailable(Exception):
    """The runtime cannot start at all (interpreter missing, no `bootstrap`): a setup problem, not an invocation."""


class InvocationError(Exception):
    """The invocation produced no result; `payload()` is the body Lambda's Invoke API would return for it."""

    def __init__(self, error_type: str, error_message: str, stack_trace: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace or []

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errorType": self.error_type, "errorMessage": self.error_message}
        if self.stack_trace:
            body["stackTrace"] = self.stack_trace
        return body


class FunctionError(InvocationError):
    """The runtime reported the handler's error (`/invocation/{id}/error`); `body` is what it posted, as posted.

    Lambda returns that body unchanged (Node's runtime names the stack `trace`, the Runtime API docs
    `stackTrace`), so `payload()` does too.
    """

    def __init__(self, error_type: str, error_message: str, stack_trace: list[str] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(error_type, error_message, stack_trace)
        self.body = body if body is not None else super().payload()

    def payload(self) -> dict[str, Any]:
        return self.body


class InitError(FunctionError):
    """The runtime failed to initialise (`/init/error`, or it exited before asking for work)."""


class FunctionTimeout(InvocationError):
    """The function ran past its timeout; its environment was killed."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__("Sandbox.Timedout",
                         f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds")


class NotDelivered(InvocationError):
    """The runtime went away before it took the invocation: nothing ran, so another environment may take it."""

    def __init__(self) -> None:
        super().__init__("Runtime.ExitError", "The runtime exited before it took the invocation.")


class RuntimeCrash(InvocationError):
    """The runtime process exited while it held the invocation."""

    def __init__(self, request_id: str, returncode: int | None) -> None:
        super().__init__("Runtime.ExitError",
                         f"RequestId: {request_id} Error: Runtime exited with error: {exit_text(returncode)}")


def exit_text(returncode: int | None) -> str:
    """How a process ended, in the words of Lambda's `Runtime exited with error: ...`."""
    if returncode is not None and returncode < 0:
        return f"signal: {_signal_name(-returncode)}"
    return f"exit status {returncode}"


def _signal_name(number: int) -> str:
    import signal

    try:
        return {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGSEGV: "segmentation fault",
                signal.SIGABRT: "aborted"}.get(signal.Signals(number), signal.Signals(number).name)
    except ValueError:
        return str(number)


def trace_id() -> str:
    """A fresh X-Ray trace header (`Root=1-<epoch hex>-<96 bits>;Parent=<64 bits>;Sampled=0`), as Lambda passes one."""
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"


@dataclass(slots=True, eq=False)
class Invocation:
    """One event waiting for, or held by, a runtime; `result` resolves with the response bytes or an InvocationError."""

    payload: bytes
    deadline_ms: int
    function_arn: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=trace_id)
    client_context: str | None = None
    cognito_identity: str | None = None
    result: asyncio.Future[bytes] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def headers(self) -> dict[str, str]:
        """The `/invocation/next` response headers for this invocation."""
        headers = {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id,
            "Content-Type": "application/json",
        }
        if self.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = self.client_context
        if self.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = self.cognito_identity
        return headers

    def settle(self, outcome: bytes | BaseException) -> bool:
        """Resolve once; later answers (a second `/response`, a crash after the answer) are refused with False."""
        if self.result.done():
            return False
        if isinstance(outcome, BaseException):
            self.result.set_exception(outcome)
        else:
            self.result.set_result(outcome)
        return True
