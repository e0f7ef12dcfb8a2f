"""Template and integration response selection, and passthrough behaviours, as AWS defines them."""

from __future__ import annotations

import pytest

from wsgw.aws.integration_response import (
    Passthrough,
    PassthroughBehavior,
    Reject,
    SelectionError,
    Transform,
    choose_request_template,
    compile_response_selector,
    compile_template_selector,
    content_type_key,
)

JSON_ONLY = {"application/json": "json template"}
XML_ONLY = {"application/xml": "xml template"}
ALL = list(PassthroughBehavior)


# AWS's "Integration passthrough behaviors", example 1: one template, for application/json.
@pytest.mark.parametrize("behavior", ALL)
@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
def test_json_template_transforms_json_and_untyped_bodies_whatever_the_behavior(
    behavior: PassthroughBehavior, content_type: str | None
) -> None:
    choice = choose_request_template(JSON_ONLY, content_type_key(content_type), behavior, default_key=False)
    assert choice == Transform("application/json", "json template")


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        (PassthroughBehavior.WHEN_NO_MATCH, Passthrough()),
        (PassthroughBehavior.WHEN_NO_TEMPLATES, Reject("Unsupported Media Type")),
        (PassthroughBehavior.NEVER, Reject("Unsupported Media Type")),
    ],
)
def test_unmatched_content_type_follows_the_passthrough_behavior(
    behavior: PassthroughBehavior, expected: object
) -> None:
    assert choose_request_template(JSON_ONLY, content_type_key("application/xml"), behavior, default_key=False) == (
        expected
    )
    # Example 2: only an application/xml template; a JSON (or untyped) body is the unmatched one.
    assert choose_request_template(XML_ONLY, content_type_key(None), behavior, default_key=False) == expected


def test_no_templates_at_all_pass_through_unless_never() -> None:
    key = content_type_key("text/plain")
    assert choose_request_template({}, key, PassthroughBehavior.WHEN_NO_TEMPLATES) == Passthrough()
    assert choose_request_template({}, key, PassthroughBehavior.WHEN_NO_MATCH) == Passthrough()
    assert choose_request_template({}, key, PassthroughBehavior.NEVER) == Reject("Unsupported Media Type")


def test_websocket_templates_fall_back_to_default() -> None:
    templates = {"join": "J", "$default": "D"}
    assert choose_request_template(templates, "join", PassthroughBehavior.NEVER) == Transform("join", "J")
    assert choose_request_template(templates, "other", PassthroughBehavior.NEVER) == Transform("$default", "D")
    assert choose_request_template(templates, None, PassthroughBehavior.NEVER) == Transform("$default", "D")


def test_passthrough_behavior_takes_awss_names_and_defaults_to_when_no_match() -> None:
    assert PassthroughBehavior.parse(None) is PassthroughBehavior.WHEN_NO_MATCH
    assert PassthroughBehavior.parse("NEVER") is PassthroughBehavior.NEVER
    with pytest.raises(SelectionError, match="WHEN_NO_TEMPLATES"):
        PassthroughBehavior.parse("when_no_match")


def test_integration_responses_match_exact_then_regex_then_default() -> None:
    selector = compile_response_selector({"$default": "ok", "/4\\d\\d/": "client error", "404": "not found"})
    assert selector.select(200) == "ok"
    assert selector.select(404) == "not found"
    assert selector.select("403") == "client error"
    assert selector.select(4000) == "ok"  # the pattern matches the whole value, as AWS's selection patterns do
    assert selector.select_key(403) == "/4\\d\\d/"
    assert selector.select_key(500) == "$default"


def test_lambda_error_messages_match_regex_keys() -> None:
    selector = compile_response_selector({"/.*Not Found.*/": "404", "$default": "200"})
    assert selector.select("Error: Not Found here") == "404"
    assert selector.select(None) == "200"


def test_without_default_an_unmatched_response_selects_nothing() -> None:
    selector = compile_response_selector({"/2\\d\\d/": "ok"})
    assert selector.select(500) is None and selector.select_key(500) is None


def test_bad_regex_key_is_named() -> None:
    with pytest.raises(SelectionError, match="integrationResponses"):
        compile_response_selector({"/4(\\d/": "x"})


def test_template_selection_reads_status_headers_and_body() -> None:
    status = compile_template_selector("${integration.response.statuscode}")
    assert status.key(status_code=200) == "200"
    mixed = compile_template_selector("${request.body.kind}-$integration.response.header.Content-Type")
    assert mixed.key({"kind": "a"}, 200, {"content-type": ["text/plain"]}) == "a-text/plain"
    multi = compile_template_selector("${integration.response.multivalueheader.X}")
    assert multi.key(headers={"x": ["1", "2"]}) == "1,2"


def test_static_template_selection_expression() -> None:
    assert compile_template_selector("\\$default").key() == "$default"
    assert compile_template_selector("json").key() == "json"


def test_empty_selection_result_means_default() -> None:
    assert compile_template_selector("${request.body.kind}").key({"other": 1}) is None


def test_bad_template_selection_expression_is_named() -> None:
    with pytest.raises(SelectionError, match="templateSelectionExpression"):
        compile_template_selector("$request.header.x")
    with pytest.raises(SelectionError):
        compile_template_selector("")
