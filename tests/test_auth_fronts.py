"""Which front a request came from is its type: each front's authorizer shapes, with plain values."""

from __future__ import annotations

import pytest

from wsgw.authorizers import Front, RestAuthRequest, WebSocketAuthRequest
from wsgw.aws.policy import AuthorizerResponseError
from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.headers import Headers

INFO = ConnectionInfo("conn=", 1_000, "10.0.0.1", "agent", "api.example", "dev", "wsgwlocal0")
ARN = "arn:aws:execute-api:us-east-1:000000000000:wsgwlocal0/dev/"
POLICY = {"principalId": "ada", "context": {"tier": "gold"},
          "policyDocument": {"Version": "2012-10-17", "Statement": [
              {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN + "*"}]}}
REST_EVENT: dict[str, object] = {
    "version": "2.0", "routeKey": "GET /rooms", "rawPath": "/dev/rooms", "body": "secret", "isBase64Encoded": False,
    "headers": {"x-key": "k"}, "requestContext": {"http": {"method": "GET", "sourceIp": "10.0.0.1"}}}


def websocket(offered: list[str] | None = None) -> WebSocketAuthRequest:
    return WebSocketAuthRequest(INFO, Headers([("X-Key", "k")]), [("room", "1")], {"env": "test"}, "req=", 2_000,
                                "$connect", ARN + "$connect", offered or [])


def rest() -> RestAuthRequest:
    return RestAuthRequest(INFO, Headers([("X-Key", "k")]), [("room", "1")], {}, "req=", 2_000, "GET /rooms",
                           ARN + "GET/rooms", dict(REST_EVENT))


def test_each_request_type_names_its_front_and_the_fronts_differ() -> None:
    assert websocket().front is Front.WEBSOCKET and rest().front is Front.REST
    assert Front.WEBSOCKET.value != Front.REST.value


def test_only_a_handshake_offers_subprotocols() -> None:
    assert websocket(["chat", "token"]).subprotocols == ["chat", "token"]
    assert rest().subprotocols == []


def test_context_identity_sources_read_the_connect_context_or_the_http_events_request_context() -> None:
    ws = websocket().request_context()
    assert ws["eventType"] == "CONNECT" and ws["connectionId"] == "conn=" and ws["requestTimeEpoch"] == 2_000
    assert ws["identity"] == {"sourceIp": "10.0.0.1", "userAgent": "agent"}
    assert rest().request_context() == REST_EVENT["requestContext"]


def test_the_request_authorizer_event_is_the_websocket_one_or_the_http_api_2_0_one() -> None:
    ws = websocket().lambda_event(["k"])
    assert ws["type"] == "REQUEST" and ws["methodArn"] == ARN + "$connect" and "routeArn" not in ws
    assert ws["queryStringParameters"] == {"room": "1"} and ws["stageVariables"] == {"env": "test"}
    http = rest().lambda_event(["k"])
    assert http["version"] == "2.0" and http["type"] == "REQUEST" and http["routeArn"] == ARN + "GET/rooms"
    assert http["identitySource"] == ["k"] and http["rawPath"] == "/dev/rooms"
    assert "body" not in http and "isBase64Encoded" not in http


def test_only_the_rest_front_reads_a_simple_response() -> None:
    simple = {"isAuthorized": True, "context": {"tier": "gold"}}
    decision = rest().read_decision(simple)
    assert decision.simple
    with pytest.raises(AuthorizerResponseError):
        websocket().read_decision(simple)


def test_an_allowing_decision_is_shaped_flat_for_websocket_and_under_lambda_for_rest() -> None:
    ws, http = websocket(), rest()
    assert ws.lambda_context(ws.read_decision(POLICY), 7) == {"principalId": "ada", "tier": "gold",
                                                              "integrationLatency": 7}
    assert http.lambda_context(http.read_decision(POLICY), 7) == {"lambda": {"tier": "gold"}}


def test_a_simple_decision_can_never_authorize_a_websocket() -> None:
    simple = rest().read_decision({"isAuthorized": True})
    assert websocket().lambda_context(simple, 0) is None
    assert rest().lambda_context(simple, 0) == {"lambda": {}}


def test_a_valid_jwt_is_shaped_with_principal_and_latency_for_websocket_and_under_jwt_for_rest() -> None:
    claims: dict[str, object] = {"claims": {"sub": "ada"}, "scopes": ["read"]}
    assert websocket().jwt_context("ada", claims, 3) == {"principalId": "ada", "jwt": claims,
                                                          "integrationLatency": 3}
    assert websocket().jwt_context(42, claims, 3)["principalId"] is None     # a non-string sub is no principal
    assert rest().jwt_context("ada", claims, 3) == {"jwt": claims}
