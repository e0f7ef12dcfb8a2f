"""Reading what a Lambda proxy integration returns, as API Gateway reads it (shared by both fronts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import orjson

__all__ = ["IntegrationResult", "InvalidIntegrationResult", "header_text", "read_integration_result", "result_status"]


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
