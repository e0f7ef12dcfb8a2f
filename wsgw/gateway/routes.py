"""The WebSocket route table: route keys to built integrations, plus the compiled selector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.models import RequestValidator
from wsgw.config import ApiConfig, RouteSpec
from wsgw.config.caching import WsRoutePolicy, ws_route_policy
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.integrations import Integration, Resources, build_integration
from wsgw.selection import RouteSelector, SelectionExpressionError, compile_selection


@dataclass(slots=True)
class Route:
    key: str
    integration: Integration
    route_response: bool
    authorizer: str | None
    timeout_s: float
    make_context: Callable[[str, int], LambdaContext]
    validator: RequestValidator | None = None     # requestModels: a failing body never reaches the integration
    caching: WsRoutePolicy | None = None          # the route response is kept in the stage's cache (docs/caching.md)


def function_name_for(api: ApiConfig, route_key: str) -> str:
    """A Lambda-like function name per route, e.g. wsgw-dev-sendmessage."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in route_key.lstrip("$"))
    return f"wsgw-{api.stage}-{cleaned or 'route'}"


class RouteTable:
    """Built once at start; a missing handler or bad option is a ConfigError naming the key."""

    def __init__(self, api: ApiConfig, resources: Resources) -> None:
        problems: list[ConfigProblem] = []
        try:
            self.selector: RouteSelector = compile_selection(api.route_selection_expression)
        except SelectionExpressionError as exc:
            problems.append(ConfigProblem("routeSelectionExpression", str(exc)))
        self.routes: dict[str, Route] = {}
        for key, spec in api.routes.items():
            try:
                self.routes[key] = self._build(spec, api, resources)
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        self.connect = self.routes.get("$connect")
        self.disconnect = self.routes.get("$disconnect")
        self.default = self.routes.get("$default")
        self.join = self.routes.get("$join")          # wsgw's own: called for groups with joinRoutes: true
        self.leave = self.routes.get("$leave")
        self.message_routes = {k: r for k, r in self.routes.items()
                               if k not in ("$connect", "$disconnect", "$join", "$leave")}

    @staticmethod
    def _build(spec: RouteSpec, api: ApiConfig, resources: Resources) -> Route:
        integration = build_integration(spec.integration, api, resources, function_name_for(api, spec.key))
        return Route(spec.key, integration, spec.route_response, spec.authorizer, spec.integration.timeout_ms / 1000,
                     LambdaContext.factory(integration.function_name, api.region, api.account_id), spec.validator,
                     ws_route_policy(api.caching, spec.caching))

    def route_for(self, body: str | bytes) -> Route | None:
        """The route a message goes to: the selected key if configured, else $default, else None."""
        return self.route_for_key(self.selector.select(body))

    def route_for_parsed(self, document: object) -> Route | None:
        """As :meth:`route_for`, for a body already parsed (None when it is not JSON)."""
        return self.route_for_key(self.selector.select_parsed(document))

    def route_for_key(self, key: str | None) -> Route | None:
        if key is not None:
            route = self.message_routes.get(key)
            if route is not None:
                return route
        return self.default

    async def close(self) -> None:
        for route in self.routes.values():
            await route.integration.close()
