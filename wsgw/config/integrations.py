"""Integration options: one frozen spec per type, and its parser, checked at load (pure, no I/O).

Each type declares the option names it takes (besides `type` and `timeoutMs`) and reads them into typed
values; an unknown name is refused by name with a did-you-mean, for every type. `${stageVariables.x}` in URIs,
headers and ARNs is filled in here too. What needs the machine (importing a handler, whether a folder
exists, botocore and its credentials) is left to the integration classes when the node is built.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import orjson

from wsgw.aws.templates import TemplateError, compile_template
from wsgw.config.common import Collector, did_you_mean, string_map
from wsgw.config.mapping import MAPPING_OPTIONS, MappingOptions, parse_mapping
from wsgw.config.service_integrations import (
    AmqpOptions,
    AwsProxyOptions,
    AwsServiceOptions,
    NatsOptions,
    RedisStreamOptions,
    parse_amqp,
    parse_aws,
    parse_aws_proxy,
    parse_nats,
    parse_redis_stream,
)
from wsgw.selection import RouteSelector, SelectionExpressionError, compile_selection

INTEGRATION_TIMEOUT_RANGE_MS = (50, 29_000)
HTTP_INTEGRATION_TIMEOUT_RANGE_MS = (50, 30_000)   # HTTP APIs allow 30 s (AWS HTTP API quotas)
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# AWS's names mean what they mean on AWS, in any case: MOCK, HTTP (non-proxy), HTTP_PROXY, AWS, AWS_PROXY.
TYPE_NAMES = ("python, runtime, MOCK, HTTP, HTTP_PROXY, http_event, aws_lambda, group, AWS, AWS_PROXY, "
              "redis_stream, nats, amqp")
# Lambda runtimes served through the Runtime API (wsgw.runtimes); Python runs in-process unless `isolation: process`.
NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
CUSTOM_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
PYTHON_RUNTIME = re.compile(r"^python3\.\d{1,2}$")
ISOLATIONS = ("thread", "process")
NODE_HANDLER = re.compile(r"^[^\s:]+\.[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")

DEFAULT_MEMORY_MB = 128
DEFAULT_MAX_HUNG_CALLS = 16
DEFAULT_CONNECT_TIMEOUT_MS = 10_000
HTTP_METHODS = frozenset({"POST", "PUT", "PATCH", "GET", "DELETE"})
STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.:-]+)\}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# botocore's Lambda model (2015-03-31) pattern for NamespacedFunctionName, with the region captured.
REGION_PART = r"(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d"
LAMBDA_FUNCTION = re.compile(
    rf"^(arn:(aws[a-zA-Z-]*)?:lambda:)?((?P<region>{REGION_PART}):)?(\d{{12}}:)?(function:)?"
    r"[a-zA-Z0-9_.-]{1,140}(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9_-]+))?$"
)
LAMBDA_REGION = re.compile(rf"^{REGION_PART}$")
LAMBDA_QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class PythonOptions:
    """`python`: an in-process `module:function` (see wsgw.integrations.python)."""

    handler: str
    code_uri: str | None = None          # folder relative to the config file (Lambda's task root)
    function_name: str | None = None     # None: the route's wsgw-{stage}-{route}
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: Mapping[str, str] = field(default_factory=dict)
    max_hung_calls: int = DEFAULT_MAX_HUNG_CALLS


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """`runtime`: a function run in its own processes through the Lambda Runtime API (wsgw.integrations.runtime).

    What `python` with a non-Python `runtime:` (nodejs*, provided*) or `isolation: process` becomes; the handler
    is Lambda's form (`app.handler`, `dir/app.handler`; Python also `module:function`).
    """

    runtime: str
    handler: str
    code_uri: str | None = None
    function_name: str | None = None
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: Mapping[str, str] = field(default_factory=dict)
    concurrency: int | None = None       # None: one environment per core, at least two (SAM ReservedConcurrency)


@dataclass(frozen=True, slots=True)
class MockOptions:
    """`MOCK`: no backend; the request template's `statusCode` (else `status_code`) picks the integration
    response, whose template is the answer (`response:` is the shorthand for a `$default` one)."""

    mapping: MappingOptions = field(default_factory=MappingOptions)
    status_code: int = 200


@dataclass(frozen=True, slots=True)
class HttpEventOptions:
    """`http_event` (wsgw's own): POST the AWS event as JSON to `uri`, read a Lambda proxy result back."""

    uri: str
    headers: Mapping[str, str]
    connect_timeout_ms: int


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """`HTTP_PROXY`: the body to `uri` as it came (the connection's identity in headers); `HTTP`: the same, with
    `mapping` (request templates build the backend's body, integration responses the client's)."""

    uri: str
    method: str
    headers: Mapping[str, str]
    content_type: str
    connect_timeout_ms: int
    mapping: MappingOptions | None = None     # None: HTTP_PROXY


@dataclass(frozen=True, slots=True)
class AwsLambdaOptions:
    """`aws_lambda`: the Lambda Invoke API at `endpoint_url` (AWS's own unless `endpoint_given`)."""

    function_arn: str
    region: str
    endpoint_url: str
    endpoint_given: bool
    qualifier: str | None
    connect_timeout_ms: int


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """`group`: a relay route publishing the message to `group` (a template over the body, compiled)."""

    group: RouteSelector
    exclude_self: bool = False


@dataclass(frozen=True, slots=True)
class StaticOptions:
    """`static`: files below `root` (relative to the config file's folder) served on a REST route."""

    root: str
    cache_seconds: int = 0


IntegrationOptions = (PythonOptions | RuntimeOptions | MockOptions | HttpEventOptions | HttpOptions | AwsLambdaOptions
                      | GroupOptions | StaticOptions | AwsServiceOptions | AwsProxyOptions | RedisStreamOptions
                      | NatsOptions | AmqpOptions)


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    """How to reach one handler: its type, typed options and timeout; `key` is the dotted config key."""

    type: str
    options: IntegrationOptions
    timeout_ms: int
    key: str


@dataclass(frozen=True, slots=True)
class OptionContext:
    """What options may refer to: the stage's variables and the API's region."""

    stage_variables: Mapping[str, str]
    region: str


@dataclass(slots=True)
class _Reader:
    """One integration's raw options, its key, and where problems go."""

    raw: Mapping[str, Any]
    key: str
    kind: str
    timeout_ms: int
    context: OptionContext
    problems: Collector

    def problem(self, name: str, message: str) -> None:
        self.problems.add(f"{self.key}.{name}", message)

    def text(self, name: str, template: str) -> str | None:
        """Fill `${stageVariables.x}` in `template`; a variable the stage lacks is a problem naming `name`."""
        variables = self.context.stage_variables
        missing = [m.group(1) for m in STAGE_VARIABLE.finditer(template) if m.group(1) not in variables]
        if missing:
            self.problem(name, f"stage variable '{missing[0]}' is not defined under 'stageVariables'")
            return None
        return STAGE_VARIABLE.sub(lambda m: variables[m.group(1)], template)

    def whole(self, name: str, default: int, low: int, high: int, message: str) -> int:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(name, message)
            return default
        return value

    def http_url(self, name: str) -> str | None:
        """A required absolute http(s) URL, stage variables filled in."""
        raw = self.raw.get(name)
        if not isinstance(raw, str) or not raw:
            self.problem(name, "missing: give an absolute URL such as http://127.0.0.1:9000/path")
            return None
        filled = self.text(name, raw)
        if filled is None:
            return None
        try:
            parts = urlsplit(filled)
            host = parts.hostname
        except ValueError as exc:
            self.problem(name, f"'{filled}' is not a URL ({exc})")
            return None
        if parts.scheme not in ("http", "https") or not host:
            self.problem(name, f"'{filled}' must be an absolute http:// or https:// URL")
            return None
        return filled

    def headers(self) -> dict[str, str]:
        """The `headers:` option (name: value, stage variables filled in)."""
        raw = self.raw.get("headers") or {}
        if not isinstance(raw, dict):
            self.problem("headers", "must be a mapping of header name to value")
            return {}
        headers: dict[str, str] = {}
        for name, value in raw.items():
            where = f"headers.{name}"
            if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
                self.problem(where, "is not a valid HTTP header name")
                continue
            if isinstance(value, (dict, list)) or value is None or "\n" in str(value) or "\r" in str(value):
                self.problem(where, "must be a single-line string")
                continue
            filled = self.text(where, str(value))
            if filled is not None:
                headers[name] = filled
        return headers

    def connect_timeout(self) -> int:
        """`connectTimeoutMs` (default 10 s, never beyond timeoutMs)."""
        return self.whole("connectTimeoutMs", min(DEFAULT_CONNECT_TIMEOUT_MS, self.timeout_ms), 1, self.timeout_ms,
                          f"must be a whole number of milliseconds from 1 to timeoutMs ({self.timeout_ms})")


def _python(r: _Reader) -> PythonOptions | RuntimeOptions:
    runtime = r.raw.get("runtime")
    isolation = r.raw.get("isolation", "thread")
    if isolation not in ISOLATIONS:
        r.problem("isolation", "must be 'thread' (in-process, the default) or 'process' (its own processes "
                  "through the Lambda Runtime API)")
    if runtime is not None and not (isinstance(runtime, str) and (runtime in NODE_RUNTIMES or runtime in
                                                                   CUSTOM_RUNTIMES or PYTHON_RUNTIME.match(runtime))):
        r.problem("runtime", f"'{runtime}' is not a runtime wsgw runs: python3.x, "
                  + ", ".join((*NODE_RUNTIMES, *CUSTOM_RUNTIMES)))
        runtime = None
    if (runtime is not None and not runtime.startswith("python")) or isolation == "process":
        return _runtime(r, runtime or f"python3.{sys.version_info.minor}")
    if "concurrency" in r.raw:
        r.problem("concurrency", "applies to functions run as processes (a non-Python runtime, or isolation: "
                  "process)")
    handler = r.raw.get("handler")
    if not isinstance(handler, str):
        r.problem("handler", "missing: give 'module:function'")
        handler = ""
    code_uri, name, memory, own = _function_basics(r)
    max_hung = r.whole("maxHungCalls", DEFAULT_MAX_HUNG_CALLS, 1, 1000, "must be a whole number from 1 to 1000")
    return PythonOptions(handler, code_uri, name, memory, {str(k): str(v) for k, v in own.items()}, max_hung)


def _function_basics(r: _Reader) -> tuple[str | None, str | None, int, dict[str, Any]]:
    """What every function has, in-process or run as processes: codeUri, functionName, memorySize, environment."""
    code_uri = r.raw.get("codeUri")
    if code_uri is not None and (not isinstance(code_uri, str) or not code_uri):
        r.problem("codeUri", "must be a folder relative to the config file")
        code_uri = None
    name = r.raw.get("functionName")
    if name is not None and (not isinstance(name, str) or not name):
        r.problem("functionName", "must be a non-empty string")
        name = None
    memory = r.whole("memorySize", DEFAULT_MEMORY_MB, 128, 10240, "must be a whole number of MB from 128 to 10240")
    own = r.raw.get("environment") or {}
    if not isinstance(own, dict):
        r.problem("environment", "must be a mapping of names to strings")
        own = {}
    return code_uri, name, memory, own


def _runtime(r: _Reader, runtime: str) -> RuntimeOptions:
    """A function for the Runtime API: Lambda's handler form, checked per runtime."""
    handler = r.raw.get("handler")
    if runtime in CUSTOM_RUNTIMES:
        handler = handler if isinstance(handler, str) and handler else "bootstrap"    # the bootstrap reads it
    elif runtime in NODE_RUNTIMES:
        if not isinstance(handler, str) or not NODE_HANDLER.match(handler):
            r.problem("handler", f"'{handler}' is not Lambda's 'module.export' (e.g. app.handler or "
                      "src/app.handler)")
            handler = ""
    elif not isinstance(handler, str) or not (HANDLER_PATTERN.match(handler) or NODE_HANDLER.match(handler)):
        r.problem("handler", f"'{handler}' is not 'module.function' (or 'module:function')")
        handler = ""
    code_uri, name, memory, own = _function_basics(r)
    concurrency = r.raw.get("concurrency")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or not 1 <= concurrency <= 1000):
        r.problem("concurrency", "must be a whole number of execution environments from 1 to 1000")
        concurrency = None
    if "maxHungCalls" in r.raw:
        r.problem("maxHungCalls", "applies to in-process Python handlers only (a process past its timeout is "
                  "killed)")
    return RuntimeOptions(runtime, handler, code_uri, name, memory, {str(k): str(v) for k, v in own.items()},
                          concurrency)


def _runtime_type(r: _Reader) -> RuntimeOptions | None:
    """`type: runtime` spelled out (what `python` with `runtime:`/`isolation: process` becomes)."""
    runtime = r.raw.get("runtime")
    if not isinstance(runtime, str) or not (runtime in NODE_RUNTIMES or runtime in CUSTOM_RUNTIMES
                                            or PYTHON_RUNTIME.match(runtime)):
        r.problem("runtime", f"'{runtime}' is not a runtime wsgw runs: python3.x, "
                  + ", ".join((*NODE_RUNTIMES, *CUSTOM_RUNTIMES)))
        return None
    return _runtime(r, runtime)


def _mock(r: _Reader) -> MockOptions:
    response = r.raw.get("response")
    shorthand = None
    if response is not None:
        text = response if isinstance(response, str) else orjson.dumps(response).decode()
        try:
            shorthand = compile_template(text)
        except TemplateError as exc:
            r.problem("response", str(exc))
    status = r.whole("statusCode", 200, 200, 599, "must be an HTTP status from 200 to 599")
    return MockOptions(parse_mapping(r, shorthand), status)


def _http_event(r: _Reader) -> HttpEventOptions | None:
    uri, headers, connect = r.http_url("uri"), r.headers(), r.connect_timeout()
    return HttpEventOptions(uri, headers, connect) if uri is not None else None


def _http(r: _Reader) -> HttpOptions | None:
    """`HTTP` (non-proxy): `HTTP_PROXY`'s options and the mapping templates."""
    options = _http_proxy(r)
    return None if options is None else replace(options, mapping=parse_mapping(r))


def _http_proxy(r: _Reader) -> HttpOptions | None:
    method = r.raw.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        r.problem("method", f"must be one of {', '.join(sorted(HTTP_METHODS))}")
        method = "POST"
    content_type = r.raw.get("contentType", "application/json")
    if not isinstance(content_type, str):
        r.problem("contentType", "must be a string")
        content_type = "application/json"
    uri, headers, connect = r.http_url("uri"), r.headers(), r.connect_timeout()
    return HttpOptions(uri, method.upper(), headers, content_type, connect) if uri is not None else None


def _aws_lambda(r: _Reader) -> AwsLambdaOptions | None:
    connect = r.connect_timeout()
    arn = r.raw.get("functionArn")
    if not isinstance(arn, str) or not arn:
        r.problem("functionArn", "missing: give a function name or ARN "
                  "(e.g. arn:aws:lambda:us-east-1:123456789012:function:chat)")
        return None
    filled = r.text("functionArn", arn)
    if filled is None:
        return None
    match = LAMBDA_FUNCTION.match(filled)
    if match is None:
        r.problem("functionArn", f"'{filled}' is not a Lambda function name or ARN")
        return None
    region = r.raw.get("region") or match.group("region") or r.context.region
    if not isinstance(region, str) or not LAMBDA_REGION.match(region):
        r.problem("region", f"'{region}' is not an AWS region (e.g. us-east-1)")
        return None
    given = "endpointUrl" in r.raw
    endpoint = r.raw.get("endpointUrl", f"https://lambda.{region}.amazonaws.com")
    if not isinstance(endpoint, str):
        r.problem("endpointUrl", "must be a URL such as http://127.0.0.1:9001")
        return None
    endpoint_filled = r.text("endpointUrl", endpoint)
    if endpoint_filled is None:
        return None
    try:
        parts = urlsplit(endpoint_filled)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        r.problem("endpointUrl", f"'{endpoint_filled}' must be an absolute http(s) URL")
        return None
    qualifier = r.raw.get("qualifier")
    if qualifier is not None and (not isinstance(qualifier, str) or not LAMBDA_QUALIFIER.fullmatch(qualifier)):
        r.problem("qualifier", "must be a version number, alias or $LATEST")
        return None
    return AwsLambdaOptions(filled, region, endpoint_filled, given, qualifier, connect)


def _group(r: _Reader) -> GroupOptions | None:
    template = r.raw.get("group")
    if not isinstance(template, str) or not template:
        r.problem("group", 'name the group, e.g. "room:${request.body.room}"')
        return None
    try:
        selector = compile_selection(template)
    except SelectionExpressionError as exc:
        r.problem("group", str(exc))
        return None
    exclude = r.raw.get("excludeSelf", False)
    if not isinstance(exclude, bool):
        r.problem("excludeSelf", "must be true or false")
        return None
    return GroupOptions(selector, exclude)


def _static(r: _Reader) -> StaticOptions | None:
    root = r.raw.get("root")
    if not isinstance(root, str) or not root:
        r.problem("root", "must name a folder, e.g. root: web/")
        return None
    cache = r.raw.get("cacheSeconds", 0)
    if isinstance(cache, bool) or not isinstance(cache, int) or cache < 0:
        r.problem("cacheSeconds", "must be a whole number of seconds >= 0")
        return None
    return StaticOptions(root, cache)


HTTP_OPTIONS = frozenset({"uri", "method", "headers", "contentType", "connectTimeoutMs"})


@dataclass(frozen=True, slots=True)
class IntegrationType:
    """The option names one integration type takes, and the parser that reads them."""

    options: frozenset[str]
    parse: Callable[[_Reader], IntegrationOptions | None]


INTEGRATION_SCHEMAS: dict[str, IntegrationType] = {
    "python": IntegrationType(frozenset({"handler", "codeUri", "functionName", "memorySize", "environment",
                                         "maxHungCalls", "runtime", "isolation", "concurrency"}), _python),
    "runtime": IntegrationType(frozenset({"handler", "codeUri", "functionName", "memorySize", "environment",
                                          "runtime", "concurrency"}), _runtime_type),
    "mock": IntegrationType(frozenset({"response", "statusCode"}) | MAPPING_OPTIONS, _mock),
    "http_proxy": IntegrationType(HTTP_OPTIONS, _http_proxy),
    "http": IntegrationType(HTTP_OPTIONS | MAPPING_OPTIONS, _http),
    "http_event": IntegrationType(frozenset({"uri", "headers", "connectTimeoutMs"}), _http_event),
    "aws_lambda": IntegrationType(frozenset({"functionArn", "endpointUrl", "region", "qualifier",
                                             "connectTimeoutMs"}), _aws_lambda),
    "group": IntegrationType(frozenset({"group", "excludeSelf"}), _group),
    "static": IntegrationType(frozenset({"root", "cacheSeconds"}), _static),
    "aws": IntegrationType(frozenset({"uri", "httpMethod", "credentials", "requestTemplates", "endpointUrl",
                                      "templateSelectionExpression", "passthroughBehavior", "requestParameters",
                                      "integrationResponses", "connectTimeoutMs"}), parse_aws),
    "aws_proxy": IntegrationType(frozenset({"integrationSubtype", "requestParameters", "credentials", "region",
                                            "endpointUrl", "connectTimeoutMs"}), parse_aws_proxy),
    "redis_stream": IntegrationType(frozenset({"stream", "url", "maxLen", "template"}), parse_redis_stream),
    "nats": IntegrationType(frozenset({"url", "subject", "jetstream", "template"}), parse_nats),
    "amqp": IntegrationType(frozenset({"url", "exchange", "routingKey", "persistent", "mandatory", "template",
                                       "headers"}), parse_amqp),
}


def parse_integration(raw: dict[str, Any], key: str, problems: Collector, context: OptionContext,
                      timeout_range: tuple[int, int] = INTEGRATION_TIMEOUT_RANGE_MS) -> IntegrationSpec | None:
    """Read `handler: mod:fn` or `integration: {type: …}` from a route or authorizer mapping."""
    if "handler" in raw and "integration" in raw:
        problems.add(key, "give either 'handler' or 'integration', not both")
        return None
    if "handler" in raw:
        handler = raw["handler"]
        options: dict[str, Any] = {"handler": handler}
        kind = "python"
        timeout = raw.get("timeoutMs", timeout_range[1])
        ikey = f"{key}.handler"
        if not isinstance(handler, str) or not HANDLER_PATTERN.match(handler):
            problems.add(ikey, f"'{handler}' is not 'module:function' (e.g. handlers.chat:on_connect)")
            return None
    elif "integration" in raw:
        integ = raw["integration"]
        ikey = f"{key}.integration"
        if not isinstance(integ, dict):
            problems.add(ikey, f"must be a mapping with at least 'type' ({TYPE_NAMES})")
            return None
        given = integ.get("type")
        if not isinstance(given, str) or not given:
            problems.add(f"{ikey}.type", f"missing: name the type ({TYPE_NAMES})")
            return None
        kind = given.lower()
        if kind not in INTEGRATION_SCHEMAS:
            problems.add(f"{ikey}.type", f"'{kind}' is not one of: " + ", ".join(sorted(INTEGRATION_SCHEMAS))
                         + did_you_mean(kind, INTEGRATION_SCHEMAS))
            return None
        options = {str(k): v for k, v in integ.items() if k not in ("type", "timeoutMs")}
        allowed = INTEGRATION_SCHEMAS[kind].options
        unknown = sorted(set(options) - allowed)
        for name in unknown:
            problems.add(f"{ikey}.{name}", f"unknown option for type '{kind}'" + did_you_mean(name, allowed)
                         + "; allowed: " + ", ".join(sorted(allowed | {"type", "timeoutMs"})))
        if unknown:
            return None
        timeout = integ.get("timeoutMs", timeout_range[1])
    else:
        problems.add(key, "needs 'handler: module:function' or 'integration: {type: ...}'")
        return None
    if "environment" in raw:
        # Route-level `environment:` (like a Lambda function's variables) goes to the python integration.
        env = string_map(raw["environment"], f"{key}.environment", problems)
        if kind not in ("python", "runtime"):
            problems.add(f"{key}.environment", "applies to function handlers only (python, runtime)")
        own = options.get("environment")
        options = {**options, "environment": {**(own if isinstance(own, dict) else {}), **env}}
    low, high = timeout_range
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not low <= timeout <= high:
        problems.add(f"{ikey}.timeoutMs", f"must be a whole number of milliseconds from {low} to {high}")
        return None
    before = len(problems.problems)
    parsed = INTEGRATION_SCHEMAS[kind].parse(_Reader(options, ikey, kind, timeout, context, problems))
    if parsed is None or len(problems.problems) > before:
        return None
    if isinstance(parsed, RuntimeOptions):
        kind = "runtime"
    return IntegrationSpec(type=kind, options=parsed, timeout_ms=timeout, key=ikey)
