"""AWS-shaped events, ids, error frames, the Lambda context and integration results."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from wsgw.aws import ids
from wsgw.aws.ids import method_arn, new_id, request_time
from wsgw.aws.lambda_context import LambdaContext
from wsgw.aws.proxy_result import IntegrationResult, InvalidIntegrationResult, read_integration_result
from wsgw.aws.websocket_events import (
    ConnectionInfo,
    authorizer_request_event,
    connect_event,
    disconnect_event,
    error_frame,
    message_event,
)

FIXTURES = Path(__file__).parent / "fixtures" / "aws"
NOW = 1_705_751_700_123  # 20/Jan/2024:11:55:00.123 UTC


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def key_tree(value: object) -> object:
    """The nested key structure of a JSON value; leaves become None."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    return None


def conn(**changes: Any) -> ConnectionInfo:
    info = ConnectionInfo(
        connection_id="BFaT_fALIAMCKug=",
        connected_at_ms=NOW - 5000,
        source_ip="203.0.113.9",
        user_agent=None,
        domain_name="127.0.0.1:8080",
        stage="prod",
        api_id="wsgwlocal",
    )
    return dataclasses.replace(info, **changes)


HANDSHAKE = [
    ("Host", "127.0.0.1:8080"),
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ("Sec-WebSocket-Key", "+W5xw47OHh3OTFsWKjGu9Q=="),
    ("Sec-WebSocket-Version", "13"),
]


# ---------------------------------------------------------------- ids, times, ARNs


def test_new_id_has_the_aws_shape() -> None:
    ids = {new_id() for _ in range(500)}
    assert len(ids) == 500
    for value in ids:
        assert len(value) == 16
        assert value.endswith("=")
        assert re.fullmatch(r"[A-Za-z0-9_-]{15}=", value)
        assert len(base64.urlsafe_b64decode(value)) == 11


def test_ids_drawn_in_blocks_are_the_base64_of_11_random_bytes_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block of ids is exactly what encoding each id's own 11 bytes would give (the 15th character carries
    4 random bits and 2 zero bits, as AWS's 11-byte ids do), however the block's bytes fall."""
    source = random.Random(19)
    drawn: list[bytes] = []

    def urandom(size: int) -> bytes:
        block = source.randbytes(size)
        drawn.append(block)
        return block

    monkeypatch.setattr(os, "urandom", urandom)
    block = ids._draw_ids(300)
    expected = [base64.urlsafe_b64encode(drawn[0][i:i + 11]).decode() for i in range(0, 12 * 300, 12)]
    assert block == expected
    assert {value[14] for value in block} <= set("AEIMQUYcgkosw048")


def test_100k_ids_are_unique_and_shaped_like_aws_ids() -> None:
    values = [new_id() for _ in range(100_000)]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{14}[AEIMQUYcgkosw048]=", value) for value in values)


def test_request_time_matches_aws_format() -> None:
    assert request_time(NOW) == "20/Jan/2024:11:55:00 +0000"
    assert request_time(1_731_324_924_561) == "11/Nov/2024:11:35:24 +0000"


def test_request_time_of_consecutive_seconds_differs() -> None:
    assert request_time(NOW) != request_time(NOW + 1000)
    assert request_time(NOW + 876) == request_time(NOW - 123)


def test_request_time_pads_single_digit_days() -> None:
    assert request_time(1_704_164_645_000) == "02/Jan/2024:03:04:05 +0000"


def test_method_arn_for_connect() -> None:
    arn = method_arn("us-east-1", "123456789012", "abcdef123", "default", "$connect")
    assert arn == "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect"


# ---------------------------------------------------------------- $connect


def test_connect_event_has_the_same_keys_as_aws_fixture() -> None:
    event = connect_event(conn(), HANDSHAKE, [], None, "BFHPhFe3IAMF95g=", NOW)
    expected = fixture("websocket_connect.json")
    assert set(event) == set(expected)
    assert key_tree(event["requestContext"]) == key_tree(expected["requestContext"])


def test_connect_event_values() -> None:
    event = connect_event(conn(), HANDSHAKE, [], None, "REQ", NOW)
    ctx = event["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["routeKey"] == "$connect"
    assert ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN"
    assert ctx["requestId"] == ctx["extendedRequestId"] == "REQ"
    assert ctx["connectedAt"] == NOW - 5000
    assert ctx["requestTimeEpoch"] == NOW
    assert ctx["requestTime"] == "20/Jan/2024:11:55:00 +0000"
    assert ctx["domainName"] == "127.0.0.1:8080"
    assert ctx["connectionId"] == "BFaT_fALIAMCKug="
    assert ctx["apiId"] == "wsgwlocal"
    assert ctx["stage"] == "prod"
    assert ctx["identity"] == {"sourceIp": "203.0.113.9"}
    assert event["isBase64Encoded"] is False


def test_connect_event_keeps_header_spelling_and_drops_hop_by_hop_headers() -> None:
    event = connect_event(conn(), HANDSHAKE, [], None, "REQ", NOW)
    headers = event["headers"]
    assert isinstance(headers, dict)
    assert headers["Sec-WebSocket-Key"] == "+W5xw47OHh3OTFsWKjGu9Q=="
    assert headers["Host"] == "127.0.0.1:8080"
    assert "Connection" not in headers
    assert "Upgrade" not in headers
    assert event["multiValueHeaders"] == {k: [v] for k, v in headers.items()}


def test_connect_event_adds_the_client_address_to_x_forwarded_for() -> None:
    event = connect_event(conn(), HANDSHAKE, [], None, "REQ", NOW)
    assert event["headers"]["X-Forwarded-For"] == "203.0.113.9"  # type: ignore[index]
    proxied = connect_event(conn(), [*HANDSHAKE, ("x-forwarded-for", "198.51.100.1")], [], None, "R", NOW)
    assert proxied["headers"]["x-forwarded-for"] == "198.51.100.1, 203.0.113.9"  # type: ignore[index]


def test_repeated_header_keeps_last_value_in_headers_and_all_in_multi_value_headers() -> None:
    headers = [*HANDSHAKE, ("X-Tag", "a"), ("x-tag", "b"), ("X-Tag", "c")]
    event = connect_event(conn(), headers, [], None, "REQ", NOW)
    assert event["headers"]["X-Tag"] == "c"  # type: ignore[index]
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b", "c"]  # type: ignore[index]
    assert "x-tag" not in event["headers"]  # type: ignore[operator]


def test_connect_event_without_query_has_no_query_fields() -> None:
    event = connect_event(conn(), HANDSHAKE, [], None, "REQ", NOW)
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event


def test_connect_event_query_keeps_last_value_and_all_values() -> None:
    query = [("token", "abc"), ("room", "1"), ("room", "2")]
    event = connect_event(conn(), HANDSHAKE, query, None, "REQ", NOW)
    assert event["queryStringParameters"] == {"token": "abc", "room": "2"}
    assert event["multiValueQueryStringParameters"] == {"token": ["abc"], "room": ["1", "2"]}


def test_connect_event_carries_stage_variables_only_when_set() -> None:
    assert "stageVariables" not in connect_event(conn(), HANDSHAKE, [], None, "R", NOW)
    assert "stageVariables" not in connect_event(conn(), HANDSHAKE, [], {}, "R", NOW)
    event = connect_event(conn(), HANDSHAKE, [], {"room": "lobby"}, "R", NOW)
    assert event["stageVariables"] == {"room": "lobby"}


def test_user_agent_appears_in_identity_when_the_client_sent_one() -> None:
    event = connect_event(conn(user_agent="Mozilla/5.0"), HANDSHAKE, [], None, "R", NOW)
    assert event["requestContext"]["identity"] == {  # type: ignore[index]
        "sourceIp": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
    }


def test_authorizer_context_goes_to_request_context() -> None:
    auth = {"principalId": "user-1", "plan": "pro", "integrationLatency": 12}
    event = connect_event(conn(authorizer=auth), HANDSHAKE, [], None, "R", NOW)
    assert event["requestContext"]["authorizer"] == auth  # type: ignore[index]
    event["requestContext"]["authorizer"]["plan"] = "free"  # type: ignore[index]
    assert auth["plan"] == "pro"  # a handler's change does not leak into later events


def test_connect_event_is_json_serialisable() -> None:
    event = connect_event(conn(user_agent="ua"), HANDSHAKE, [("q", "1")], {"a": "b"}, "R", NOW)
    assert orjson.loads(orjson.dumps(event)) == event


# ---------------------------------------------------------------- MESSAGE


def test_message_event_has_the_same_keys_as_aws_fixture() -> None:
    event = message_event(conn(), "chat", '{"action": "chat"}', False, None, "REQ", "MSG", NOW)
    expected = fixture("websocket_message.json")
    assert set(event) == set(expected)
    assert key_tree(event["requestContext"]) == key_tree(expected["requestContext"])


def test_message_event_has_no_headers_or_query() -> None:
    event = message_event(conn(), "chat", "{}", False, {"a": "b"}, "REQ", "MSG", NOW)
    absent = {"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters"}
    assert not absent & set(event)


def test_message_event_values() -> None:
    event = message_event(conn(), "$default", "aGk=", True, {"room": "lobby"}, "REQ", "MSG", NOW)
    ctx = event["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["routeKey"] == "$default"
    assert ctx["eventType"] == "MESSAGE"
    assert ctx["messageId"] == "MSG"
    assert ctx["requestId"] == "REQ"
    assert event["body"] == "aGk="
    assert event["isBase64Encoded"] is True
    assert event["stageVariables"] == {"room": "lobby"}


def test_message_events_do_not_share_mutable_parts() -> None:
    c = conn(authorizer={"principalId": "u"})
    first = message_event(c, "a", "1", False, None, "R1", "M1", NOW)
    second = message_event(c, "a", "2", False, None, "R2", "M2", NOW)
    first["requestContext"]["identity"]["sourceIp"] = "x"  # type: ignore[index]
    first["requestContext"]["authorizer"]["principalId"] = "x"  # type: ignore[index]
    assert second["requestContext"]["identity"]["sourceIp"] == "203.0.113.9"  # type: ignore[index]
    assert second["requestContext"]["authorizer"]["principalId"] == "u"  # type: ignore[index]


# ---------------------------------------------------------------- $disconnect


def test_disconnect_event_has_the_same_keys_as_aws_fixture() -> None:
    event = disconnect_event(conn(), 1005, "Client-side close frame status not set", None, "REQ", NOW)
    expected = fixture("websocket_disconnect.json")
    assert set(event) == set(expected)
    assert key_tree(event["requestContext"]) == key_tree(expected["requestContext"])


def test_disconnect_event_has_aws_fixed_headers() -> None:
    event = disconnect_event(conn(), 1000, "Connection Closed Normally", None, "REQ", NOW)
    expected = fixture("websocket_disconnect.json")
    assert event["headers"] == {**expected["headers"], "Host": "127.0.0.1:8080"}
    assert event["multiValueHeaders"] == {**expected["multiValueHeaders"], "Host": ["127.0.0.1:8080"]}


def test_disconnect_event_carries_close_code_and_reason() -> None:
    event = disconnect_event(conn(), 1001, "Going away", None, "REQ", NOW)
    ctx = event["requestContext"]
    assert isinstance(ctx, dict)
    assert ctx["routeKey"] == "$disconnect"
    assert ctx["eventType"] == "DISCONNECT"
    assert ctx["disconnectStatusCode"] == 1001
    assert ctx["disconnectReason"] == "Going away"
    assert event["isBase64Encoded"] is False


# ---------------------------------------------------------------- REQUEST authorizer


def test_authorizer_event_has_the_same_keys_as_aws_fixture() -> None:
    arn = method_arn("us-east-1", "000000000000", "wsgwlocal", "prod", "$connect")
    event = authorizer_request_event(conn(), arn, HANDSHAKE, [], None, "REQ", NOW)
    expected = fixture("websocket_authorizer_request.json")
    assert set(event) == set(expected)
    assert key_tree(event["requestContext"]) == key_tree(expected["requestContext"])


def test_authorizer_event_values() -> None:
    arn = method_arn("us-east-1", "000000000000", "wsgwlocal", "prod", "$connect")
    headers = [*HANDSHAKE, ("Authorization", "Bearer t")]
    event = authorizer_request_event(conn(), arn, headers, [("token", "t")], {"env": "dev"}, "REQ", NOW)
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == arn
    assert event["headers"]["Authorization"] == "Bearer t"  # type: ignore[index]
    assert event["headers"]["Connection"] == "Upgrade"  # type: ignore[index]
    assert event["queryStringParameters"] == {"token": "t"}
    assert event["multiValueQueryStringParameters"] == {"token": ["t"]}
    assert event["stageVariables"] == {"env": "dev"}
    assert event["requestContext"]["eventType"] == "CONNECT"  # type: ignore[index]


def test_authorizer_event_has_empty_maps_when_nothing_was_sent() -> None:
    event = authorizer_request_event(conn(), "arn", HANDSHAKE, [], None, "REQ", NOW)
    assert event["queryStringParameters"] == {}
    assert event["multiValueQueryStringParameters"] == {}
    assert event["stageVariables"] == {}


def test_authorizer_event_never_contains_an_earlier_authorizer_result() -> None:
    authorized = conn(authorizer={"principalId": "u"})
    event = authorizer_request_event(authorized, "arn", HANDSHAKE, [], None, "R", NOW)
    assert "authorizer" not in event["requestContext"]  # type: ignore[operator]


# ---------------------------------------------------------------- error frames


def test_forbidden_frame_is_byte_exact() -> None:
    assert error_frame("Forbidden", "abc=", "xyz=") == (
        b'{"message": "Forbidden", "connectionId":"abc=", "requestId":"xyz="}'
    )


def test_internal_error_frame_is_byte_exact() -> None:
    frame = error_frame("Internal server error", "ZmDx-dJ4FiACFkQ=", "ZmDyDGyFliAFhVQ=")
    assert frame == (
        b'{"message": "Internal server error", "connectionId":"ZmDx-dJ4FiACFkQ=", '
        b'"requestId":"ZmDyDGyFliAFhVQ="}'
    )


def test_error_frame_escapes_its_values() -> None:
    frame = error_frame('say "hi"\n', 'a"b', "é")
    assert orjson.loads(frame) == {"message": 'say "hi"\n', "connectionId": 'a"b', "requestId": "é"}


# ---------------------------------------------------------------- Lambda context


def test_lambda_context_attributes_match_the_python_runtime() -> None:
    ctx = LambdaContext(
        "chat", "req-1", 3000, region="eu-west-1", account_id="123456789012", memory_limit_in_mb=256
    )
    assert ctx.function_name == "chat"
    assert ctx.function_version == "$LATEST"
    assert ctx.invoked_function_arn == "arn:aws:lambda:eu-west-1:123456789012:function:chat"
    assert ctx.memory_limit_in_mb == "256"
    assert ctx.aws_request_id == "req-1"
    assert ctx.log_group_name == "/aws/lambda/chat"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", ctx.log_stream_name)
    assert ctx.client_context is None
    assert ctx.identity.cognito_identity_id is None
    assert ctx.identity.cognito_identity_pool_id is None
    assert "aws_request_id=req-1" in repr(ctx)


def test_lambda_context_has_no_instance_dict() -> None:
    ctx = LambdaContext("f", "r", 1000)
    with pytest.raises(AttributeError):
        ctx.surprise = 1  # type: ignore[attr-defined]


def test_remaining_time_counts_down_and_stops_at_zero() -> None:
    ctx = LambdaContext("f", "r", 29_000)
    first = ctx.get_remaining_time_in_millis()
    assert 28_000 < first <= 29_000
    time.sleep(0.02)
    assert ctx.get_remaining_time_in_millis() < first
    assert LambdaContext("f", "r", 0).get_remaining_time_in_millis() == 0


def test_context_log_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    LambdaContext("f", "r", 1000).log("hello")
    assert capsys.readouterr().out == "hello"


# ---------------------------------------------------------------- integration results


def test_none_result_is_200_without_body() -> None:
    assert read_integration_result(None) == IntegrationResult(200, None, {}, False)


def test_proxy_result_is_read_field_by_field() -> None:
    result = read_integration_result(
        {"statusCode": 201, "body": "made", "headers": {"X-A": "1"}, "isBase64Encoded": False}
    )
    assert result == IntegrationResult(201, "made", {"X-A": "1"}, False)


def test_status_code_may_be_a_numeric_string() -> None:
    assert read_integration_result({"statusCode": "403"}).status_code == 403


def test_missing_status_code_defaults_to_200() -> None:
    assert read_integration_result({"body": "x"}) == IntegrationResult(200, "x", {})


@pytest.mark.parametrize("status", [99, 100, 101, 199, "150", 600, -1, "abc", "", True, 1.5, None.__class__, [200]])
def test_bad_status_code_is_rejected_naming_the_field(status: object) -> None:
    with pytest.raises(InvalidIntegrationResult, match="statusCode"):
        read_integration_result({"statusCode": status})


def test_non_string_body_is_json_encoded() -> None:
    assert read_integration_result({"statusCode": 200, "body": {"a": [1, True]}}).body == '{"a":[1,true]}'


def test_body_that_cannot_be_json_encoded_is_rejected_naming_the_field() -> None:
    with pytest.raises(InvalidIntegrationResult, match="body"):
        read_integration_result({"statusCode": 200, "body": object()})


def test_unknown_keys_make_a_malformed_proxy_result() -> None:
    # Seen on AWS (middyjs/middy#1219): {"ConnectionId", "Data", "statusCode"} -> Internal server error.
    with pytest.raises(InvalidIntegrationResult, match="'Data'"):
        read_integration_result({"ConnectionId": "x", "Data": "hi", "statusCode": 200})


def test_plain_dict_without_proxy_keys_is_malformed() -> None:
    with pytest.raises(InvalidIntegrationResult, match="'action'"):
        read_integration_result({"action": "pong"})


def test_header_values_become_text() -> None:
    result = read_integration_result({"headers": {"X-N": 5, "X-B": True, "X-F": 1.5}})
    assert result.headers == {"X-N": "5", "X-B": "true", "X-F": "1.5"}


def test_nested_header_value_is_rejected() -> None:
    with pytest.raises(InvalidIntegrationResult, match="headers"):
        read_integration_result({"headers": {"X-A": {"b": 1}}})


def test_headers_must_be_an_object() -> None:
    with pytest.raises(InvalidIntegrationResult, match="headers"):
        read_integration_result({"headers": ["X-A"]})


def test_multi_value_headers_are_joined_and_win_over_headers() -> None:
    result = read_integration_result(
        {"headers": {"X-A": "single", "X-B": "b"}, "multiValueHeaders": {"X-A": ["1", "2"]}}
    )
    assert result.headers == {"X-A": "1, 2", "X-B": "b"}


def test_multi_value_headers_need_lists() -> None:
    with pytest.raises(InvalidIntegrationResult, match="multiValueHeaders"):
        read_integration_result({"multiValueHeaders": {"X-A": "1"}})


def test_base64_flag_is_read() -> None:
    assert read_integration_result({"body": "aGk=", "isBase64Encoded": True}).is_base64 is True
    assert read_integration_result({"body": "aGk=", "isBase64Encoded": "true"}).is_base64 is True


def test_bad_base64_flag_is_rejected() -> None:
    with pytest.raises(InvalidIntegrationResult, match="isBase64Encoded"):
        read_integration_result({"isBase64Encoded": "yes"})


def test_bare_string_result_is_the_body() -> None:
    assert read_integration_result("hello") == IntegrationResult(200, "hello", {})


@pytest.mark.parametrize(
    ("value", "body"),
    [([1, 2], "[1,2]"), (42, "42"), (True, "true"), (datetime.date(2024, 1, 20), '"2024-01-20"')],
)
def test_other_json_values_become_a_json_body(value: object, body: str) -> None:
    assert read_integration_result(value) == IntegrationResult(200, body, {})


@pytest.mark.parametrize("value", [object(), b"raw", {1, 2}])
def test_unencodable_result_is_rejected(value: object) -> None:
    with pytest.raises(InvalidIntegrationResult):
        read_integration_result(value)


def test_invalid_result_is_a_value_error() -> None:
    assert issubclass(InvalidIntegrationResult, ValueError)
