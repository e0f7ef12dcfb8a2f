"""AWS-shaped events, ids, Lambda context, error frames and integration results.

Everything a handler written for API Gateway WebSocket APIs (Lambda proxy integration)
sees or returns is built or read here, field for field as AWS does; each field set was
checked against events captured on AWS (tests/fixtures/aws, docs/aws-contract.md).
Pure: no sockets, no asyncio. Event builders run per message, so they are plain dict
literals with no copying beyond what keeps one event from leaking into the next.
"""

from __future__ import annotations

import base64
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

__all__ = [
    "CognitoIdentity",
    "ConnectionInfo",
    "IntegrationResult",
    "InvalidIntegrationResult",
    "LambdaContext",
    "authorizer_request_event",
    "connect_event",
    "disconnect_event",
    "error_frame",
    "header_text",
    "message_event",
    "method_arn",
    "new_id",
    "read_integration_result",
    "request_time",
    "result_status",
]

Pairs = Sequence[tuple[str, str]]   # header or query lines (a Headers, or a list)

# ---------------------------------------------------------------------------- ids and times


def new_id() -> str:
    """A fresh AWS-like id (connectionId, requestId, messageId): 11 random bytes, URL-safe base64.

    AWS's ids are 16 characters ending in ``=`` and use ``-``/``_`` (e.g. ``BFaT_fALIAMCKug=``).
    """
    return base64.urlsafe_b64encode(os.urandom(11)).decode("ascii")


_random = random.Random()  # seeded from os.urandom; not for secrets


def fast_id() -> str:
    """An id of the same shape for requestId/messageId, which need to be unique, not unguessable.

    Two getrandom syscalls per message were measurable on the hot path; connection ids (which are
    capabilities: knowing one lets you push to it) keep using new_id().
    """
    return base64.urlsafe_b64encode(_random.getrandbits(88).to_bytes(11, "big")).decode("ascii")


_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_cached_time: tuple[int, str] = (-1, "")  # one-entry cache: many events share a second


def request_time(epoch_ms: int) -> str:
    """``requestTime`` as AWS writes it, e.g. ``20/Jan/2024:11:55:00 +0000`` (UTC, English months)."""
    global _cached_time
    second = epoch_ms // 1000
    cached = _cached_time
    if cached[0] == second:
        return cached[1]
    t = time.gmtime(second)
    text = (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
    _cached_time = (second, text)
    return text


def method_arn(region: str, account_id: str, api_id: str, stage: str, route_key: str) -> str:
    """A route's methodArn: ``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{route}``."""
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{route_key}"


# ---------------------------------------------------------------------------- events


@dataclass(slots=True)
class ConnectionInfo:
    """What every event of one connection needs to know about it."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str | None
    domain_name: str  # the Host header the client connected with, e.g. "127.0.0.1:8080"
    stage: str
    api_id: str
    # principalId, context keys, integrationLatency: goes to requestContext.authorizer when not None
    authorizer: dict[str, object] | None = None


# Hop-by-hop headers AWS leaves out of the $connect integration event (they do reach a
# REQUEST authorizer). Lower case.
_CONNECT_DROPPED: Final = frozenset({"connection", "upgrade"})


def _fold(pairs: Pairs, drop: frozenset[str] = frozenset()) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(single-value, multi-value) maps of repeated name/value pairs; the single map keeps the last value.

    Names keep the spelling the client sent; repeats are grouped case-insensitively under
    the first spelling seen.
    """
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        low = name.lower()
        if low in drop:
            continue
        key = spelling.setdefault(low, name)
        single[key] = value
        values = multi.get(key)
        if values is None:
            multi[key] = [value]
        else:
            values.append(value)
    return single, multi


def _fold_query(pairs: Pairs) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Query parameters: case-sensitive names, the single map keeps the last value."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        values = multi.get(name)
        if values is None:
            multi[name] = [value]
        else:
            values.append(value)
    return single, multi


def _with_forwarded_for(pairs: Pairs, source_ip: str) -> list[tuple[str, str]]:
    """Append the client's address to X-Forwarded-For, as AWS's edge does."""
    out: list[tuple[str, str]] = []
    seen = False
    for name, value in pairs:
        if name.lower() == "x-forwarded-for":
            if not seen:
                value = f"{value}, {source_ip}" if value else source_ip
                seen = True
            else:
                continue
        out.append((name, value))
    if not seen:
        out.append(("X-Forwarded-For", source_ip))
    return out


def _identity(conn: ConnectionInfo) -> dict[str, object]:
    if conn.user_agent is None:
        return {"sourceIp": conn.source_ip}
    return {"sourceIp": conn.source_ip, "userAgent": conn.user_agent}


def _context(
    conn: ConnectionInfo, route_key: str, event_type: str, request_id: str, now_ms: int,
    message_id: str | None = None,
) -> dict[str, object]:
    """requestContext fields common to CONNECT, MESSAGE and DISCONNECT, in AWS's order (a MESSAGE's
    messageId comes second)."""
    head: dict[str, object] = {"routeKey": route_key}
    if message_id is not None:
        head["messageId"] = message_id
    return {
        **head,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": conn.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": _identity(conn),
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": conn.api_id,
    }


def connect_event(
    conn: ConnectionInfo,
    headers: Pairs,
    query: Pairs,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The ``$connect`` event (eventType CONNECT) of a Lambda proxy integration.

    Query fields appear only when the URL has a query; stageVariables only when the stage has some.
    """
    single, multi = _fold(_with_forwarded_for(headers, conn.source_ip), _CONNECT_DROPPED)
    context = _context(conn, "$connect", "CONNECT", request_id, now_ms)
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    event: dict[str, object] = {"headers": single, "multiValueHeaders": multi}
    if query:
        q_single, q_multi = _fold_query(query)
        event["queryStringParameters"] = q_single
        event["multiValueQueryStringParameters"] = q_multi
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def message_event(
    conn: ConnectionInfo,
    route_key: str,
    body: str,
    is_base64: bool,
    stage_variables: dict[str, str] | None,
    request_id: str,
    message_id: str,
    now_ms: int,
) -> dict[str, object]:
    """A message event (eventType MESSAGE): no headers and no query fields, as on AWS."""
    context = _context(conn, route_key, "MESSAGE", request_id, now_ms, message_id)
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    event: dict[str, object] = {"requestContext": context, "body": body, "isBase64Encoded": is_base64}
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def disconnect_event(
    conn: ConnectionInfo,
    status_code: int,
    reason: str,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The ``$disconnect`` event: AWS's fixed headers, close code and reason in requestContext."""
    context: dict[str, object] = {
        "routeKey": "$disconnect",
        "disconnectStatusCode": status_code,
        "eventType": "DISCONNECT",
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "disconnectReason": reason,
        "stage": conn.stage,
        "connectedAt": conn.connected_at_ms,
        "requestTimeEpoch": now_ms,
        "identity": _identity(conn),
        "requestId": request_id,
        "domainName": conn.domain_name,
        "connectionId": conn.connection_id,
        "apiId": conn.api_id,
    }
    if conn.authorizer is not None:
        context["authorizer"] = dict(conn.authorizer)
    host = conn.domain_name
    event: dict[str, object] = {
        "headers": {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
        "multiValueHeaders": {"Host": [host], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]},
    }
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def authorizer_request_event(
    conn: ConnectionInfo,
    method_arn: str,
    headers: Pairs,
    query: Pairs,
    stage_variables: dict[str, str] | None,
    request_id: str,
    now_ms: int,
) -> dict[str, object]:
    """The input of a REQUEST authorizer on ``$connect``.

    Unlike the $connect event, query and stage-variable maps are always present ({} when
    empty) and the Connection/Upgrade headers are kept.
    """
    single, multi = _fold(_with_forwarded_for(headers, conn.source_ip))
    q_single, q_multi = _fold_query(query)
    return {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": q_single,
        "multiValueQueryStringParameters": q_multi,
        "stageVariables": dict(stage_variables) if stage_variables else {},
        "requestContext": _context(conn, "$connect", "CONNECT", request_id, now_ms),
    }


# ---------------------------------------------------------------------------- error frames


def error_frame(message: str, connection_id: str, request_id: str) -> bytes:
    """The exact bytes AWS sends on a failed frame.

    ``{"message": "Forbidden", "connectionId":"abc=", "requestId":"xyz="}``: one space after
    ``"message":``, none after the other colons. Values are JSON-escaped.
    """
    return b"".join(
        (
            b'{"message": ',
            orjson.dumps(message),
            b', "connectionId":',
            orjson.dumps(connection_id),
            b', "requestId":',
            orjson.dumps(request_id),
            b"}",
        )
    )


# ---------------------------------------------------------------------------- Lambda context


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


# ---------------------------------------------------------------------------- integration results


@dataclass(slots=True)
class IntegrationResult:
    """A handler's answer: status, body text for the route response / HTTP body, headers."""

    status_code: int
    body: str | None  # None: nothing to send
    headers: dict[str, str] = field(default_factory=dict)
    is_base64: bool = False


class InvalidIntegrationResult(ValueError):
    """A result AWS would reject as a malformed Lambda proxy response (client: Internal server error)."""


_PROXY_KEYS: Final = frozenset({"statusCode", "body", "headers", "multiValueHeaders", "isBase64Encoded"})


def header_text(value: object, what: str) -> str:
    """A header value as text: str as is, JSON scalars as JSON writes them (shared by both fronts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise InvalidIntegrationResult(f"{what} must be a string, number or boolean, got {type(value).__name__}")


def result_status(value: object) -> int:
    """A result's statusCode: an int or numeric string from 200 to 599 (shared by both fronts).

    A 1xx is not a final status: a handler returning one would make the node send an interim response
    and the body after it as a forged second response, so it is a malformed result like any other.
    """
    if isinstance(value, bool):
        raise InvalidIntegrationResult("statusCode must be an integer from 200 to 599, got a boolean")
    if isinstance(value, int):
        code = value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        code = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        code = int(value)
    else:
        raise InvalidIntegrationResult(f"statusCode must be an integer from 200 to 599, got {value!r}")
    if not 200 <= code <= 599:
        raise InvalidIntegrationResult(f"statusCode must be an integer from 200 to 599, got {code} "
                                       "(1xx statuses are interim, not a response)")
    return code


def _json_text(value: object, what: str) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidIntegrationResult(f"{what} cannot be encoded as JSON: {exc}") from None


def read_integration_result(result: object) -> IntegrationResult:
    """Read a Lambda proxy result into an IntegrationResult.

    - ``None`` -> 200 with no body.
    - a dict is a proxy response: only ``statusCode``, ``body``, ``headers``,
      ``multiValueHeaders`` and ``isBase64Encoded`` are allowed. Any other key makes it
      malformed, as on AWS, where such a result gives the client
      ``{"message": "Internal server error", ...}`` (seen on AWS: middyjs/middy issue 1219;
      this includes a plain dict such as ``{"action": "pong"}`` - wrap it in ``body``).
      ``statusCode`` may be an int or numeric string (200..599), 200 when absent; a non-string
      body is JSON-encoded; header values are rendered as text; ``multiValueHeaders``
      values are joined with ", " and win over ``headers`` for the same name.
    - a str -> 200 with that body; any other JSON-encodable value -> 200 with its JSON.
    Anything else raises InvalidIntegrationResult naming the field.
    """
    if type(result) is dict and len(result) <= 2:
        # The common answer, {"statusCode": 200[, "body": "..."]}, read without the general checks.
        status = result.get("statusCode", 200)
        body = result.get("body")
        if type(status) is int and 200 <= status <= 599 and (body is None or type(body) is str) \
                and len(result) == ("statusCode" in result) + ("body" in result):
            return IntegrationResult(status, body, {})
    if result is None:
        return IntegrationResult(200, None, {})
    if isinstance(result, str):
        return IntegrationResult(200, result, {})
    if not isinstance(result, dict):
        return IntegrationResult(200, _json_text(result, "the result"), {})

    unknown = [k for k in result if k not in _PROXY_KEYS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise InvalidIntegrationResult(
            f"malformed Lambda proxy response: unexpected key(s) {names}; allowed keys are "
            "statusCode, body, headers, multiValueHeaders, isBase64Encoded "
            "(put your data in body)"
        )

    raw_status = result.get("statusCode")
    status = 200 if raw_status is None else result_status(raw_status)

    raw_body = result.get("body")
    body = raw_body if raw_body is None or isinstance(raw_body, str) else _json_text(raw_body, "body")

    headers: dict[str, str] = {}
    raw_headers = result.get("headers")
    if raw_headers is not None:
        if not isinstance(raw_headers, dict):
            raise InvalidIntegrationResult(
                f"headers must be an object of name: value, got {type(raw_headers).__name__}"
            )
        for name, value in raw_headers.items():
            headers[str(name)] = header_text(value, f"headers[{name!r}]")
    raw_multi = result.get("multiValueHeaders")
    if raw_multi is not None:
        if not isinstance(raw_multi, dict):
            raise InvalidIntegrationResult(
                f"multiValueHeaders must be an object of name: [values], got {type(raw_multi).__name__}"
            )
        for name, values in raw_multi.items():
            if not isinstance(values, list | tuple):
                raise InvalidIntegrationResult(
                    f"multiValueHeaders[{name!r}] must be a list, got {type(values).__name__}"
                )
            headers[str(name)] = ", ".join(header_text(v, f"multiValueHeaders[{name!r}]") for v in values)

    raw_b64 = result.get("isBase64Encoded", False)
    if raw_b64 is None:
        is_b64 = False
    elif isinstance(raw_b64, bool):
        is_b64 = raw_b64
    elif isinstance(raw_b64, str) and raw_b64.lower() in ("true", "false"):
        is_b64 = raw_b64.lower() == "true"
    else:
        raise InvalidIntegrationResult(f"isBase64Encoded must be true or false, got {raw_b64!r}")
    return IntegrationResult(status, body, headers, is_b64)
