"""Options of the AWS service integrations (`AWS`, `AWS_PROXY`) and the queue integrations (`redis_stream`,
`nats`, `amqp`): one frozen spec and parser each, registered in wsgw.config.integrations; pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wsgw.aws.parameter_mapping import MappingError, ParameterValue, compile_parameter
from wsgw.aws.subtypes import SUBTYPES
from wsgw.aws.templates import Template, TemplateError, compile_template
from wsgw.config.mapping import MappingOptions, parse_mapping

if TYPE_CHECKING:
    from wsgw.config.integrations import _Reader

SERVICE_URI = re.compile(r"^arn:aws[a-zA-Z-]*:apigateway:(?P<region>[a-z0-9-]+):(?P<service>[a-z0-9.-]+):"
                         r"(?P<kind>action|path)/(?P<rest>.+)$")
ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
HEADER_PARAMETER = re.compile(r"^integration\.request\.header\.([!#$%&'*+.^_`|~0-9A-Za-z-]+)$")
DEFAULT_MAX_LEN = 100_000
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True, slots=True)
class AwsCredentialsSetting:
    """`credentials:`: a role to assume (`arn:aws:iam::…:role/x`), static keys, or a profile; None: the usual
    AWS sources (environment, shared files, instance role)."""

    role_arn: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class AwsServiceOptions:
    """`AWS`: one service action (or path) called with the request template's output."""

    uri: str
    region: str
    service: str
    action: str | None
    path: str | None
    http_method: str
    endpoint_url: str | None
    credentials: AwsCredentialsSetting | None
    mapping: MappingOptions
    request_headers: Mapping[str, str]
    connect_timeout_ms: int


@dataclass(frozen=True, slots=True)
class AwsProxyOptions:
    """`AWS_PROXY` with `integrationSubtype`: one of wsgw.aws.subtypes.SUBTYPES, its parameters mapped."""

    subtype: str
    parameters: Mapping[str, ParameterValue]
    region: str
    endpoint_url: str | None
    credentials: AwsCredentialsSetting | None
    connect_timeout_ms: int


@dataclass(frozen=True, slots=True)
class RedisStreamOptions:
    """`redis_stream`: XADD to `stream` (MAXLEN ~ max_len) on `url`, else the registry's Redis."""

    stream: str
    url: str | None
    max_len: int
    template: Template | None = None


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """`nats`: publish to `subject`; with `jetstream`, wait for the stream's acknowledgement."""

    url: str
    subject: str
    jetstream: bool
    template: Template | None = None


@dataclass(frozen=True, slots=True)
class AmqpOptions:
    """`amqp`: publish to `exchange` with `routing_key`, waiting for the broker's publisher confirm."""

    url: str
    exchange: str
    routing_key: str
    persistent: bool
    mandatory: bool
    template: Template | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _string(r: _Reader, name: str, required: bool = False, default: str | None = None) -> str | None:
    value = r.raw.get(name, default)
    if value is None:
        if required:
            r.problem(name, "missing")
        return None
    if not isinstance(value, str) or (required and not value):
        r.problem(name, "must be a non-empty string")
        return None
    return r.text(name, value)


def _flag(r: _Reader, name: str, default: bool) -> bool:
    value = r.raw.get(name, default)
    if not isinstance(value, bool):
        r.problem(name, "must be true or false")
        return default
    return value


def _url(r: _Reader, name: str, schemes: tuple[str, ...], default: str | None) -> str | None:
    value = _string(r, name, default=default)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme not in schemes or not host:
        r.problem(name, f"'{value}' must be a {' or '.join(s + '://' for s in schemes)} URL")
        return None
    return value


def _credentials(r: _Reader) -> AwsCredentialsSetting | None:
    raw = r.raw.get("credentials")
    if raw is None:
        return None
    if isinstance(raw, str):
        filled = r.text("credentials", raw)
        if filled is None:
            return None
        if not ROLE_ARN.match(filled):
            r.problem("credentials", f"'{filled}' is not an IAM role ARN (arn:aws:iam::123456789012:role/name)")
            return None
        return AwsCredentialsSetting(role_arn=filled)
    if not isinstance(raw, dict):
        r.problem("credentials", "give a role ARN, {accessKeyId, secretAccessKey[, sessionToken]} or {profile}")
        return None
    unknown = set(raw) - {"accessKeyId", "secretAccessKey", "sessionToken", "profile", "roleArn"}
    for name in sorted(unknown):
        r.problem(f"credentials.{name}", "unknown (accessKeyId, secretAccessKey, sessionToken, profile, roleArn)")
    values = {k: r.text(f"credentials.{k}", str(v)) for k, v in raw.items() if k not in unknown}
    if ("accessKeyId" in values) != ("secretAccessKey" in values):
        r.problem("credentials", "give accessKeyId and secretAccessKey together")
        return None
    return AwsCredentialsSetting(values.get("roleArn"), values.get("accessKeyId"), values.get("secretAccessKey"),
                                 values.get("sessionToken"), values.get("profile"))


def _request_headers(r: _Reader) -> dict[str, str]:
    """`requestParameters` of `AWS`: static headers, `integration.request.header.Name: "'value'"`."""
    raw = r.raw.get("requestParameters") or {}
    if not isinstance(raw, dict):
        r.problem("requestParameters", "must be a mapping")
        return {}
    headers: dict[str, str] = {}
    for key, value in raw.items():
        match = HEADER_PARAMETER.match(str(key))
        text = str(value)
        if match is None or not (len(text) >= 2 and text[0] == text[-1] == "'"):
            r.problem(f"requestParameters.{key}", "only static headers are served: "
                      "integration.request.header.Name: \"'value'\"")
            continue
        headers[match.group(1)] = text[1:-1]
    return headers


def parse_aws(r: _Reader) -> AwsServiceOptions | None:
    uri = _string(r, "uri", required=True)
    connect = r.connect_timeout()
    if uri is None:
        return None
    match = SERVICE_URI.match(uri)
    if match is None:
        r.problem("uri", f"'{uri}' is not arn:aws:apigateway:{{region}}:{{service}}:action/{{Action}} "
                  "or …:path/{path}")
        return None
    method = r.raw.get("httpMethod", "POST")
    if not isinstance(method, str) or method.upper() not in {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}:
        r.problem("httpMethod", "must be an HTTP method")
        method = "POST"
    endpoint = _url(r, "endpointUrl", ("http", "https"), None)
    action = match.group("rest") if match.group("kind") == "action" else None
    path = match.group("rest") if match.group("kind") == "path" else None
    return AwsServiceOptions(uri, match.group("region"), match.group("service"), action, path, method.upper(),
                             endpoint, _credentials(r), parse_mapping(r), _request_headers(r), connect)


def parse_aws_proxy(r: _Reader) -> AwsProxyOptions | None:
    connect = r.connect_timeout()
    name = r.raw.get("integrationSubtype")
    if not isinstance(name, str) or name not in SUBTYPES:
        r.problem("integrationSubtype", "must be one of: " + ", ".join(SUBTYPES)
                  + " (AWS_PROXY to a Lambda function is type aws_lambda)")
        return None
    subtype = SUBTYPES[name]
    raw = r.raw.get("requestParameters") or {}
    if not isinstance(raw, dict):
        r.problem("requestParameters", f"must map {name}'s parameters to values")
        return None
    parameters: dict[str, ParameterValue] = {}
    for key, value in raw.items():
        where = f"requestParameters.{key}"
        if key not in subtype.parameters:
            r.problem(where, f"not a parameter of {name} (" + ", ".join(subtype.parameters) + ")")
            continue
        try:
            parameters[key] = compile_parameter(str(value))
        except MappingError as exc:
            r.problem(where, str(exc))
    if name == "Lambda-Invoke" and "Payload" not in parameters:
        parameters["Payload"] = compile_parameter("$request.body")
    for missing in sorted(subtype.required - set(parameters)):
        r.problem(f"requestParameters.{missing}", f"required by {name}")
    if subtype.one_of and not subtype.one_of & set(parameters):
        r.problem("requestParameters", f"{name} needs one of " + ", ".join(sorted(subtype.one_of)))
    region = r.raw.get("region") or r.context.region
    if "Region" in parameters and parameters["Region"].whole is None and "${" not in parameters["Region"].source_text:
        region = parameters["Region"].source_text
    return AwsProxyOptions(name, parameters, str(region), _url(r, "endpointUrl", ("http", "https"), None),
                           _credentials(r), connect)


def _template(r: _Reader) -> Template | None:
    raw = r.raw.get("template")
    if raw is None:
        return None
    try:
        return compile_template(raw)
    except TemplateError as exc:
        r.problem("template", str(exc))
        return None


def parse_redis_stream(r: _Reader) -> RedisStreamOptions | None:
    stream = _string(r, "stream", required=True)
    url = _url(r, "url", ("redis", "rediss", "unix"), None)
    max_len = r.whole("maxLen", DEFAULT_MAX_LEN, 1, 10**9, "must be a whole number from 1 (entries kept, about)")
    return RedisStreamOptions(stream, url, max_len, _template(r)) if stream else None


def parse_nats(r: _Reader) -> NatsOptions | None:
    subject = _string(r, "subject", required=True)
    url = _url(r, "url", ("nats", "tls"), DEFAULT_NATS_URL)
    if subject and any(c in subject for c in " \t*>"):
        r.problem("subject", "a publish subject has no spaces or wildcards")
    return NatsOptions(url or DEFAULT_NATS_URL, subject, _flag(r, "jetstream", False), _template(r)) \
        if subject else None


def parse_amqp(r: _Reader) -> AmqpOptions | None:
    url = _url(r, "url", ("amqp", "amqps"), DEFAULT_AMQP_URL)
    exchange = _string(r, "exchange", default="") or ""
    routing_key = _string(r, "routingKey", required=True)
    persistent, mandatory, template, headers = (_flag(r, "persistent", True), _flag(r, "mandatory", True),
                                                _template(r), r.headers())
    if routing_key is None:
        return None
    return AmqpOptions(url or DEFAULT_AMQP_URL, exchange, routing_key, persistent, mandatory, template, headers)


def string_values(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}
