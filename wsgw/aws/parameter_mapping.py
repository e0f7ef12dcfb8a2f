"""HTTP APIs' parameter mapping, compiled once; pure. The one home of AWS's mapping values and of the
`requestParameters` / `responseParameters` rules of HTTP APIs (docs/parameter-mapping.md, with sources).

A value is a static string, one whole expression (`$request.body.name`) or several `${...}` parts mixed with
text (`${request.body.room}-${context.requestId}`), as in AWS's "Transforming API requests and responses"
for HTTP APIs. Sources understood: `request.body` (the raw body), `request.body.<json path>`,
`request.header.<name>`, `request.querystring.<name>`, `request.path` (the path without the stage),
`request.path.<name>`, `context.<variable>` (nested: `context.authorizer.principalId`,
`context.identity.sourceIp`), `stageVariables.<name>`, and on the response side `response.header.<name>`,
`response.body[.<json path>]`. A JSON value that is an object or array renders as its JSON text; a missing value
renders as nothing (AWS leaves it empty).

`compile_request_parameters` / `compile_response_parameters` read the destination keys
(`overwrite:header.x`, `append:querystring.y`, `remove:header.z`, `overwrite:path`, `overwrite:statuscode`);
`RequestMapping.apply` and `ResponseMapping.apply` change plain header/query lists, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["RESERVED_HEADERS", "MappingError", "MappingSource", "ParameterValue", "RequestMapping",
           "ResponseMapping", "compile_parameter", "compile_request_parameters", "compile_response_parameters",
           "context_variables", "is_reserved_header"]

_BRACED = re.compile(r"\$\{([^}]+)\}")
_WHOLE = re.compile(r"^\$((?:request|response|context|stageVariables)\.[^\s$]*|(?:request|response)\.body)$")


class MappingError(ValueError):
    """A value that names no known source."""


@dataclass(slots=True)
class MappingSource:
    """What one request offers to the expressions; the body is parsed at most once, on first use."""

    body: str
    context: Mapping[str, Any]
    stage_variables: Mapping[str, str]
    headers: Mapping[str, str]         # lowercase names
    query: Mapping[str, str]
    path: Mapping[str, str]
    request_path: str = ""              # $request.path: the path below the stage
    response_headers: Mapping[str, str] | None = None    # lowercase names; None on the request side
    response_body: str = ""
    _parsed: object = None
    _tried: bool = False
    _response_parsed: object = None
    _response_tried: bool = False

    def document(self) -> object:
        if not self._tried:
            self._tried = True
            self._parsed = _json_or_none(self.body)
        return self._parsed

    def response_document(self) -> object:
        if not self._response_tried:
            self._response_tried = True
            self._response_parsed = _json_or_none(self.response_body)
        return self._response_parsed


def _json_or_none(text: str) -> object:
    try:
        return orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return None


def _walk(value: object, parts: list[str]) -> object:
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class _Ref:
    kind: str   # body, body_path, header, querystring, path, request_path, context, stage, response_*
    parts: tuple[str, ...]

    def value(self, source: MappingSource) -> object:
        kind = self.kind
        if kind == "body":
            return source.body
        if kind == "body_path":
            return _walk(source.document(), list(self.parts))
        if kind == "context":
            return _walk(source.context, list(self.parts))
        if kind == "request_path":
            return source.request_path
        if kind == "response_body":
            return source.response_body
        if kind == "response_body_path":
            return _walk(source.response_document(), list(self.parts))
        name = self.parts[0]
        if kind == "response_header":
            return (source.response_headers or {}).get(name.lower())
        table: Mapping[str, str] = {"header": source.headers, "querystring": source.query, "path": source.path,
                                    "stage": source.stage_variables}[kind]
        return table.get(name.lower() if kind == "header" else name)


REQUEST_SOURCES = "$request.body[.path], $request.header.x, $request.querystring.x, $request.path[.x], " \
                  "$context.x, $stageVariables.x"
RESPONSE_SOURCES = "$response.header.x, $response.body[.path], $context.x, $stageVariables.x"


def _json_path(path: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"\.|\[(\d+)\]", path) if p)


def _ref(expression: str, side: str = "request") -> _Ref:
    text = expression.strip()
    prefixes: tuple[tuple[str, str], ...]
    if side == "request":
        if text == "request.body":
            return _Ref("body", ())
        if text.startswith("request.body."):
            return _Ref("body_path", _json_path(text.removeprefix("request.body.")))
        if text == "request.path":
            return _Ref("request_path", ())
        prefixes = (("request.header.", "header"), ("request.querystring.", "querystring"),
                    ("request.path.", "path"), ("stageVariables.", "stage"), ("context.", "context"))
    else:
        if text == "response.body":
            return _Ref("response_body", ())
        if text.startswith("response.body."):
            return _Ref("response_body_path", _json_path(text.removeprefix("response.body.")))
        prefixes = (("response.header.", "response_header"), ("stageVariables.", "stage"), ("context.", "context"))
    for prefix, kind in prefixes:
        if text.startswith(prefix) and len(text) > len(prefix):
            rest = text.removeprefix(prefix)
            return _Ref(kind, tuple(rest.split(".")) if kind == "context" else (rest,))
    raise MappingError(f"'${text}' is not one of " + (REQUEST_SOURCES if side == "request" else RESPONSE_SOURCES))


@dataclass(frozen=True, slots=True)
class ParameterValue:
    """A compiled value: literal text and references, in order."""

    source_text: str
    parts: tuple[str | _Ref, ...]

    @property
    def whole(self) -> _Ref | None:
        """The one reference a value consists of (its JSON type is kept for structured parameters)."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], _Ref) else None

    def render(self, source: MappingSource) -> str:
        return "".join(part if isinstance(part, str) else _text(part.value(source)) for part in self.parts)

    def raw(self, source: MappingSource) -> object:
        """The JSON value of a whole reference (an object stays an object), else the rendered text."""
        whole = self.whole
        return whole.value(source) if whole is not None else self.render(source)


def compile_parameter(text: str, side: str = "request") -> ParameterValue:
    """Compile one mapping value; raise MappingError naming a reference to an unknown source. `side` is
    "request" (values of `$request.*`) or "response" (values of `$response.*`); both read context and stage."""
    whole = _WHOLE.match(text.strip())
    if whole is not None and "${" not in text:
        return ParameterValue(text, (_ref(whole.group(1), side),))
    parts: list[str | _Ref] = []
    last = 0
    for match in _BRACED.finditer(text):
        if match.start() > last:
            parts.append(text[last:match.start()])
        parts.append(_ref(match.group(1), side))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return ParameterValue(text, tuple(parts))


# ----- requestParameters / responseParameters of HTTP APIs ----------------------------------------------

#: Headers no mapping may set, append or remove, on either side (AWS, "Reserved headers" of
#: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-parameter-mapping.html).
RESERVED_HEADERS = frozenset({
    "authorization", "connection", "content-encoding", "content-length", "content-location", "forwarded",
    "keep-alive", "origin", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding",
    "upgrade", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "via",
})
RESERVED_HEADER_PREFIXES = ("access-control-", "apigw-", "x-amz-", "x-amzn-")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ACTIONS = ("append", "overwrite", "remove")


def is_reserved_header(name: str) -> bool:
    low = name.lower()
    return low in RESERVED_HEADERS or low.startswith(RESERVED_HEADER_PREFIXES)


@dataclass(frozen=True, slots=True)
class MappingAction:
    """One `action:target.name` key with its compiled value (None for `remove`)."""

    key: str            # as configured, for messages
    action: str         # append | overwrite | remove
    target: str         # header | querystring | path | statuscode
    name: str           # the header or query string name; "" for path and statuscode
    value: ParameterValue | None


def _action(key: str, value: object, side: str) -> MappingAction:
    """Read one destination key and its value; MappingError says what AWS accepts."""
    targets = "header.NAME, querystring.NAME or path" if side == "request" else "header.NAME or statuscode"
    action, colon, target = key.partition(":")
    if not colon or action not in _ACTIONS:
        raise MappingError(f"a key is ACTION:TARGET with ACTION append, overwrite or remove and TARGET {targets} "
                           "(e.g. overwrite:header.x-user)")
    kind, dot, name = target.partition(".")
    if kind == "header" and dot and name:
        if not _HEADER_NAME.match(name):
            raise MappingError(f"'{name}' is not a valid header name")
        if is_reserved_header(name):
            raise MappingError(f"'{name}' is a reserved header that API Gateway does not let a mapping change "
                               "(access-control-*, apigw-*, x-amz-*, x-amzn-*, Authorization, Content-Length, "
                               "Host-related and hop-by-hop headers; see docs/parameter-mapping.md)")
    elif kind == "querystring" and dot and name and side == "request":
        pass
    elif (target == "path" and side == "request") or (target == "statuscode" and side == "response"):
        if action != "overwrite":
            raise MappingError(f"{target} can only be overwritten (overwrite:{target})")
        name = ""
    else:
        raise MappingError(f"'{target}' is not a target here; use {targets}")
    if action == "remove":
        return MappingAction(key, action, kind if name else target, name, None)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MappingError("the value must be a string: a static value or $request/$response/$context/"
                           "$stageVariables expressions")
    return MappingAction(key, action, kind if name else target, name, compile_parameter(str(value), side))


def _safe(text: str, action: MappingAction) -> str:
    if "\r" in text or "\n" in text:
        raise MappingError(f"{action.key}: the mapped value holds a line break (header injection refused)")
    return text


def _set(pairs: list[tuple[str, str]], action: MappingAction, text: str, fold: bool) -> list[tuple[str, str]]:
    """overwrite: every line of the name replaced by one; append: one more line; remove: none left."""
    name = action.name.lower() if fold else action.name
    kept = pairs if action.action == "append" else [
        (k, v) for k, v in pairs if (k.lower() if fold else k) != name]
    if action.action == "remove" or text == "":
        return kept
    return [*kept, (action.name, _safe(text, action))]


@dataclass(frozen=True, slots=True)
class RequestMapping:
    """A route's `requestParameters`: what changes in the request before its integration sees it."""

    actions: tuple[MappingAction, ...]

    def apply(self, source: MappingSource, headers: list[tuple[str, str]], query: list[tuple[str, str]]
              ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str | None]:
        """(headers, query, new path below the stage or None). Every value is read from the original request
        (`source`) before anything changes, so renaming a header (append the new, remove the old) works in
        any order. A value that comes out empty sets nothing (the parameter is left out)."""
        texts = [a.value.render(source) if a.value is not None else "" for a in self.actions]
        path: str | None = None
        for action, text in zip(self.actions, texts, strict=True):
            if action.target == "header":
                headers = _set(headers, action, text, fold=True)
            elif action.target == "querystring":
                query = _set(query, action, text, fold=False)
            elif text:
                path = _safe(text if text.startswith("/") else "/" + text, action)
        return headers, query, path


@dataclass(frozen=True, slots=True)
class ResponseMapping:
    """A route's `responseParameters`: per integration status code, what changes in the response."""

    by_status: Mapping[int, tuple[MappingAction, ...]]

    def apply(self, status: int, source: MappingSource, headers: list[tuple[str, str]]
              ) -> tuple[int, list[tuple[str, str]]]:
        """(status, headers) after the actions configured for `status` (nothing configured: unchanged).
        MappingError when a mapped status is not a status code or a value holds a line break."""
        actions = self.by_status.get(status)
        if not actions:
            return status, headers
        texts = [a.value.render(source) if a.value is not None else "" for a in actions]
        for action, text in zip(actions, texts, strict=True):
            if action.target == "header":
                headers = _set(headers, action, text, fold=True)
            else:
                code = text.strip()
                if not code.isdigit() or not 200 <= int(code) <= 599:
                    raise MappingError(f"{action.key}: '{code}' is not a status code from 200 to 599")
                status = int(code)
        return status, headers


def compile_request_parameters(raw: object) -> tuple[RequestMapping | None, list[tuple[str, str]]]:
    """Read `requestParameters`; (the mapping, [(key below requestParameters, problem)])."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, [("", "must map destinations to values, e.g. {'overwrite:header.x-user': "
                           "'$context.authorizer.principalId'}")]
    actions: list[MappingAction] = []
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        try:
            actions.append(_action(str(key), value, "request"))
        except MappingError as exc:
            problems.append((str(key), str(exc)))
    return (RequestMapping(tuple(actions)) if actions else None), problems


def compile_response_parameters(raw: object) -> tuple[ResponseMapping | None, list[tuple[str, str]]]:
    """Read `responseParameters` ({status: {destination: value}}); (the mapping, problems by key)."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, [("", "must map status codes to mappings, e.g. {'500': {'overwrite:statuscode': '403'}}")]
    by_status: dict[int, tuple[MappingAction, ...]] = {}
    problems: list[tuple[str, str]] = []
    for status, mapping in raw.items():
        code = str(status)
        if not code.isdigit() or not 200 <= int(code) <= 599:
            problems.append((code, "a key is the integration's status code, from 200 to 599 (AWS's rule)"))
            continue
        if not isinstance(mapping, dict):
            problems.append((code, "must map destinations to values, e.g. {'append:header.x-id': "
                                   "'$context.requestId'}"))
            continue
        actions: list[MappingAction] = []
        for key, value in mapping.items():
            try:
                actions.append(_action(str(key), value, "response"))
            except MappingError as exc:
                problems.append((f"{code}.{key}", str(exc)))
        by_status[int(code)] = tuple(actions)
    return (ResponseMapping(by_status) if by_status else None), problems


def context_variables(request_context: Mapping[str, Any]) -> dict[str, Any]:
    """`$context` as HTTP APIs name its variables, from a payload 2.0 requestContext: the event's own fields
    plus AWS's flat names (`httpMethod`, `path`, `protocol`, `identity.sourceIp`, `identity.userAgent`,
    `requestTime`, `requestTimeEpoch`) and `authorizer.*` (`principalId`, a Lambda authorizer's context
    keys, `claims.*` and `scopes` of a JWT authorizer)."""
    out = dict(request_context)
    http = request_context.get("http")
    if isinstance(http, Mapping):
        out.setdefault("httpMethod", http.get("method"))
        out.setdefault("path", http.get("path"))
        out.setdefault("protocol", http.get("protocol"))
        out.setdefault("identity", {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")})
    out.setdefault("requestTime", request_context.get("time"))
    out.setdefault("requestTimeEpoch", request_context.get("timeEpoch"))
    authorizer = request_context.get("authorizer")
    if isinstance(authorizer, Mapping):
        flat: dict[str, Any] = {}
        lam = authorizer.get("lambda")
        if isinstance(lam, Mapping):
            flat.update(lam)
        jwt = authorizer.get("jwt")
        if isinstance(jwt, Mapping):
            flat["claims"] = jwt.get("claims")
            flat["scopes"] = jwt.get("scopes")
            claims = jwt.get("claims")
            if isinstance(claims, Mapping) and "sub" in claims:
                flat.setdefault("principalId", claims["sub"])
        iam = authorizer.get("iam")
        if isinstance(iam, Mapping):
            flat["iam"] = iam
        for key, value in authorizer.items():
            if key not in ("lambda", "jwt"):
                flat.setdefault(key, value)
        out["authorizer"] = flat
    return out
