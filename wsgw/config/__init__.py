"""The API definition (wsgw.yaml): parsed and validated once, at load, into frozen values.

Every problem is reported with the dotted key it concerns and the fix, all at once, so that `wsgw check` can
print one line per problem. No raw mapping survives: integration options (wsgw.config.integrations),
throttles (wsgw.config.throttling), `tls:` and `http:` (wsgw.http_config) are typed here; what only the
machine can tell (a handler's import, a file) is found when the node is built (wsgw.server.node).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsgw.aws.models import Model, ModelError, RequestValidator, compile_models, compile_request_validator
from wsgw.config.access import (
    DEFAULT_API_KEY_SELECTION,
    ApiKeySpec,
    ManagementConfig,
    UsagePlanSpec,
    parse_api_key_selection,
    parse_api_keys,
    parse_management,
    parse_route_access,
    parse_usage_plans,
)
from wsgw.config.authorizers import (
    AUTHORIZER_OPTIONS,
    AuthorizerOptions,
    CognitoAuthorizerOptions,
    JwtAuthorizerOptions,
    RequestAuthorizerOptions,
    TokenAuthorizerOptions,
    parse_authorizer_options,
)
from wsgw.config.caching import StageCaching, WsRouteCaching, parse_stage_caching, parse_ws_route_caching
from wsgw.config.common import Collector, did_you_mean, string_map
from wsgw.config.integrations import (
    HANDLER_PATTERN,
    HTTP_INTEGRATION_TIMEOUT_RANGE_MS,
    INTEGRATION_SCHEMAS,
    INTEGRATION_TIMEOUT_RANGE_MS,
    AwsLambdaOptions,
    GroupOptions,
    HttpEventOptions,
    HttpOptions,
    IntegrationOptions,
    IntegrationSpec,
    MockOptions,
    OptionContext,
    PythonOptions,
    RuntimeOptions,
    parse_integration,
)
from wsgw.config.throttling import BucketSpec, parse_bucket
from wsgw.errors import ConfigError

if TYPE_CHECKING:
    from wsgw.http_config import HttpApiSpec
from wsgw.config.consumers import ConsumerSpec, parse_consumers
from wsgw.group_config import JOIN_ROUTES, GroupsConfig, parse_groups
from wsgw.observe.settings import ObserveSettings, parse_observe

DEFAULT_SELECTION = "$request.body.action"
# Who may call @connections and @broadcast: loopback and private networks (workers, other nodes, a load
# balancer's health checks), not the open internet. AWS requires IAM-signed calls; see management.allowFrom.
DEFAULT_MANAGEMENT_ALLOW = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
STAGE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

TOP_LEVEL_KEYS = {
    "routeSelectionExpression", "stage", "stageVariables", "authorizers", "routes", "http", "limits",
    "isBase64Encoded", "apiId", "region", "accountId", "environment", "throttling", "domainName", "tls",
    "management", "groups", "accessLogSettings", "tracing", "apiKeys", "usagePlans", "apiKeySelectionExpression",
    "consumers", "caching", "models",
}
TLS_KEYS = {"mode", "certfile", "keyfile"}
ROUTE_KEYS = {"handler", "integration", "authorizer", "routeResponse", "routeResponseSelectionExpression",
              "throttling", "environment", "apiKeyRequired", "authorizationType", "authorizationScopes",
              "requestModels", "modelSelectionExpression", "caching"}
AUTHORIZER_TYPES = set(AUTHORIZER_OPTIONS)
@dataclass(frozen=True, slots=True)
class RouteSpec:
    key: str
    integration: IntegrationSpec
    authorizer: str | None
    route_response: bool
    throttling: BucketSpec | None = None
    api_key_required: bool = False                       # $connect only (as on AWS)
    authorization_scopes: tuple[str, ...] | None = None  # $connect: a JWT/Cognito token must carry one
    authorization_type: str = "NONE"                     # $connect: NONE or AWS_IAM (a SigV4-signed handshake)
    validator: RequestValidator | None = None            # requestModels + modelSelectionExpression, compiled
    caching: WsRouteCaching | None = None                # a route response kept in the stage's cache


@dataclass(frozen=True, slots=True)
class AuthorizerSpec:
    name: str
    type: str
    identity_sources: tuple[str, ...]
    ttl_seconds: int
    integration: IntegrationSpec | None        # request authorizers: the Lambda to call
    options: AuthorizerOptions                 # typed per type (wsgw.config.authorizers)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits; AWS's published quotas are the defaults."""

    max_message_bytes: int = 131_072
    max_frame_bytes: int = 32_768
    idle_timeout_seconds: float = 600.0
    max_connection_seconds: float = 7_200.0
    ping_interval_seconds: float = 30.0
    ping_timeout_seconds: float = 30.0
    handshake_timeout_seconds: float = 10.0
    max_queued_messages: int = 1_000
    max_send_buffer_bytes: int = 4 * 1024 * 1024
    max_post_bytes: int = 131_072
    max_http_body_bytes: int = 10 * 1024 * 1024
    max_messages_per_second: float = 0.0     # per-connection message rate (wsgw's own, not AWS); 0 = off
    message_burst: int = 0                    # per-connection burst; 0 = ceil(max_messages_per_second)
    max_fragments_per_message: int = 1_024    # budgets (wsgw/server/budgets.py): see README "Running it safely"
    read_batch_bytes: int = 16_384
    max_pipelined_requests: int = 32
    max_unsent_response_bytes: int = 256 * 1024


LIMIT_KEYS: dict[str, tuple[str, type, float]] = {
    # config key: (attribute, type, minimum)
    "maxMessageBytes": ("max_message_bytes", int, 1),
    "maxFrameBytes": ("max_frame_bytes", int, 1),
    "idleTimeoutSeconds": ("idle_timeout_seconds", float, 0.01),
    "maxConnectionSeconds": ("max_connection_seconds", float, 0.01),
    "pingIntervalSeconds": ("ping_interval_seconds", float, 0.01),
    "pingTimeoutSeconds": ("ping_timeout_seconds", float, 0.01),
    "handshakeTimeoutSeconds": ("handshake_timeout_seconds", float, 0.01),
    "maxQueuedMessages": ("max_queued_messages", int, 1),
    "maxSendBufferBytes": ("max_send_buffer_bytes", int, 1024),
    "maxPostBytes": ("max_post_bytes", int, 1),
    "maxHttpBodyBytes": ("max_http_body_bytes", int, 1),
    "maxMessagesPerSecond": ("max_messages_per_second", float, 0),
    "messageBurst": ("message_burst", int, 0),
    "maxFragmentsPerMessage": ("max_fragments_per_message", int, 1),
    "readBatchBytes": ("read_batch_bytes", int, 1024),
    "maxPipelinedRequests": ("max_pipelined_requests", int, 1),
    "maxUnsentResponseBytes": ("max_unsent_response_bytes", int, 16_384),
}


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The config's `tls:` section, paths resolved against the config file's folder."""

    mode: str | None = None              # only | both | off; None: only, when a certificate is given
    certfile: Path | None = None
    keyfile: Path | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """One API as served by one node."""

    base_dir: Path
    stage: str = "dev"
    route_selection_expression: str = DEFAULT_SELECTION
    stage_variables: dict[str, str] = field(default_factory=dict)
    routes: dict[str, RouteSpec] = field(default_factory=dict)
    authorizers: dict[str, AuthorizerSpec] = field(default_factory=dict)
    http: HttpApiSpec | None = None     # the REST front (`http:`); None when the API has none
    limits: Limits = field(default_factory=Limits)
    binary_as_base64: bool = False
    api_id: str = "wsgwlocal0"
    region: str = "us-east-1"
    account_id: str = "000000000000"
    throttling: BucketSpec | None = None   # the stage's default route throttle
    environment: dict[str, str] = field(default_factory=dict)
    domain_name: str | None = None        # requestContext.domainName behind a load balancer, e.g. chat.example.com
    management_allow_from: tuple[str, ...] = DEFAULT_MANAGEMENT_ALLOW
    tls: TlsConfig | None = None          # the config's `tls:`; --tls/--certfile/--keyfile win over it
    observe: ObserveSettings = field(default_factory=ObserveSettings)   # accessLogSettings, tracing
    groups: GroupsConfig = field(default_factory=GroupsConfig)    # wsgw/group_config.py
    management: ManagementConfig = field(default_factory=lambda: ManagementConfig(DEFAULT_MANAGEMENT_ALLOW))
    api_keys: dict[str, ApiKeySpec] = field(default_factory=dict)
    usage_plans: dict[str, UsagePlanSpec] = field(default_factory=dict)
    api_key_selection: str = DEFAULT_API_KEY_SELECTION
    consumers: tuple[ConsumerSpec, ...] = ()   # pushes from workers via queues (wsgw/config/consumers.py)
    caching: StageCaching | None = None        # the stage's REST response cache (wsgw/config/caching.py)
    models: dict[str, Model] = field(default_factory=dict)   # `models:`, each schema compiled once


def model_problems(exc: ModelError, problems: Collector) -> None:
    """A ModelError's `key: message` parts as problems, each naming its key."""
    for part in str(exc).split("; "):
        key, _, message = part.partition(": ")
        problems.add(key, message)


def parse_models(raw: Any, problems: Collector) -> dict[str, Model]:
    """`models: {Name: JSON Schema}` (AWS models: draft 4 unless `$schema` names another), compiled once."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("models", "must map a model name to a JSON Schema, e.g. {Message: {type: object}}")
        return {}
    try:
        return compile_models({str(k): v for k, v in raw.items()}, "models")
    except ModelError as exc:
        model_problems(exc, problems)
        return {}


def _route_validator(route: dict[str, Any], key: str, models: dict[str, Model],
                     problems: Collector) -> RequestValidator | None:
    request_models = route.get("requestModels")
    if request_models is not None and not (isinstance(request_models, dict)
                                           and all(isinstance(v, str) for v in request_models.values())):
        problems.add(f"{key}.requestModels", "must map a selection key to a model name, e.g. {$default: Message}")
        return None
    expression = route.get("modelSelectionExpression")
    if expression is not None and not isinstance(expression, str):
        problems.add(f"{key}.modelSelectionExpression", "must be a string such as $request.body.action")
        return None
    try:
        return compile_request_validator(expression, request_models, models, key)
    except ModelError as exc:
        model_problems(exc, problems)
        return None


def _parse_routes(raw: Any, problems: Collector, context: OptionContext,
                  models: dict[str, Model]) -> dict[str, RouteSpec]:
    routes: dict[str, RouteSpec] = {}
    if raw is None:
        return routes
    if not isinstance(raw, dict):
        problems.add("routes", "must be a mapping of route key to route (e.g. $default: {handler: mod:fn})")
        return routes
    for route_key, route in raw.items():
        key = f"routes.{route_key}"
        if not isinstance(route_key, str) or not route_key or len(route_key) > 128:
            problems.add(key, "a route key is a non-empty string of at most 128 characters")
            continue
        if route_key.startswith("$") and route_key not in ("$connect", "$disconnect", "$default", *JOIN_ROUTES):
            problems.add(key, "only $connect, $disconnect, $default, $join and $leave may start with '$'")
            continue
        if not isinstance(route, dict):
            problems.add(key, "must be a mapping, e.g. {handler: handlers.chat:on_default}")
            continue
        for unknown in set(route) - ROUTE_KEYS:
            problems.add(f"{key}.{unknown}", "unknown key" + did_you_mean(str(unknown), ROUTE_KEYS))
        spec = parse_integration(route, key, problems, context)
        authorizer = route.get("authorizer")
        if authorizer is not None and not isinstance(authorizer, str):
            problems.add(f"{key}.authorizer", "must name an authorizer defined under 'authorizers'")
            authorizer = None
        if authorizer is not None and route_key != "$connect":
            problems.add(f"{key}.authorizer", "WebSocket authorizers run on $connect only; move it there")
        respond = route.get("routeResponse", False)
        rrse = route.get("routeResponseSelectionExpression")
        if rrse is not None:
            if rrse != "$default":
                problems.add(f"{key}.routeResponseSelectionExpression", "only '$default' is supported")
            respond = True
        if not isinstance(respond, bool):
            problems.add(f"{key}.routeResponse", "must be true or false")
            respond = False
        throttling = parse_bucket(route.get("throttling"), f"{key}.throttling", problems)
        access = parse_route_access(route, key, authorizer, problems)
        if route_key != "$connect" and (access[0] or access[2] != "NONE"):
            problems.add(f"{key}.{'apiKeyRequired' if access[0] else 'authorizationType'}",
                         "WebSocket APIs check API keys and IAM on $connect only; move it there")
        validator = _route_validator(route, key, models, problems)
        if validator is not None and route_key in ("$connect", "$disconnect", *JOIN_ROUTES):
            problems.add(f"{key}.requestModels", "models validate message bodies; this route has none")
        caching = parse_ws_route_caching(route.get("caching"), f"{key}.caching", route_key, respond, problems)
        if spec is not None:
            routes[route_key] = RouteSpec(route_key, spec, authorizer, respond, throttling, *access, validator,
                                          caching)
    return routes


def _parse_identity_sources(raw: Any, key: str, problems: Collector) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        problems.add(key, "must be a list such as [route.request.header.Authorization]")
        return ()
    sources = []
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not re.match(
                r"^(route\.request\.(header|querystring)\.|\$request\.(header|querystring)\.|method\.request\.header\."
                r"|stageVariables\.|context\.)\S+$",
                part,
            ):
                problems.add(key, f"'{part}' is not route.request.header.X, route.request.querystring.X, "
                             "$request.header.X, method.request.header.X, stageVariables.X or context.X")
                continue
            sources.append(part)
    return tuple(sources)


def _parse_authorizers(raw: Any, problems: Collector, context: OptionContext) -> dict[str, AuthorizerSpec]:
    result: dict[str, AuthorizerSpec] = {}
    if raw is None:
        return result
    if not isinstance(raw, dict):
        problems.add("authorizers", "must be a mapping of name to authorizer")
        return result
    for name, spec in raw.items():
        key = f"authorizers.{name}"
        if not isinstance(spec, dict):
            problems.add(key, "must be a mapping with 'type: request' or 'type: jwt'")
            continue
        kind = str(spec.get("type", "request")).lower()
        if kind not in AUTHORIZER_TYPES:
            problems.add(f"{key}.type", f"'{kind}' is not one of: " + ", ".join(sorted(AUTHORIZER_TYPES)))
            continue
        lambda_kind = kind in ("request", "token")
        integration = parse_integration(spec, key, problems, context) if lambda_kind else None
        ttl = spec.get("resultTtlInSeconds", 300 if lambda_kind else 0)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 3600:
            problems.add(f"{key}.resultTtlInSeconds", "must be a whole number from 0 to 3600 (0 turns the cache off)")
            ttl = 0
        sources = _parse_identity_sources(spec.get("identitySource"), f"{key}.identitySource", problems)
        options, option_problems = parse_authorizer_options(str(name), kind, spec, ttl, sources)
        problems.problems.extend(option_problems)
        if options is not None and (integration is not None or not lambda_kind):
            result[str(name)] = AuthorizerSpec(str(name), kind, sources, ttl, integration, options)
    return result


def _parse_limits(raw: Any, problems: Collector) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        problems.add("limits", "must be a mapping, e.g. {maxMessageBytes: 131072}")
        return Limits()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in LIMIT_KEYS:
            problems.add(f"limits.{name}", "unknown limit" + did_you_mean(str(name), set(LIMIT_KEYS)))
            continue
        attr, kind, minimum = LIMIT_KEYS[name]
        ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
        if not ok or value < minimum:
            problems.add(f"limits.{name}", f"must be a {'number' if kind is float else 'whole number'} >= {minimum}")
            continue
        values[attr] = kind(value)
    return Limits(**values)


def _parse_tls(raw: Any, base_dir: Path, problems: Collector) -> TlsConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("tls", "must be a mapping such as {mode: only, certfile: cert.pem, keyfile: key.pem}")
        return None
    for unknown in set(raw) - TLS_KEYS:
        problems.add(f"tls.{unknown}", "unknown key" + did_you_mean(str(unknown), TLS_KEYS))
    tls = string_map({k: v for k, v in raw.items() if k in TLS_KEYS}, "tls", problems)
    mode = tls.get("mode")
    if mode is not None and mode not in ("only", "both", "off"):
        problems.add("tls.mode", "must be only (wss/https), both (also ws/http on the same port) or off")
    if not tls:
        return None
    certfile, keyfile = tls.get("certfile"), tls.get("keyfile")
    return TlsConfig(mode, base_dir / certfile if certfile else None, base_dir / keyfile if keyfile else None)


def _parse_networks(raw: Any, problems: Collector) -> tuple[str, ...]:
    if not isinstance(raw, list):
        problems.add("management.allowFrom", "must be a list of networks, e.g. [127.0.0.1/32, 10.0.0.0/8]")
        return DEFAULT_MANAGEMENT_ALLOW
    networks = []
    for item in raw:
        try:
            networks.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            problems.add("management.allowFrom", f"'{item}' is not an IP network (e.g. 10.0.0.0/8 or 0.0.0.0/0)")
    return tuple(networks)


def parse_api(raw: Any, base_dir: Path) -> ApiConfig:
    """Validate a loaded document into an ApiConfig; raise ConfigError listing every problem."""
    problems = Collector()
    if not isinstance(raw, dict):
        raise ConfigError.single("(top level)", "the file must hold a mapping with at least 'routes'")
    for unknown in set(raw) - TOP_LEVEL_KEYS:
        problems.add(str(unknown), "unknown key" + did_you_mean(str(unknown), TOP_LEVEL_KEYS))

    stage = raw.get("stage", "dev")
    if not isinstance(stage, str) or not STAGE_PATTERN.match(stage) or stage.startswith("@") or stage == "health":
        problems.add("stage", "must be 1-128 letters, digits, '-' or '_' (e.g. dev)")
        stage = "dev"
    expression = raw.get("routeSelectionExpression", DEFAULT_SELECTION)
    if not isinstance(expression, str) or "request.body" not in expression:
        problems.add("routeSelectionExpression", "must select from the body, e.g. $request.body.action")
        expression = DEFAULT_SELECTION
    ids = {}
    for key, pattern, default in (("apiId", r"^[a-z0-9]{1,32}$", "wsgwlocal0"),
                                  ("region", r"^[a-z]{2}(-[a-z]+)+-\d$", "us-east-1"),
                                  ("accountId", r"^\d{12}$", "000000000000")):
        value = raw.get(key, default)
        if not isinstance(value, str) or not re.match(pattern, value):
            problems.add(key, f"'{value}' does not look like an AWS {key} (e.g. {default})")
            value = default
        ids[key] = value
    stage_variables = string_map(raw.get("stageVariables"), "stageVariables", problems)
    context = OptionContext(stage_variables, ids["region"])
    models = parse_models(raw.get("models"), problems)
    routes = _parse_routes(raw.get("routes"), problems, context, models)
    authorizers = _parse_authorizers(raw.get("authorizers"), problems, context)
    # named ones, built or not: a broken authorizer is reported once, not again by each route using it
    declared = set(map(str, raw["authorizers"])) if isinstance(raw.get("authorizers"), dict) else set()
    for route in routes.values():
        if route.authorizer is not None and route.authorizer not in declared:
            problems.add(f"routes.{route.key}.authorizer",
                         f"'{route.authorizer}' is not defined under 'authorizers'"
                         + did_you_mean(route.authorizer, declared))
    from wsgw.http_config import parse_http  # here, not at the top: http_config builds on this module

    http = parse_http(raw.get("http"), declared, context, problems, models)
    binary = raw.get("isBase64Encoded", False)
    if not isinstance(binary, bool):
        problems.add("isBase64Encoded", "must be true (deliver binary frames base64-encoded) or false (refuse them)")
        binary = False
    throttling = parse_bucket(raw.get("throttling") or None, "throttling", problems)
    domain = raw.get("domainName")
    if domain is not None and (not isinstance(domain, str) or not re.match(r"^[A-Za-z0-9.\[\]:-]{1,253}$", domain)):
        problems.add("domainName", "must be a host name with an optional port, e.g. chat.example.com or 10.0.0.5:8080")
        domain = None
    management = parse_management(raw.get("management"), DEFAULT_MANAGEMENT_ALLOW, base_dir, problems,
                                  _parse_networks)
    usage_plans = parse_usage_plans(raw.get("usagePlans"), problems)
    api = ApiConfig(
        base_dir=base_dir,
        domain_name=domain,
        management_allow_from=management.allow_from,
        management=management,
        usage_plans=usage_plans,
        api_keys=parse_api_keys(raw.get("apiKeys"), usage_plans, base_dir, problems),
        api_key_selection=parse_api_key_selection(raw.get("apiKeySelectionExpression"), problems),
        stage=stage,
        route_selection_expression=expression,
        stage_variables=stage_variables,
        routes=routes,
        authorizers=authorizers,
        http=http,
        limits=_parse_limits(raw.get("limits"), problems),
        binary_as_base64=binary,
        api_id=ids["apiId"],
        region=ids["region"],
        account_id=ids["accountId"],
        throttling=throttling,
        environment=string_map(raw.get("environment"), "environment", problems),
        tls=_parse_tls(raw.get("tls"), base_dir, problems),
        groups=parse_groups(raw.get("groups"), problems.add, routes),
        observe=parse_observe(raw, problems.problems),
        consumers=parse_consumers(raw.get("consumers"), problems.add),
        caching=parse_stage_caching(raw.get("caching"), problems),
        models=models,
    )
    if problems.problems:
        raise ConfigError(problems.problems)
    return api


def load_api(path: str | Path) -> ApiConfig:
    """Read an API definition from disk — wsgw.yaml (or JSON), serverless.yml or a SAM template — and validate it."""
    from wsgw.loaders import load_document

    loaded = load_document(path)
    return parse_api(loaded.raw, loaded.base_dir)


__all__ = [
    "HANDLER_PATTERN",
    "HTTP_INTEGRATION_TIMEOUT_RANGE_MS",
    "INTEGRATION_SCHEMAS",
    "INTEGRATION_TIMEOUT_RANGE_MS",
    "ApiConfig",
    "AuthorizerOptions",
    "AuthorizerSpec",
    "AwsLambdaOptions",
    "BucketSpec",
    "CognitoAuthorizerOptions",
    "Collector",
    "GroupOptions",
    "HttpEventOptions",
    "HttpOptions",
    "IntegrationOptions",
    "IntegrationSpec",
    "JwtAuthorizerOptions",
    "Limits",
    "MockOptions",
    "OptionContext",
    "PythonOptions",
    "RequestAuthorizerOptions",
    "RouteSpec",
    "RuntimeOptions",
    "TlsConfig",
    "TokenAuthorizerOptions",
    "load_api",
    "parse_api",
    "parse_integration",
]
