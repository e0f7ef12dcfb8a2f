"""Parameter mapping on the REST front over real HTTP: `requestParameters` change what the integration sees (a
Python handler's event; a real backend behind the http integration), `responseParameters` what the client
gets, per status code; bad mappings are refused by key at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import cacheapp
import pytest

from tests.backends import backend
from tests.helpers import api_from, serve
from wsgw.config import load_api
from wsgw.errors import ConfigError
from wsgw.loaders import load_document

REQUEST_PARAMETERS = {
    "overwrite:header.x-team": "$request.header.x-team-override",
    "append:header.x-request": "${context.requestId}/${stageVariables.env}",
    "remove:header.x-secret": "''",
    "append:querystring.from": "$request.body.user.name",
    "remove:querystring.drop": "",
    "overwrite:path": "/mapped/${request.path.id}",
}


def api(routes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"stage": "dev", "stageVariables": {"env": "test"}, "routes": {"$default": {"handler": "testapp:ok"}},
            "http": {"routes": routes}, **extra}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    cacheapp.reset()


async def test_a_handler_sees_the_mapped_request() -> None:
    raw = api({"POST /items/{id}": {"handler": "cacheapp:counted", "requestParameters": REQUEST_PARAMETERS}})
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server.port}/dev/items/9?keep=1&drop=2",
                                headers={"X-Team": "blue", "X-Team-Override": "red", "X-Secret": "s"},
                                json={"user": {"name": "ada"}}) as response:
            assert response.status == 200
        event = cacheapp.CALLS[-1]
        headers = event["headers"]
        assert headers["x-team"] == "red" and "x-secret" not in headers
        request_id = event["requestContext"]["requestId"]
        assert headers["x-request"] == f"{request_id}/test"
        assert event["queryStringParameters"] == {"keep": "1", "from": "ada"}
        assert event["rawQueryString"] == "keep=1&from=ada"
        assert event["rawPath"] == "/dev/mapped/9" and event["requestContext"]["http"]["path"] == "/dev/mapped/9"
        assert event["pathParameters"] == {"id": "9"}


async def test_the_http_integration_forwards_the_mapped_request_as_http_proxy_does() -> None:
    async with backend() as b:
        mapping = {**REQUEST_PARAMETERS, "overwrite:path": "/raw/mapped/${request.path.id}"}
        raw = api({"POST /items/{id}": {"integration": {"type": "http", "uri": f"{b.url}/raw/echo"},
                                        "requestParameters": mapping}})
        headers = {"X-Team": "blue", "X-Team-Override": "red", "X-Secret": "s", "X-Authorizer-Principal-Id": "forged"}
        async with serve(raw) as server, aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{server.port}/dev/items/9?keep=1&drop=2", headers=headers,
                json={"user": {"name": "ada lovelace"}}) as response:
            assert response.status == 200
            assert json.loads(await response.read()) == {"user": {"name": "ada lovelace"}}
        seen = b.seen[-1]
        assert seen.path == "/raw/mapped/9"
        assert seen.query == "keep=1&from=ada%20lovelace"
        assert seen.headers["x-team"] == "red" and "x-secret" not in seen.headers
        assert seen.headers["x-request"].endswith("/test") and seen.headers["x-team-override"] == "red"
        assert "X-Authorizer-Principal-Id" not in seen.headers          # a client never forges identity headers
        assert seen.headers["X-Route-Key"] == "POST /items/{id}"


async def test_response_parameters_change_the_answer_by_status() -> None:
    raw = api({"GET /status": {"handler": "cacheapp:status", "responseParameters": {
        "500": {"overwrite:statuscode": "403", "append:header.x-request": "$context.requestId"},
        "404": {"overwrite:header.x-env": "$stageVariables.env", "remove:header.x-backend-id": ""},
        "200": {"overwrite:header.x-backend-seen": "$response.header.x-backend-id",
                "overwrite:header.x-seq": "$response.body.seq"}}}})
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev/status"
        async with session.get(f"{base}?code=500") as response:
            assert response.status == 403
            assert response.headers["x-request"] == response.headers["apigw-requestid"]
        async with session.get(f"{base}?code=404") as response:
            assert response.status == 404 and response.headers["x-env"] == "test"
            assert "x-backend-id" not in response.headers
        async with session.get(f"{base}?code=200") as response:
            body = json.loads(await response.read())
            assert response.headers["x-backend-seen"] == "b-7" and response.headers["x-seq"] == str(body["seq"])
        async with session.get(f"{base}?code=201") as response:
            assert response.status == 201 and "x-backend-seen" not in response.headers


async def test_a_cached_answer_is_mapped_afresh_for_each_request() -> None:
    raw = api({"GET /status": {"handler": "cacheapp:status", "responseParameters": {
        "200": {"overwrite:header.x-request": "$context.requestId"}}}},
        caching={"cacheClusterEnabled": True})
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        ids = []
        for expected in ("miss", "hit"):
            async with session.get(f"http://127.0.0.1:{server.port}/dev/status") as response:
                assert response.headers["X-Wsgw-Cache"] == expected
                assert response.headers["x-request"] == response.headers["apigw-requestid"]
                ids.append(response.headers["x-request"])
        assert ids[0] != ids[1] and cacheapp.calls() == 1


async def test_a_mapped_value_that_would_break_a_header_is_refused() -> None:
    raw = api({"POST /x": {"handler": "cacheapp:counted",
                           "requestParameters": {"overwrite:header.x-name": "$request.body.name"}}})
    async with serve(raw) as server, aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server.port}/dev/x",
                                json={"name": "a\r\nX-Injected: 1"}) as response:
            assert response.status == 400
            assert "line break" in json.loads(await response.read())["message"]
        assert cacheapp.calls() == 0


@pytest.mark.parametrize(("route", "where", "says"), [
    ({"handler": "cacheapp:counted", "requestParameters": {"overwrite:header.Authorization": "x"}},
     "http.routes.GET /x.requestParameters.overwrite:header.Authorization", "reserved"),
    ({"handler": "cacheapp:counted", "requestParameters": ["overwrite:path"]},
     "http.routes.GET /x.requestParameters", "must map"),
    ({"handler": "cacheapp:counted", "responseParameters": {"600": {}}},
     "http.routes.GET /x.responseParameters.600", "200 to 599"),
    ({"handler": "cacheapp:counted", "responseParameters": {"200": {"overwrite:header.x": "$request.body"}}},
     "http.routes.GET /x.responseParameters.200.overwrite:header.x", "$response.header.x"),
    ({"integration": {"type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage",
                      "requestParameters": {"QueueUrl": "q", "MessageBody": "$request.body"}},
      "requestParameters": {"overwrite:header.x": "y"}},
     "http.routes.GET /x.requestParameters", "inside 'integration:'"),
])
def test_bad_mappings_are_refused_by_key(route: dict[str, Any], where: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        api_from(api({"GET /x": route}))
    found = {p.key: p.message for p in info.value.problems}
    assert where in found and says in found[where], found


def test_a_sam_http_api_integration_brings_its_parameter_mapping(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("""
AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Mock:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Ws, RouteKey: $default, Target: !Sub "integrations/${Static}"}
  Static:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Ws, IntegrationType: MOCK}
  Http:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: HTTP}
  Items:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Http, RouteKey: "GET /items/{id}", Target: !Sub "integrations/${Proxy}"}
  Proxy:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Http
      IntegrationType: HTTP_PROXY
      IntegrationMethod: GET
      IntegrationUri: "http://127.0.0.1:9/items"
      RequestParameters: {"append:header.header1": "$context.requestId"}
      ResponseParameters:
        "500": {ResponseParameters: [{Destination: "overwrite:statuscode", Source: "403"}]}
""", encoding="utf-8")
    raw = load_document(template).raw
    route = raw["http"]["routes"]["GET /items/{id}"]
    assert route["requestParameters"] == {"append:header.header1": "$context.requestId"}
    assert route["responseParameters"] == {"500": {"overwrite:statuscode": "403"}}
    api = load_api(template)
    assert api.http is not None and api.http.routes[0].response_parameters is not None
    bad = template.read_text().replace("header.header1", "header.Authorization")
    template.write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_api(template)
    assert any("reserved" in p.message and "requestParameters" in p.key for p in info.value.problems)
