"""HTTP APIs' parameter mapping with plain values (wsgw.aws.parameter_mapping): keys, values, reserved headers,
what a request and a response become. AWS's rules: docs/parameter-mapping.md."""

from __future__ import annotations

from typing import Any

import pytest

from wsgw.aws.parameter_mapping import (
    MappingError,
    MappingSource,
    compile_parameter,
    compile_request_parameters,
    compile_response_parameters,
    context_variables,
    is_reserved_header,
)


def source(**overrides: Any) -> MappingSource:
    base: dict[str, Any] = dict(
        body='{"user": {"name": "ada", "tags": ["a", "b"]}}',
        context={"requestId": "req-1", "authorizer": {"principalId": "alice"}, "identity": {"sourceIp": "10.0.0.9"}},
        stage_variables={"env": "prod"}, headers={"x-team": "blue", "accept": "text/plain"},
        query={"page": "2", "sort": "name"}, path={"id": "42"}, request_path="/items/42")
    base.update(overrides)
    return MappingSource(**base)


def request_mapping(raw: dict[str, Any]) -> Any:
    mapping, problems = compile_request_parameters(raw)
    assert problems == [] and mapping is not None
    return mapping


def test_the_aws_documentation_examples_compile_and_apply() -> None:
    # "Add a header to an API request" and "Rename a request header" (AWS's examples, same keys and values).
    added = request_mapping({"append:header.header1": "$context.requestId"})
    headers, query, path = added.apply(source(), [("x-team", "blue")], [])
    assert headers == [("x-team", "blue"), ("header1", "req-1")] and query == [] and path is None
    renamed = request_mapping({"append:header.header2": "$request.header.header1", "remove:header.header1": "''"})
    headers, _, _ = renamed.apply(source(headers={"header1": "v1"}), [("Header1", "v1"), ("x", "y")], [])
    assert headers == [("x", "y"), ("header2", "v1")]


def test_overwrite_replaces_every_line_append_adds_remove_drops() -> None:
    mapping = request_mapping({"overwrite:header.x-team": "red", "append:querystring.sort": "${request.path.id}",
                               "remove:querystring.page": "", "overwrite:querystring.env": "$stageVariables.env"})
    headers, query, _ = mapping.apply(source(), [("X-Team", "blue"), ("x-team", "green"), ("a", "1")],
                                      [("page", "2"), ("sort", "name")])
    assert headers == [("a", "1"), ("x-team", "red")]
    assert query == [("sort", "name"), ("sort", "42"), ("env", "prod")]


def test_values_are_read_from_the_original_request_whatever_the_order() -> None:
    mapping = request_mapping({"remove:header.x-team": "", "overwrite:header.x-copy": "$request.header.x-team"})
    headers, _, _ = mapping.apply(source(), [("x-team", "blue")], [])
    assert headers == [("x-copy", "blue")]


def test_path_body_context_and_mixed_values() -> None:
    mapping = request_mapping({"overwrite:path": "/v2/users/${request.body.user.name}",
                               "overwrite:header.x-who": "${context.authorizer.principalId}@${request.path}",
                               "overwrite:header.x-tags": "$request.body.user.tags"})
    headers, _, path = mapping.apply(source(), [], [])
    assert path == "/v2/users/ada"
    assert dict(headers) == {"x-who": "alice@/items/42", "x-tags": '["a","b"]'}


def test_a_value_that_comes_out_empty_sets_nothing() -> None:
    mapping = request_mapping({"overwrite:header.x-missing": "$request.header.nope",
                               "overwrite:path": "$request.body.no"})
    headers, _, path = mapping.apply(source(), [("x-missing", "old")], [])
    assert headers == [] and path is None


def test_a_mapped_value_with_a_line_break_is_refused() -> None:
    mapping = request_mapping({"overwrite:header.x-name": "$request.body.name"})
    with pytest.raises(MappingError, match="line break"):
        mapping.apply(source(body='{"name": "a\\r\\nSet-Cookie: x=1"}'), [], [])


@pytest.mark.parametrize("name", ["Authorization", "content-length", "Access-Control-Allow-Origin", "apigw-requestid",
                                  "X-Amz-Date", "x-amzn-trace-id", "Via", "X-Forwarded-For", "Connection", "Origin"])
def test_reserved_headers_cannot_be_mapped(name: str) -> None:
    assert is_reserved_header(name)
    _, problems = compile_request_parameters({f"overwrite:header.{name}": "x"})
    assert problems and "reserved" in problems[0][1]
    _, problems = compile_response_parameters({"200": {f"append:header.{name}": "x"}})
    assert problems and "reserved" in problems[0][1]


@pytest.mark.parametrize(("raw", "where", "says"), [
    ({"rewrite:header.x": "v"}, "rewrite:header.x", "ACTION:TARGET"),
    ({"overwrite:body": "v"}, "overwrite:body", "not a target"),
    ({"append:path": "/x"}, "append:path", "only be overwritten"),
    ({"overwrite:header.bad name": "v"}, "overwrite:header.bad name", "not a valid header name"),
    ({"overwrite:header.x": "$request.nothing.x"}, "overwrite:header.x", "is not one of"),
    ({"overwrite:header.x": "$response.header.y"}, "overwrite:header.x", "is not one of"),
    ({"overwrite:header.x": ["list"]}, "overwrite:header.x", "must be a string"),
    ({"overwrite:statuscode": "200"}, "overwrite:statuscode", "not a target"),
])
def test_bad_request_parameters_name_the_key(raw: dict[str, Any], where: str, says: str) -> None:
    mapping, problems = compile_request_parameters(raw)
    assert mapping is None and problems[0][0] == where and says in problems[0][1]


def test_response_parameters_by_status() -> None:
    # AWS's "Change the response from an integration" example.
    mapping, problems = compile_response_parameters({
        "500": {"append:header.header1": "$context.requestId", "overwrite:statuscode": "403"},
        "404": {"append:header.error": "$stageVariables.environmentId"}})
    assert problems == [] and mapping is not None
    src = source(stage_variables={"environmentId": "env-9"})
    assert mapping.apply(500, src, [("a", "1")]) == (403, [("a", "1"), ("header1", "req-1")])
    assert mapping.apply(404, src, []) == (404, [("error", "env-9")])
    assert mapping.apply(200, src, [("a", "1")]) == (200, [("a", "1")])


def test_response_values_read_the_integrations_answer() -> None:
    mapping, _ = compile_response_parameters({"200": {"overwrite:header.x-id": "$response.body.item.id",
                                                      "overwrite:header.x-echo": "$response.header.x-backend",
                                                      "remove:header.x-backend": "",
                                                      "overwrite:statuscode": "${response.body.code}"}})
    assert mapping is not None
    src = source(response_headers={"x-backend": "b1"}, response_body='{"item": {"id": 7}, "code": 201}')
    status, headers = mapping.apply(200, src, [("X-Backend", "b1")])
    assert status == 201 and dict(headers) == {"x-id": "7", "x-echo": "b1"}


def test_a_status_that_is_not_a_status_code_is_an_error() -> None:
    mapping, _ = compile_response_parameters({"200": {"overwrite:statuscode": "$response.body.code"}})
    assert mapping is not None
    with pytest.raises(MappingError, match="not a status code"):
        mapping.apply(200, source(response_body='{"code": "teapot"}'), [])


@pytest.mark.parametrize(("raw", "where", "says"), [
    ({"abc": {}}, "abc", "status code"),
    ({"199": {}}, "199", "200 to 599"),
    ({"200": "x"}, "200", "must map"),
    ({"200": {"overwrite:querystring.a": "v"}}, "200.overwrite:querystring.a", "not a target"),
    ({"200": {"overwrite:header.a": "$request.header.b"}}, "200.overwrite:header.a", "is not one of"),
])
def test_bad_response_parameters_name_the_key(raw: dict[str, Any], where: str, says: str) -> None:
    _, problems = compile_response_parameters(raw)
    assert problems[0][0] == where and says in problems[0][1]


def test_context_variables_use_aws_names() -> None:
    ctx = context_variables({"requestId": "r", "http": {"method": "GET", "path": "/dev/x", "protocol": "HTTP/1.1",
                                                        "sourceIp": "1.2.3.4", "userAgent": "ua"},
                             "time": "t", "timeEpoch": 1,
                             "authorizer": {"lambda": {"user": "ada"}, "jwt": {"claims": {"sub": "s1"},
                                                                                "scopes": ["a"]}}})
    src = source(context=ctx)
    for expression, expected in [("$context.httpMethod", "GET"), ("$context.identity.sourceIp", "1.2.3.4"),
                                 ("$context.authorizer.user", "ada"), ("$context.authorizer.claims.sub", "s1"),
                                 ("$context.authorizer.principalId", "s1"), ("$context.http.path", "/dev/x"),
                                 ("$context.requestTimeEpoch", "1")]:
        assert compile_parameter(expression).render(src) == expected, expression
