"""The `http:` section of wsgw.yaml (the REST front): routes, their integrations, authorizers, request
schemas, and CORS — validated once, by wsgw.config.parse_api, every problem naming its key
(e.g. `http.routes.GET /rooms.handler`)."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from wsgw.aws.models import Model, ModelError, compile_models
from wsgw.aws.parameter_mapping import (
    RequestMapping,
    ResponseMapping,
    compile_request_parameters,
    compile_response_parameters,
)
from wsgw.config.access import parse_route_access
from wsgw.config.caching import RouteCaching, parse_route_caching
from wsgw.config.common import Collector
from wsgw.config.integrations import (
    HTTP_INTEGRATION_TIMEOUT_RANGE_MS,
    IntegrationSpec,
    OptionContext,
    parse_integration,
)
from wsgw.config.throttling import BucketSpec, parse_bucket
from wsgw.rest.cors import CorsConfig, parse_cors
from wsgw.rest.routes import RouteKeyError, RoutePattern, parse_route_key

HTTP_KEYS = {"routes", "cors"}
LATEST_DRAFT = "https://json-schema.org/draft/2020-12/schema"
HTTP_ROUTE_KEYS = {"handler", "integration", "authorizer", "requestSchema", "timeoutMs", "throttling",
                   "apiKeyRequired", "authorizationScopes", "authorizationType", "requestParameters",
                   "responseParameters", "caching"}


@dataclass(frozen=True, slots=True)
class HttpRouteSpec:
    key: str
    pattern: RoutePattern
    integration: IntegrationSpec
    authorizer: str | None
    validator: Model | None          # requestSchema: a schema of its own or a model's name, compiled
    throttling: BucketSpec | None = None                 # this route's own bucket (never a WebSocket route's)
    api_key_required: bool = False
    authorization_scopes: tuple[str, ...] | None = None  # a JWT/Cognito token must carry one of these
    authorization_type: str = "NONE"                     # NONE, or AWS_IAM (a SigV4-signed request)
    request_parameters: RequestMapping | None = None     # HTTP APIs' parameter mapping, before the integration
    response_parameters: ResponseMapping | None = None   # ... and on its answer, by status code
    caching: RouteCaching | None = None                  # the route's override of the stage's cache settings


@dataclass(frozen=True, slots=True)
class HttpApiSpec:
    routes: tuple[HttpRouteSpec, ...] = ()
    cors: CorsConfig | None = None


def _request_schema(schema: Any, key: str, models: dict[str, Model], problems: Collector) -> Model | None:
    """`requestSchema`: a JSON Schema, or the name of one of the API's `models`."""
    if isinstance(schema, str):
        model = models.get(schema)
        if model is None:
            known = ", ".join(sorted(models)) or "none defined"
            problems.add(key, f"no model named {schema!r} (models: {known})")
        return model
    if not isinstance(schema, dict):
        problems.add(key, "must be a JSON Schema (a mapping such as {type: object, required: [text]}) or a model name")
        return None
    if "$schema" not in schema:     # wsgw's own requestSchema reads the current draft unless it names one
        schema = {"$schema": LATEST_DRAFT, **schema}
    try:
        return compile_models({"requestSchema": schema}, key.rsplit(".requestSchema", 1)[0])["requestSchema"]
    except ModelError as exc:
        where, _, message = str(exc).partition(": ")
        problems.add(where, message)
        return None


#: Integration types whose own `requestParameters` mean something else (AWS_PROXY: the subtype's parameters;
#: AWS: integration request headers); a route-level mapping beside them would be ambiguous.
_OWN_REQUEST_PARAMETERS = ("aws_proxy", "aws")


def _parse_mappings(route: dict[str, Any], key: str, spec: IntegrationSpec | None,
                    problems: Collector) -> tuple[RequestMapping | None, ResponseMapping | None]:
    """The route's `requestParameters` and `responseParameters` (HTTP APIs' parameter mapping)."""
    request, request_problems = compile_request_parameters(route.get("requestParameters"))
    for where, message in request_problems:
        problems.add(f"{key}.requestParameters{'.' + where if where else ''}", message)
    response, response_problems = compile_response_parameters(route.get("responseParameters"))
    for where, message in response_problems:
        problems.add(f"{key}.responseParameters{'.' + where if where else ''}", message)
    if request is not None and spec is not None and spec.type in _OWN_REQUEST_PARAMETERS:
        problems.add(f"{key}.requestParameters", f"type {spec.type} takes its requestParameters inside "
                     "'integration:'; a route-level mapping applies to the other integration types")
        request = None
    return request, response


def parse_http(raw: Any, authorizers: AbstractSet[str], context: OptionContext,
               problems: Collector, models: dict[str, Model] | None = None) -> HttpApiSpec | None:
    """Read `http:` (None when absent); every problem goes to `problems`. `authorizers`: the names defined."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        problems.add("http", "must be a mapping with 'routes' (and optionally 'cors')")
        return None
    for unknown in sorted(set(map(str, raw)) - HTTP_KEYS):
        problems.add(f"http.{unknown}", "unknown key; use 'routes' and 'cors'")
    routes: list[HttpRouteSpec] = []
    raw_routes = raw.get("routes")
    if raw_routes is not None and not isinstance(raw_routes, dict):
        problems.add("http.routes", "must be a mapping of route key to route, e.g. 'GET /rooms': {handler: mod:fn}")
        raw_routes = None
    for route_key, route in (raw_routes or {}).items():
        key = f"http.routes.{route_key}"
        try:
            pattern = parse_route_key(str(route_key))
        except RouteKeyError as exc:
            problems.add(key, str(exc))
            continue
        if not isinstance(route, dict):
            problems.add(key, "must be a mapping, e.g. {handler: handlers.rest:list_rooms}")
            continue
        for unknown in sorted(set(map(str, route)) - HTTP_ROUTE_KEYS):
            problems.add(f"{key}.{unknown}", "unknown key; use one of " + ", ".join(sorted(HTTP_ROUTE_KEYS)))
        spec = parse_integration(route, key, problems, context, HTTP_INTEGRATION_TIMEOUT_RANGE_MS)
        if spec is not None and spec.type == "group":      # a relay publishes a WebSocket sender's message
            problems.add(f"{spec.key}.type", "'group' relays a WebSocket client's message and has no sender here; "
                                             "a REST handler publishes with the @groups API (wsgw.client)")
            spec = None
        authorizer = route.get("authorizer")
        if authorizer is not None and (not isinstance(authorizer, str) or authorizer not in authorizers):
            defined = ", ".join(sorted(authorizers)) or "none are defined"
            problems.add(f"{key}.authorizer", f"'{authorizer}' is not defined under 'authorizers' ({defined})")
            authorizer = None
        validator = None
        if "requestSchema" in route:
            validator = _request_schema(route["requestSchema"], f"{key}.requestSchema", models or {}, problems)
        access = parse_route_access(route, key, authorizer, problems)
        request_mapping, response_mapping = _parse_mappings(route, key, spec, problems)
        caching = parse_route_caching(route.get("caching"), f"{key}.caching", problems)
        if spec is not None:
            routes.append(HttpRouteSpec(str(route_key), pattern, spec, authorizer, validator,
                                        parse_bucket(route.get("throttling"), f"{key}.throttling", problems),
                                        *access, request_parameters=request_mapping,
                                        response_parameters=response_mapping, caching=caching))
    cors, cors_problems = parse_cors(raw.get("cors"))
    problems.problems.extend(cors_problems)
    return HttpApiSpec(tuple(routes), cors)

