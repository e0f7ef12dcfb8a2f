"""The `context` a Python Lambda handler receives, attribute for attribute as AWS's Python runtime builds it."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from typing import Final

__all__ = ["CognitoIdentity", "LambdaContext"]


class CognitoIdentity:
    """``context.identity`` of the Python runtime: both fields None for API Gateway invokes."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


_STREAM_DATE: Final = time.strftime("%Y/%m/%d", time.gmtime())
_STREAM_ID: Final = uuid.uuid4().hex  # one "execution environment" per process


class LambdaContext:
    """What a Python Lambda handler receives as ``context``, attribute for attribute.

    As in AWS's Python runtime, ``memory_limit_in_mb`` is a string and ``identity`` is an
    object whose two fields are None; the remaining time counts down from creation.
    """

    __slots__ = (
        "_deadline",
        "aws_request_id",
        "client_context",
        "function_name",
        "function_version",
        "identity",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
        "tenant_id",
    )

    def __init__(
        self,
        function_name: str,
        request_id: str,
        timeout_ms: int,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        memory_limit_in_mb: int = 128,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{_STREAM_DATE}/[$LATEST]{_STREAM_ID}"
        self.identity = CognitoIdentity()
        self.client_context: object | None = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    @classmethod
    def factory(cls, function_name: str, region: str = "us-east-1", account_id: str = "000000000000",
                memory_limit_in_mb: int = 128) -> Callable[[str, int], LambdaContext]:
        """Contexts for one function, with the per-function strings built once instead of per call."""
        arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        group = f"/aws/lambda/{function_name}"
        stream = f"{_STREAM_DATE}/[$LATEST]{_STREAM_ID}"
        memory = str(memory_limit_in_mb)
        new = object.__new__
        monotonic = time.monotonic

        def make(request_id: str, timeout_ms: int) -> LambdaContext:
            ctx: LambdaContext = new(cls)
            ctx.function_name = function_name
            ctx.function_version = "$LATEST"
            ctx.invoked_function_arn = arn
            ctx.memory_limit_in_mb = memory
            ctx.aws_request_id = request_id
            ctx.log_group_name = group
            ctx.log_stream_name = stream
            ctx.identity = CognitoIdentity()
            ctx.client_context = None
            ctx.tenant_id = None
            ctx._deadline = monotonic() + timeout_ms / 1000.0
            return ctx

        return make

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the integration timeout; 0 once it has passed."""
        left = int((self._deadline - time.monotonic()) * 1000)
        return left if left > 0 else 0

    def log(self, msg: object) -> None:
        """Write to the function's log (stdout), as the runtime's ``context.log`` does."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},client_context={self.client_context},"
            f"identity={self.identity},tenant_id={self.tenant_id}])"
        )
