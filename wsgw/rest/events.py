"""HTTP API (payload format 2.0) events and Lambda results, field for field as AWS builds and reads them. Pure.

Sources (docs/aws-contract.md, "REST front"): AWS developer guide "Create AWS Lambda proxy integrations
for HTTP APIs" (event and response format), captures in tests/fixtures/aws/ (SOURCES.md).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from wsgw.aws.ids import request_time
from wsgw.aws.proxy_result import InvalidIntegrationResult, header_text, result_status
from wsgw.request import HttpRequest
from wsgw.rest.routes import decode_component

Pairs = list[tuple[str, str]]

__all__ = ["FRAMING_HEADERS", "HttpResult", "http_event", "is_text_body", "joined_pairs", "parse_query",
           "read_http_result"]


_TEXT_TYPES: Final = ("text/", "application/json", "application/xml", "application/javascript",
                      "application/graphql", "application/x-yaml", "application/yaml")


def is_text_body(content_type: str | None, body: bytes) -> bool:
    """Whether the body travels as text (else base64, isBase64Encoded true).

    Text media types (text/*, JSON, XML, +json, +xml) that decode as UTF-8 go as text; so does a
    UTF-8 body without Content-Type. Everything else — binary types and form posts — is base64, as HTTP
    APIs deliver an `application/x-www-form-urlencoded` body base64-encoded.
    """
    if content_type is None:
        kind_is_text = True
    else:
        kind = content_type.split(";", 1)[0].strip().lower()
        kind_is_text = kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml"))
    if not kind_is_text:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_query(raw_query: str) -> Pairs:
    """Strictly decoded (name, value) pairs; '+' is a space; a bad escape raises BadPath."""
    pairs: Pairs = []
    if not raw_query:
        return pairs
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((decode_component(name.replace("+", " "), "query string"),
                      decode_component(value.replace("+", " "), "query string")))
    return pairs


def joined_pairs(pairs: Sequence[tuple[str, str]], lower: bool) -> dict[str, str]:
    """Repeated names joined with ',' (payload 2.0 has no multi-value maps)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        previous = out.get(key)
        out[key] = value if previous is None else f"{previous},{value}"
    return out


def http_event(
    request: HttpRequest,
    *,
    route_key: str,
    path_parameters: dict[str, str],
    query: Pairs,
    stage: str,
    stage_variables: dict[str, str] | None,
    api_id: str,
    account_id: str,
    request_id: str,
    now_ms: int,
    authorizer: dict[str, object] | None = None,
) -> dict[str, object]:
    """The payload 2.0 event of an HTTP API Lambda proxy integration.

    `request.raw_path` is percent-encoded with the stage included (AWS keeps a named stage in rawPath);
    `request.domain_name` is the listener's trusted domain (never a client-chosen Host), "" for the Host
    header. Header names are lower-cased and repeats joined with ','; Cookie headers are split into `cookies`
    (and kept in `headers`, as a capture shows); keys for absent parts (query, path parameters, stage
    variables, body, cookies) are left out as AWS does.
    """
    pairs = list(request.headers)
    forwarded = next((i for i, (k, _) in enumerate(pairs) if k.lower() == "x-forwarded-for"), None)
    if forwarded is None:
        pairs.append(("x-forwarded-for", request.source_ip))
    else:
        name, value = pairs[forwarded]
        pairs[forwarded] = (name, f"{value}, {request.source_ip}" if value else request.source_ip)
    headers = joined_pairs(pairs, lower=True)
    cookies = [c.strip() for v in request.headers.get_all("cookie") for c in v.split(";") if c.strip()]
    host = request.domain_name or headers.get("host", "")
    context: dict[str, object] = {
        "accountId": account_id,
        "apiId": api_id,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    context.update({
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": decode_component(request.raw_path),
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": request_time(now_ms),
        "timeEpoch": now_ms,
    })
    event: dict[str, object] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = joined_pairs(query, lower=False)
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    if request.body:
        if is_text_body(headers.get("content-type"), request.body):
            event["body"] = request.body.decode("utf-8")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


# ---------------------------------------------------------------------------- results


@dataclass(slots=True)
class HttpResult:
    """What the client gets: status, header lines (Set-Cookie and repeats as separate lines), body bytes."""

    status: int
    headers: Pairs = field(default_factory=list)
    body: bytes = b""


_JSON_HEADERS: Final = (("Content-Type", "application/json"),)

#: Hop-by-hop and framing headers (lower case) a handler may not set: the node frames every response
#: itself. Passing a handler's Content-Length or Transfer-Encoding through would desynchronise the
#: client (or a proxy in front) from the bytes actually sent. AWS lists these among the reserved headers
#: of HTTP APIs (docs/aws-contract.md, "REST front").
FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "te",
                                    "trailer", "trailers", "upgrade", "proxy-connection"})


def _json_bytes(value: object, what: str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidIntegrationResult(f"{what} cannot be encoded as JSON: {exc}") from None


def read_http_result(result: object) -> HttpResult:
    """Read a payload 2.0 Lambda result.

    Without `statusCode` AWS infers the response: status 200, `content-type: application/json`, and the
    function's output as the body — a str as is, anything else (dict, list, number, null) as its JSON.
    With `statusCode`: `headers` (values as text), `multiValueHeaders` (each value its own line),
    `cookies` (each a Set-Cookie line), `body` (a non-string body is JSON-encoded) and `isBase64Encoded`.
    Hop-by-hop and framing headers (FRAMING_HEADERS) are dropped: the node frames the response.
    A malformed result — a 1xx or out-of-range status, a CR/LF in a header — raises
    InvalidIntegrationResult (the client gets 500).
    """
    if isinstance(result, str):
        return HttpResult(200, list(_JSON_HEADERS), result.encode("utf-8"))
    if not isinstance(result, dict) or "statusCode" not in result:
        return HttpResult(200, list(_JSON_HEADERS), _json_bytes(result, "the result"))
    status = result_status(result["statusCode"])
    headers: Pairs = []
    raw_headers = result.get("headers")
    if raw_headers is not None:
        if not isinstance(raw_headers, dict):
            raise InvalidIntegrationResult(
                f"headers must be an object of name: value, got {type(raw_headers).__name__}")
        headers.extend((_header_name(k), _header_value(v, f"headers[{k!r}]")) for k, v in raw_headers.items())
    raw_multi = result.get("multiValueHeaders")
    if raw_multi is not None:
        if not isinstance(raw_multi, dict):
            raise InvalidIntegrationResult(
                f"multiValueHeaders must be an object of name: [values], got {type(raw_multi).__name__}")
        for name, values in raw_multi.items():
            if not isinstance(values, list | tuple):
                raise InvalidIntegrationResult(f"multiValueHeaders[{name!r}] must be a list")
            lname = str(name).lower()
            headers = [(k, v) for k, v in headers if k.lower() != lname]   # multi-value wins for the same name
            headers.extend((_header_name(name), _header_value(v, f"multiValueHeaders[{name!r}]")) for v in values)
    raw_cookies = result.get("cookies")
    if raw_cookies is not None:
        if not isinstance(raw_cookies, list | tuple) or not all(isinstance(c, str) for c in raw_cookies):
            raise InvalidIntegrationResult("cookies must be a list of strings (each becomes a Set-Cookie header)")
        headers.extend(("Set-Cookie", _header_value(c, "cookies")) for c in raw_cookies)
    headers = [(k, v) for k, v in headers if k.lower() not in FRAMING_HEADERS]
    raw_b64 = result.get("isBase64Encoded", False)
    if raw_b64 is not None and not isinstance(raw_b64, bool):
        raise InvalidIntegrationResult(f"isBase64Encoded must be true or false, got {raw_b64!r}")
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif isinstance(raw_body, str):
        if raw_b64:
            try:
                body = base64.b64decode(raw_body, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidIntegrationResult("body is not valid base64 although isBase64Encoded is true") from None
        else:
            body = raw_body.encode("utf-8")
    else:
        body = _json_bytes(raw_body, "body")
    return HttpResult(status, headers, body)


def _header_value(value: object, what: str) -> str:
    text = header_text(value, what)
    if "\r" in text or "\n" in text:
        raise InvalidIntegrationResult(f"{what} holds a line break (header injection refused)")
    return text


def _header_name(name: object) -> str:
    text = str(name)
    if not text or any(c in text for c in "\r\n:"):
        raise InvalidIntegrationResult(f"header name {text!r} is not a valid HTTP header name")
    return text
