"""The API definition: defaults, shorthands and one problem per bad key (pure, no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import APPS
from wsgw.config import Limits, PythonOptions, parse_api
from wsgw.errors import ConfigError


def problems(raw: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_api(raw, Path("."))
    return {p.key: p.message for p in error.value.problems}


def test_defaults_are_aws_values() -> None:
    api = parse_api({"routes": {}}, Path("."))
    assert api.stage == "dev"
    assert api.route_selection_expression == "$request.body.action"
    assert api.limits == Limits()
    assert (api.limits.max_message_bytes, api.limits.max_frame_bytes) == (131_072, 32_768)
    assert (api.limits.idle_timeout_seconds, api.limits.max_connection_seconds) == (600, 7200)


def test_handler_shorthand_is_a_python_integration_with_the_aws_timeout() -> None:
    api = parse_api({"routes": {"$default": {"handler": "mod:fn", "routeResponse": True}}}, Path("."))
    route = api.routes["$default"]
    assert route.integration.type == "python"
    assert route.integration.options == PythonOptions(handler="mod:fn")
    assert route.integration.timeout_ms == 29_000
    assert route.route_response is True


def test_route_response_selection_expression_default_turns_route_response_on() -> None:
    api = parse_api({"routes": {"x": {"handler": "m:f", "routeResponseSelectionExpression": "$default"}}}, Path("."))
    assert api.routes["x"].route_response is True


def test_stage_variables_are_strings() -> None:
    api = parse_api({"stageVariables": {"n": 1, "b": True, "s": "x"}}, Path("."))
    assert api.stage_variables == {"n": "1", "b": "true", "s": "x"}


@pytest.mark.parametrize(("raw", "key"), [
    ([1, 2], "(top level)"),
    ({"routes": []}, "routes"),
    ({"routes": {"x": "m:f"}}, "routes.x"),
    ({"routes": {"x": {}}}, "routes.x"),
    ({"routes": {"x": {"handler": "m:f", "integration": {"type": "mock"}}}}, "routes.x"),
    ({"routes": {"x": {"integration": {}}}}, "routes.x.integration.type"),
    ({"routes": {"x": {"integration": {"type": "mock", "timeoutMs": 30_000}}}}, "routes.x.integration.timeoutMs"),
    ({"routes": {"x": {"handler": "m:f", "routeResponse": "yes"}}}, "routes.x.routeResponse"),
    ({"routes": {"x": {"handler": "m:f", "routeResponseSelectionExpression": "$x"}}},
     "routes.x.routeResponseSelectionExpression"),
    ({"routes": {"x": {"handler": "m:f", "authorizer": "a"}}}, "routes.x.authorizer"),
    ({"routes": {"$connect": {"handler": "m:f", "authorizer": "missing"}}}, "routes.$connect.authorizer"),
    ({"routeSelectionExpression": "$request.header.x"}, "routeSelectionExpression"),
    ({"stage": "@connections"}, "stage"),
    ({"limits": {"maxFrameBytes": 0}}, "limits.maxFrameBytes"),
    ({"limits": {"idleTimeoutSeconds": True}}, "limits.idleTimeoutSeconds"),
    ({"isBase64Encoded": "yes"}, "isBase64Encoded"),
    ({"authorizers": {"a": {"type": "oauth"}}}, "authorizers.a.type"),
    ({"authorizers": {"a": {"handler": "m:f", "resultTtlInSeconds": 7200}}}, "authorizers.a.resultTtlInSeconds"),
    ({"authorizers": {"a": {"handler": "m:f", "identitySource": ["header.X"]}}}, "authorizers.a.identitySource"),
    ({"stageVariables": {"x": {"nested": 1}}}, "stageVariables.x"),
    ({"accountId": "12"}, "accountId"),
])
def test_each_bad_value_is_reported_under_its_key(raw: Any, key: str) -> None:
    found = problems(raw)
    assert key in found, found
    assert found[key]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"stage": "", "limits": {"maxFrameBytes": -5}, "routes": {"x": {}}, "whatever": 1})
    assert {"stage", "limits.maxFrameBytes", "routes.x", "whatever"} <= set(found)


@pytest.mark.parametrize(("integration", "typo", "meant"), [
    ({"type": "python", "handler": "testapp:echo", "memorysize": 256}, "memorysize", "memorySize"),
    ({"type": "mock", "response": "pong", "responseTemplates": {}}, "responseTemplates", ""),
    ({"type": "mock", "response": "pong", "statuscode": 201}, "statuscode", "statusCode"),
    ({"type": "http_event", "uri": "http://h/", "header": {}}, "header", "headers"),
    ({"type": "http", "uri": "http://h/", "methods": "GET"}, "methods", "method"),
    ({"type": "aws_lambda", "functionArn": "f", "endpointURL": "http://h/"}, "endpointURL", "endpointUrl"),
])
def test_unknown_integration_options_are_refused_by_name_for_every_type(
        integration: dict[str, Any], typo: str, meant: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_api({"routes": {"r": {"integration": integration}}}, Path("."))
    [problem] = caught.value.problems
    assert problem.key == f"routes.r.integration.{typo}"
    assert f"unknown option for type '{integration['type']}'" in problem.message
    if meant:
        assert f"did you mean '{meant}'" in problem.message


@pytest.mark.parametrize(("authorizer", "typo", "meant"), [
    ({"type": "request", "handler": "authapp:decide", "resultCacheMaxEntry": 5}, "resultCacheMaxEntry",
     "resultCacheMaxEntries"),
    ({"type": "jwt", "issuer": "https://auth.example.com/", "audience": ["chat"], "jwksUrl": "keys.json"},
     "jwksUrl", "jwksUri"),
])
def test_unknown_authorizer_options_are_refused_by_name_for_every_type(
        authorizer: dict[str, Any], typo: str, meant: str) -> None:
    from wsgw.config.node import NodeConfig
    from wsgw.server.node import build_node

    raw = {"authorizers": {"auth": authorizer}, "routes": {"$connect": {"handler": "testapp:echo",
                                                                        "authorizer": "auth"}}}
    with pytest.raises(ConfigError) as caught:
        build_node(parse_api(raw, APPS), NodeConfig()).discard()
    problems = {p.key: p.message for p in caught.value.problems}
    assert f"did you mean '{meant}'" in problems[f"authorizers.auth.{typo}"]


def test_every_integration_type_read_at_load_has_a_class_to_build_it() -> None:
    from wsgw.config import INTEGRATION_SCHEMAS
    from wsgw.integrations import INTEGRATION_TYPES

    assert set(INTEGRATION_SCHEMAS) == set(INTEGRATION_TYPES)
