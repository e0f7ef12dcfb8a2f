"""Payload 2.0 events, Lambda results, CORS and the `http:` config, with plain values and AWS fixtures."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import api_from, write_config
from wsgw import cli
from wsgw.aws.proxy_result import InvalidIntegrationResult
from wsgw.errors import ConfigError
from wsgw.headers import Headers
from wsgw.request import HttpRequest
from wsgw.rest.cors import parse_cors, strip_cors
from wsgw.rest.events import http_event, parse_query, read_http_result

FIXTURES = Path(__file__).parent / "fixtures" / "aws"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def build(headers: list[tuple[str, str]], body: bytes = b"", query: str = "", path: str = "/dev/my/path",
          **kwargs: Any) -> dict[str, Any]:
    request = HttpRequest("POST", path, query, Headers(headers), body, "192.168.0.1")
    options: dict[str, Any] = {"route_key": "$default", "path_parameters": {}, "query": parse_query(query),
                               "stage": "dev", "stage_variables": None, "api_id": "wsgwlocal0",
                               "account_id": "000000000000", "request_id": "abc=", "now_ms": 1583348638390}
    options.update(kwargs)
    return http_event(request, **options)


def test_event_has_the_field_set_of_the_aws_example() -> None:
    aws = fixture("http_api_v2.json")
    ours = build([("Host", "id.example"), ("Header1", "value1"), ("Header2", "value1"), ("Header2", "value2"),
                  ("Cookie", "cookie1; cookie2"), ("User-Agent", "agent"), ("Content-Type", "application/json")],
                 b'{"message": "hello world"}', "parameter1=value1&parameter1=value2&parameter2=value",
                 path_parameters={"parameter1": "value1"}, stage_variables={"stageVariable1": "value1"},
                 authorizer={"jwt": {"claims": {}, "scopes": []}})
    assert set(ours) == set(aws)
    assert set(ours["requestContext"]) == set(aws["requestContext"]) - {"authentication"}   # mTLS only
    assert set(ours["requestContext"]["http"]) == set(aws["requestContext"]["http"])
    assert ours["version"] == "2.0"
    assert ours["cookies"] == aws["cookies"]
    assert ours["queryStringParameters"] == aws["queryStringParameters"]
    assert ours["headers"]["header2"] == aws["headers"]["header2"] == "value1,value2"
    assert ours["rawQueryString"] == aws["rawQueryString"]
    # AWS's example pairs timeEpoch 1583348638390 (4 Mar 2020) with "12/Mar/2020": only the format can match
    assert ours["requestContext"]["time"] == "04/Mar/2020:19:03:58 +0000"
    assert ours["requestContext"]["time"][2:] == aws["requestContext"]["time"][2:]
    assert ours["requestContext"]["timeEpoch"] == aws["requestContext"]["timeEpoch"]


def test_authorizer_input_fields_are_a_subset_of_the_aws_authorizer_event() -> None:
    aws = fixture("http_api_v2_authorizer_request.json")
    ours = build([("Authorization", "value")], path_parameters={"parameter1": "value1"})
    assert set(ours) - {"isBase64Encoded"} <= set(aws)


def test_event_keeps_the_stage_in_raw_path_lowercases_headers_and_omits_empty_parts() -> None:
    event = build([("X-Thing", "A")], path="/dev/rooms/the%20lobby")
    assert event["rawPath"] == "/dev/rooms/the%20lobby"
    assert event["requestContext"]["http"]["path"] == "/dev/rooms/the lobby"
    assert event["headers"] == {"x-thing": "A", "x-forwarded-for": "192.168.0.1"}
    for absent in ("cookies", "queryStringParameters", "pathParameters", "stageVariables", "body"):
        assert absent not in event
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(("content_type", "body", "as_base64"), [
    ("application/json", b'{"a": 1}', False),
    ("text/plain; charset=utf-8", "héllo".encode(), False),
    ("application/vnd.api+json", b"{}", False),
    ("application/octet-stream", b"\x00\xff", True),
    ("application/x-www-form-urlencoded", b"a=1&b=2", True),
    ("text/plain", b"\xff\xfe not utf-8", True),
    (None, b"plain", False),
])
def test_binary_and_form_bodies_arrive_base64_encoded(content_type: str | None, body: bytes, as_base64: bool) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    event = build(headers, body)
    assert event["isBase64Encoded"] is as_base64
    decoded = base64.b64decode(event["body"]) if as_base64 else event["body"].encode()
    assert decoded == body


def test_forwarded_for_is_appended_as_a_proxy_does() -> None:
    event = build([("X-Forwarded-For", "10.0.0.1")])
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1, 192.168.0.1"


# ----- results -------------------------------------------------------------------------------------


def test_bare_string_and_dict_results_become_200_json_as_aws_documents() -> None:
    text = read_http_result("Hello from Lambda!")
    assert (text.status, text.body) == (200, b"Hello from Lambda!")
    assert text.headers == [("Content-Type", "application/json")]
    obj = read_http_result({"message": "Hello from Lambda!"})
    assert obj.status == 200 and json.loads(obj.body) == {"message": "Hello from Lambda!"}
    assert read_http_result(None).body == b"null"
    assert read_http_result([1, 2]).body == b"[1,2]"


def test_full_response_carries_status_headers_cookies_and_base64_body() -> None:
    result = read_http_result({"statusCode": 302, "headers": {"Location": "/x", "X-N": 5},
                               "multiValueHeaders": {"X-M": ["a", "b"]}, "cookies": ["a=1", "b=2"],
                               "body": base64.b64encode(b"\x00bin").decode(), "isBase64Encoded": True})
    assert result.status == 302
    assert result.headers == [("Location", "/x"), ("X-N", "5"), ("X-M", "a"), ("X-M", "b"),
                              ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert result.body == b"\x00bin"
    assert read_http_result({"statusCode": 200, "body": {"k": 1}}).body == b'{"k":1}'


@pytest.mark.parametrize("bad", [
    {"statusCode": "teapot"}, {"statusCode": 99}, {"statusCode": 200, "headers": ["x"]},
    {"statusCode": 200, "cookies": "a=1"}, {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
    {"statusCode": 200, "headers": {"X": "a\r\nSet-Cookie: evil=1"}}, {"statusCode": 200, "headers": {"A:B": "1"}},
    {"statusCode": 200, "isBase64Encoded": "yes"}, {"statusCode": 200, "multiValueHeaders": {"X": "a"}},
    {"body": object()},
])
def test_malformed_results_are_refused_naming_the_field(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidIntegrationResult):
        read_http_result(bad)


# ----- CORS ----------------------------------------------------------------------------------------


def test_cors_preflight_and_response_headers() -> None:
    cors, problems = parse_cors({"allowOrigins": ["https://app.example", "https://*.corp.example"],
                                 "allowMethods": ["get", "POST"], "allowHeaders": ["content-type"],
                                 "exposeHeaders": ["x-total"], "maxAge": 60, "allowCredentials": True})
    assert not problems and cors is not None
    headers = dict(cors.preflight_headers("https://app.example", "content-type"))
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Max-Age"] == "60"
    assert dict(cors.response_headers("https://a.corp.example"))["Access-Control-Expose-Headers"] == "x-total"
    assert cors.preflight_headers("https://evil.example", None) == []
    assert cors.response_headers("https://corp.example.evil") == []
    assert cors.response_headers(None) == []
    assert strip_cors([("Access-Control-Allow-Origin", "*"), ("X", "1")]) == [("X", "1")]


def test_wildcard_origin_answers_star() -> None:
    cors, _ = parse_cors({"allowOrigins": ["*"]})
    assert cors is not None and dict(cors.response_headers("https://any.example"))["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(("raw", "key"), [
    ({"allowOrigins": "*", "allowCredentials": True}, "http.cors.allowOrigins"),
    ({"maxAge": "long"}, "http.cors.maxAge"),
    ({"allowMethods": ["FETCH"]}, "http.cors.allowMethods"),
    ({"allowOrigin": ["*"]}, "http.cors.allowOrigin"),
    ({"allowHeaders": [1]}, "http.cors.allowHeaders"),
    ("yes", "http.cors"),
])
def test_cors_config_problems_name_the_key(raw: Any, key: str) -> None:
    _, problems = parse_cors(raw)
    assert key in [p.key for p in problems]


# ----- http: config --------------------------------------------------------------------------------


BAD_HTTP: dict[str, Any] = {"http": {
    "routes": {
        "GET rooms": {"handler": "testapp:ok"},
        "GET /rooms": {"handler": "not a handler"},
        "POST /rooms": {"handler": "testapp:ok", "authorizer": "nobody"},
        "PUT /rooms": {"handler": "testapp:ok", "requestSchema": {"type": "objekt"}},
        "DELETE /rooms": {"handler": "testapp:ok", "timeoutMs": 31000, "colour": "red"},
    },
    "cors": {"maxAge": -5},
    "extra": 1,
}}


def test_http_config_problems_are_all_reported_with_their_keys_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        api_from(BAD_HTTP)
    keys = {p.key for p in info.value.problems}
    assert keys == {"http.routes.GET rooms", "http.routes.GET /rooms.handler", "http.routes.POST /rooms.authorizer",
                    "http.routes.PUT /rooms.requestSchema", "http.routes.DELETE /rooms.handler.timeoutMs",
                    "http.routes.DELETE /rooms.colour", "http.cors.maxAge", "http.extra"}


def test_wsgw_check_reports_http_problems_and_missing_handlers(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "wsgw.yaml", BAD_HTTP)
    assert cli.main(["check", "-c", str(config)]) == 2
    assert "http.routes.GET /rooms.handler:" in capsys.readouterr().err
    missing = write_config(tmp_path / "missing.yaml", {"http": {"routes": {"GET /x": {"handler": "nowhere:fn"}}}})
    assert cli.main(["check", "-c", str(missing)]) == 2
    assert "http.routes.GET /x.handler: cannot import module 'nowhere'" in capsys.readouterr().err


def test_example_wsgw_yaml_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent
    assert cli.main(["check", "-c", str(root / "wsgw.yaml")]) == 0
    assert "2 HTTP routes" in capsys.readouterr().out
