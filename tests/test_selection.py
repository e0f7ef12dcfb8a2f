"""Route selection expressions: compiling them, and the route key each message selects."""

from __future__ import annotations

import pytest

from wsgw.selection import RouteSelector, SelectionExpressionError, compile_selection

ACTION = compile_selection("$request.body.action")


# ---------------------------------------------------------------- the common case


def test_action_field_selects_its_value() -> None:
    assert ACTION.select(b'{"action": "sendmessage", "data": "hi"}') == "sendmessage"


def test_str_body_works_like_bytes() -> None:
    assert ACTION.select('{"action": "join"}') == "join"


def test_missing_key_selects_nothing() -> None:
    assert ACTION.select(b'{"type": "join"}') is None


def test_null_value_selects_nothing() -> None:
    assert ACTION.select(b'{"action": null}') is None


def test_empty_string_value_selects_nothing() -> None:
    assert ACTION.select(b'{"action": ""}') is None


def test_select_parsed_skips_parsing() -> None:
    assert ACTION.select_parsed({"action": "ping"}) == "ping"
    assert ACTION.select_parsed(["action"]) is None


def test_selector_keeps_its_expression_and_paths() -> None:
    selector = compile_selection("${request.body.service}/${request.body.action}")
    assert isinstance(selector, RouteSelector)
    assert selector.expression == "${request.body.service}/${request.body.action}"
    assert selector.paths == (("service",), ("action",))
    assert "service" in repr(selector)


# ---------------------------------------------------------------- scalars rendered as text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"action": true}', "true"),
        (b'{"action": false}', "false"),
        (b'{"action": 1}', "1"),
        (b'{"action": -7}', "-7"),
        (b'{"action": 1.5}', "1.5"),
        (b'{"action": 18446744073709551615}', "18446744073709551615"),
    ],
)
def test_scalar_values_select_their_text(body: bytes, expected: str) -> None:
    assert ACTION.select(body) == expected


@pytest.mark.parametrize("body", [b'{"action": ["a", "b"]}', b'{"action": {"a": 1}}', b'{"action": []}'])
def test_array_or_object_value_selects_nothing(body: bytes) -> None:
    assert ACTION.select(body) is None


def test_huge_integer_still_selects_a_route_key() -> None:
    # orjson reads integers beyond 64 bits as floats; the message still routes.
    assert ACTION.select(b'{"action": 123456789012345678901234567890}') == "1.2345678901234568e+29"


# ---------------------------------------------------------------- bodies that are not JSON objects


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b'{"action": "join"',
        b"{'action': 'join'}",
        b'{"action": NaN}',
        b'{"action": 1e400}',
        b'"action"',
        b"42",
        b"null",
        b'[{"action": "join"}]',
    ],
)
def test_body_that_is_not_a_json_object_selects_nothing(body: bytes) -> None:
    assert ACTION.select(body) is None


def test_non_utf8_body_selects_nothing() -> None:
    assert ACTION.select(b'{"action": "\xff\xfe"}') is None


def test_lone_surrogate_in_str_body_selects_nothing() -> None:
    assert ACTION.select('{"action": "\ud800"}') is None


def test_absurdly_deep_nesting_selects_nothing_without_crashing() -> None:
    body = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert compile_selection("$request.body.a").select(body) is None


def test_moderately_deep_nesting_is_followed() -> None:
    depth = 100
    body = b'{"a":' * depth + b'"deep"' + b"}" * depth
    selector = compile_selection("$request.body" + ".a" * depth)
    assert selector.select(body) == "deep"


# ---------------------------------------------------------------- paths


def test_nested_path_follows_objects() -> None:
    selector = compile_selection("$request.body.meta.route.name")
    assert selector.select(b'{"meta": {"route": {"name": "chat"}}}') == "chat"
    assert selector.select(b'{"meta": {"route": "chat"}}') is None
    assert selector.select(b'{"meta": null}') is None


def test_array_index_selects_an_item() -> None:
    selector = compile_selection("$request.body.items[1].kind")
    assert selector.select(b'{"items": [{"kind": "a"}, {"kind": "b"}]}') == "b"
    assert selector.select(b'{"items": [{"kind": "a"}]}') is None
    assert selector.select(b'{"items": {"1": {"kind": "a"}}}') is None


def test_quoted_key_in_brackets_allows_dots() -> None:
    selector = compile_selection("$request.body['a.b']")
    assert selector.select(b'{"a.b": "dotted", "a": {"b": "nested"}}') == "dotted"


def test_unicode_keys_and_values_are_matched() -> None:
    selector = compile_selection("$request.body.aktion")
    assert selector.select('{"aktion": "grüße"}'.encode()) == "grüße"
    emoji = compile_selection("$request.body.🚀")
    assert emoji.select('{"🚀": "launch"}'.encode()) == "launch"


def test_keys_with_hyphens_work_unwrapped() -> None:
    assert compile_selection("$request.body.my-action").select(b'{"my-action": "x"}') == "x"


# ---------------------------------------------------------------- templates


SERVICE_ACTION = compile_selection("${request.body.service}/${request.body.action}")


def test_template_joins_values_and_literals() -> None:
    assert SERVICE_ACTION.select(b'{"service": "chat", "action": "join"}') == "chat/join"


def test_template_missing_part_resolves_to_empty_text_as_aws_documents() -> None:
    # AWS: "If the JSONPath is not found, the variable is resolved as ''".
    assert SERVICE_ACTION.select(b'{"service": "chat"}') == "chat/"
    assert SERVICE_ACTION.select(b'{"action": "join"}') == "/join"


def test_template_with_every_part_missing_keeps_its_literals() -> None:
    assert SERVICE_ACTION.select(b"{}") == "/"


def test_template_of_variables_only_selects_nothing_when_all_are_missing() -> None:
    selector = compile_selection("${request.body.a}${request.body.b}")
    assert selector.select(b"{}") is None
    assert selector.select(b'{"b": 2}') == "2"


def test_wrapped_single_variable_equals_unwrapped() -> None:
    wrapped = compile_selection("${request.body.action}")
    assert wrapped.select(b'{"action": "join"}') == "join"
    assert wrapped.select(b"{}") is None


def test_unwrapped_variable_inside_template_stops_at_slash() -> None:
    selector = compile_selection("v1/$request.body.action/x")
    assert selector.select(b'{"action": "join"}') == "v1/join/x"


def test_template_on_non_json_body_selects_nothing() -> None:
    assert SERVICE_ACTION.select(b"not json") is None


def test_static_expression_selects_itself() -> None:
    assert compile_selection("action").select(b"{}") == "action"


def test_escaped_dollar_is_a_literal() -> None:
    assert compile_selection("\\$default").select(b'{"action": "x"}') == "$default"


# ---------------------------------------------------------------- expressions that cannot compile


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "$",
        "${}",
        "${request.body.action",
        "$request.header.x-api-key",
        "$context.connectionId",
        "${request.querystring.route}",
        "$request.body",
        "$request.body.",
        "$request.body..action",
        "$request.body.*",
        "$request.body.items[x]",
        "$request.body.items[0",
        "$request.bodyaction",
    ],
)
def test_invalid_expression_is_rejected(expression: str) -> None:
    with pytest.raises(SelectionExpressionError):
        compile_selection(expression)


def test_error_names_the_expression_and_the_fix() -> None:
    with pytest.raises(SelectionExpressionError) as info:
        compile_selection("$request.header.x-route")
    message = str(info.value)
    assert "'$request.header.x-route'" in message
    assert "$request.body.action" in message


def test_selection_error_is_a_value_error() -> None:
    assert issubclass(SelectionExpressionError, ValueError)


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(SelectionExpressionError):
        compile_selection(42)  # type: ignore[arg-type]
