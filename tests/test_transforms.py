"""Models, mapping templates and integration responses wired end to end: real gateways on port 0, real WebSocket
clients, a real local HTTP backend. AWS's documented shapes come from tests/fixtures/aws/transforms.yaml."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from websockets.asyncio.client import connect

from tests.backends import backend
from tests.helpers import api_from, serve, write_config
from wsgw.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "aws"
AWS: dict[str, Any] = yaml.safe_load((FIXTURES / "transforms.yaml").read_text())
ROOT = Path(__file__).resolve().parent.parent


async def frame(ws: Any) -> Any:
    return json.loads(await ws.recv())


def is_error_frame(answer: dict[str, Any], message: str) -> bool:
    return answer.get("message") == message and set(answer) == {"message", "connectionId", "requestId"}


# ---------------------------------------------------------------- WebSocket request validation


def validated_api(uri: str) -> dict[str, Any]:
    """AWS's console tutorial: emailModel on sendMessage, chosen by the body's messageType (no $default)."""
    return {"models": {"emailModel": AWS["emailModel"]}, "routes": {
        "sendMessage": {"integration": {"type": "HTTP_PROXY", "uri": uri}, "routeResponse": True,
                        "modelSelectionExpression": "$request.body.messageType",
                        "requestModels": {"email": "emailModel"}},
        "open": {"integration": {"type": "MOCK", "response": '{"open": true}'}, "routeResponse": True}}}


async def test_a_body_that_fits_the_model_reaches_the_backend() -> None:
    async with backend() as b, serve(validated_api(f"{b.url}/raw/echo")) as server, \
            connect(server.urls.websocket) as ws:
        body = {"action": "sendMessage", "messageType": "email", "address": "a@example.com"}
        await ws.send(json.dumps(body))
        assert await frame(ws) == body
        assert len(b.hits("/raw/echo")) == 1


@pytest.mark.parametrize("body", [
    {"action": "sendMessage", "messageType": "email"},                        # address missing
    {"action": "sendMessage", "messageType": "email", "address": 5},          # not a string
    {"action": "sendMessage", "messageType": "sms", "address": "x"},          # no model, no $default
    {"action": "sendMessage"},                                                # the expression selects nothing
])
async def test_a_failing_body_gets_bad_request_body_never_reaches_the_backend_and_the_connection_stays(
        body: dict[str, Any]) -> None:
    async with backend() as b, serve(validated_api(f"{b.url}/raw/echo")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send(json.dumps(body))
        assert is_error_frame(await frame(ws), "Invalid request body")
        await ws.send('{"action": "open"}')
        assert await frame(ws) == {"open": True}
        assert b.hits("/raw/echo") == []


async def test_the_log_names_the_model_and_field_but_never_the_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsgw.gateway")
    async with backend() as b, serve(validated_api(f"{b.url}/raw/echo")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send(json.dumps({"action": "sendMessage", "messageType": "email",
                                  "address": ["secret-token-value"]}))
        assert is_error_frame(await frame(ws), "Invalid request body")
    lines = [r.getMessage() for r in caplog.records if "request body refused" in r.getMessage()]
    assert len(lines) == 1 and "model emailModel: $.address: must be of type string (type)" in lines[0]
    assert "secret-token-value" not in caplog.text


@pytest.mark.parametrize("body", [
    "not json at all",
    "[" * 5000 + "]" * 5000,                                                  # nested past any parser's depth
    json.dumps({"action": "sendMessage", "messageType": "email", **{f"k{i}": i for i in range(2000)}}),
])
async def test_hostile_bodies_on_a_validated_route_are_refused_cleanly(body: str) -> None:
    async with backend() as b, serve(validated_api(f"{b.url}/raw/echo")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send(body)
        answer = await frame(ws)
        # not JSON / no route key: $default is absent, so the route table answers Forbidden; a JSON body on the
        # validated route is refused by the model (address missing)
        assert is_error_frame(answer, "Invalid request body") or is_error_frame(answer, "Forbidden")
        await ws.send('{"action": "open"}')
        assert await frame(ws) == {"open": True}
        assert b.hits("/raw/echo") == []


async def test_a_default_route_with_a_default_model_refuses_a_non_json_body() -> None:
    api = {"models": {"Any": {"type": "object"}}, "routes": {"$default": {
        "integration": {"type": "MOCK", "response": "ok"}, "routeResponse": True,
        "modelSelectionExpression": "\\$default", "requestModels": {"$default": "Any"}}}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send("plain text")
        assert is_error_frame(await frame(ws), "Invalid request body")
        await ws.send("{}")
        assert await ws.recv() == "ok"


# ---------------------------------------------------------------- MOCK with templates


def mock_api() -> dict[str, Any]:
    return {"stageVariables": {"env": "test"}, "routes": {"lookup": {"routeResponse": True, "integration": {
        "type": "MOCK",
        "templateSelectionExpression": "\\$default",
        "requestTemplates": {"$default": '{"statusCode": $input.path(\'$.code\')}'},
        "integrationResponses": {
            "$default": {"templateSelectionExpression": "${request.body.lang}",
                         "responseTemplates": {"$default": '{"found": true, "env": "$stageVariables.env"}',
                                               "fr": '{"trouve": true}'}},
            "/4\\d\\d/": {"responseTemplates": {"$default": '{"found": false, "route": "$context.routeKey"}'}},
        }}}}}


async def test_mock_templates_decide_the_status_and_the_answer() -> None:
    async with serve(mock_api()) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"action": "lookup", "code": 200}')
        assert await frame(ws) == {"found": True, "env": "test"}
        await ws.send('{"action": "lookup", "code": 200, "lang": "fr"}')
        assert await frame(ws) == {"trouve": True}
        await ws.send('{"action": "lookup", "code": 404}')
        assert await frame(ws) == {"found": False, "route": "lookup"}


async def test_mock_without_an_integer_status_answers_the_error_frame_and_keeps_the_connection() -> None:
    async with serve(mock_api()) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"action": "lookup", "code": "abc"}')
        assert is_error_frame(await frame(ws), "Internal server error")
        await ws.send('{"action": "lookup", "code": 200}')
        assert (await frame(ws))["found"] is True


async def test_awss_console_mock_example_on_the_rest_front() -> None:
    example = AWS["mockConsole"]
    api = {"routes": {"$default": {"integration": {"type": "MOCK"}}}, "http": {"routes": {"GET /pets": {
        "integration": {"type": "MOCK", "requestTemplates": {"application/json": example["requestTemplate"]},
                        "integrationResponses": {
                            "$default": {"statusCode": 200, "responseTemplates": {
                                "application/json": example["defaultResponseTemplate"]}},
                            f"/{example['errorPattern']}/": {"statusCode": 500, "responseTemplates": {
                                "application/json": example["errorResponseTemplate"]}}}}}}}}
    async with serve(api) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev/pets"
        async with session.get(base + "?scope=internal") as response:
            assert response.status == 200
            assert await response.json() == {"statusCode": 200, "message": "Go ahead without me"}
        async with session.get(base + "?scope=public") as response:
            assert response.status == 500
            assert (await response.json())["message"] == "The invoked method is not supported on the API resource."


# ---------------------------------------------------------------- HTTP (non-proxy) against a real backend


def http_api(url: str, **extra: Any) -> dict[str, Any]:
    return {"routes": {"say": {"routeResponse": True, "integration": {
        "type": "HTTP", "uri": url,
        "requestTemplates": {"$default": '{"who": "$context.connectionId", "said": $input.json(\'$.text\'), '
                                         '"stage": "$context.stage"}'},
        "integrationResponses": {
            "$default": {"responseTemplates": {"$default": '{"backendSaw": $input.json(\'$.said\')}'}},
            "/4\\d\\d/": {"responseTemplates": {"$default": '{"refused": "$input.body"}'}}},
        **extra}}}}


async def test_http_request_template_builds_the_backend_body_and_the_response_template_the_clients() -> None:
    async with backend() as b, serve(http_api(f"{b.url}/raw/echo")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "say", "text": "hello \\"there\\""}')
        assert await frame(ws) == {"backendSaw": 'hello "there"'}
        sent = b.hits("/raw/echo")[0].json()
        assert sent["said"] == 'hello "there"' and sent["stage"] == "dev"
        assert sent["who"] in server.gateway.connections


async def test_http_backend_status_selects_the_pattern_response() -> None:
    async with backend() as b, serve(http_api(f"{b.url}/raw/status/404")) as server, \
            connect(server.urls.websocket) as ws:
        await ws.send('{"action": "say", "text": "x"}')
        assert await frame(ws) == {"refused": "status page"}


async def test_http_proxy_and_http_without_templates_pass_the_body_through_unchanged() -> None:
    raw = '{"action": "pass", "n": [1, 2]}'
    async with backend() as b:
        for kind in ("HTTP_PROXY", "http_proxy", "HTTP"):
            api = {"routes": {"pass": {"integration": {"type": kind, "uri": f"{b.url}/raw/echo"},
                                       "routeResponse": True}}}
            async with serve(api) as server, connect(server.urls.websocket) as ws:
                await ws.send(raw)
                assert await ws.recv() == raw
        assert [hit.body.decode() for hit in b.hits("/raw/echo")] == [raw, raw, raw]


async def test_rest_http_passthrough_behaviors_follow_the_content_type() -> None:
    async with backend() as b:
        templates = {"application/json": '{"wrapped": $input.json(\'$\')}'}
        api = {"routes": {"$default": {"integration": {"type": "MOCK"}}}, "http": {"routes": {
            f"POST /{behavior.lower()}": {"integration": {
                "type": "HTTP", "uri": f"{b.url}/raw/echo", "requestTemplates": templates,
                "passthroughBehavior": behavior}}
            for behavior in ("WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER")}}}
        async with serve(api) as server, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{server.port}/dev"
            for behavior in ("when_no_match", "when_no_templates", "never"):
                async with session.post(f"{base}/{behavior}", data=b'{"a": 1}',
                                        headers={"Content-Type": "application/json"}) as response:
                    assert (response.status, await response.json()) == (200, {"wrapped": {"a": 1}})
            async with session.post(f"{base}/when_no_match", data=b"plain",
                                    headers={"Content-Type": "text/plain"}) as response:
                assert (response.status, await response.text()) == (200, "plain")
            for refusing in ("when_no_templates", "never"):
                async with session.post(f"{base}/{refusing}", data=b"plain",
                                        headers={"Content-Type": "text/plain"}) as response:
                    assert response.status == 415
                    assert await response.json() == {"message": "Unsupported Media Type"}


async def test_rest_request_schema_may_name_a_model() -> None:
    api = {"models": {"emailModel": AWS["emailModel"]}, "routes": {"$default": {"integration": {"type": "MOCK"}}},
           "http": {"routes": {"POST /mail": {"requestSchema": "emailModel", "integration": {
               "type": "MOCK", "response": '{"queued": true}'}}}}}
    async with serve(api) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/dev/mail"
        async with session.post(url, json={"address": "a@example.com"}) as response:
            assert (response.status, await response.json()) == (200, {"queued": True})
        async with session.post(url, json={"address": 7}) as response:
            assert response.status == 400
            assert (await response.json())["message"] == (
                "Invalid request body: $.address: must be of type string (type)")


# ---------------------------------------------------------------- template errors and hostile templates


@pytest.mark.parametrize("template", [
    "#foreach($i in [1..100000])x#end",                                       # a range past the 1000 cap
    "#set($s = 'ab')#foreach($i in [1..40])#set($s = \"$s$s\")#end$s",        # doubling past the size cap
    "$util.parseJson('{not json')",
    "#macro(f $n)#f($n)#end#f(1)",                                            # unbounded recursion
])
async def test_a_failing_template_answers_awss_error_frame_and_the_connection_stays(template: str) -> None:
    api = {"routes": {
        "bad": {"routeResponse": True, "integration": {"type": "MOCK", "response": template}},
        "ok": {"routeResponse": True, "integration": {"type": "MOCK", "response": "fine"}}}}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"action": "bad"}')
        assert is_error_frame(await frame(ws), "Internal server error")
        await ws.send('{"action": "ok"}')
        assert await ws.recv() == "fine"


async def test_a_failing_template_on_the_rest_front_is_500() -> None:
    api = {"routes": {"$default": {"integration": {"type": "MOCK"}}}, "http": {"routes": {"GET /x": {
        "integration": {"type": "MOCK", "response": "$util.parseJson('{bad')"}}}}}
    async with serve(api) as server, aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{server.port}/dev/x") as response:
        assert response.status == 500
        assert await response.json() == {"message": "Internal Server Error"}


@pytest.mark.parametrize(("integration", "key", "words"), [
    ({"type": "MOCK", "response": "#include('/etc/passwd')"}, "routes.r.integration.response", "#include"),
    ({"type": "MOCK", "requestTemplates": {"$default": "#if($a"}},
     "routes.r.integration.requestTemplates.$default", "syntax"),
    ({"type": "MOCK", "response": "x" * (300 * 1024 + 1)}, "routes.r.integration.response", "larger than"),
    ({"type": "MOCK", "response": "$x.__class__"}, "routes.r.integration.response", "_"),
    ({"type": "HTTP", "uri": "http://h/", "integrationResponses": {"/4(\\d/": {}}},
     "routes.r.integration.integrationResponses", "regular expression"),
    ({"type": "HTTP", "uri": "http://h/", "passthroughBehavior": "SOMETIMES"},
     "routes.r.integration.passthroughBehavior", "WHEN_NO_MATCH"),
    ({"type": "HTTP_PROXY", "uri": "http://h/", "requestTemplates": {"$default": "x"}},
     "routes.r.integration.requestTemplates", "unknown option"),
    ({"type": "MOCK", "response": "x", "integrationResponses": {"$default": {}}},
     "routes.r.integration.response", "not both"),
])
def test_hostile_and_broken_templates_are_config_errors_naming_the_key(integration: dict[str, Any], key: str,
                                                                      words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        api_from({"routes": {"r": {"integration": integration}}})
    found = [p for p in refused.value.problems if p.key == key]
    assert found and words in found[0].message, refused.value.problems


@pytest.mark.parametrize(("raw", "key", "words"), [
    ({"models": {"Bad": {"type": "nonsense"}}, "routes": {"r": {"integration": {"type": "MOCK"}}}},
     "models.Bad", "not a valid JSON Schema"),
    ({"models": {"A": {"type": "object"}}, "routes": {"r": {"integration": {"type": "MOCK"},
                                                            "requestModels": {"$default": "Nope"},
                                                            "modelSelectionExpression": "\\$default"}}},
     "routes.r.requestModels.$default", "no model named 'Nope'"),
    ({"models": {"A": {"type": "object"}}, "routes": {"r": {"integration": {"type": "MOCK"},
                                                            "requestModels": {"$default": "A"}}}},
     "routes.r.requestModels", "modelSelectionExpression"),
    ({"routes": {"$default": {"integration": {"type": "MOCK"}}},
      "http": {"routes": {"POST /x": {"requestSchema": "Missing", "integration": {"type": "MOCK"}}}}},
     "http.routes.POST /x.requestSchema", "no model named"),
    ({"models": {"A": {"type": "object"}}, "routes": {"$connect": {"integration": {"type": "MOCK"},
                                                                   "requestModels": {"$default": "A"},
                                                                   "modelSelectionExpression": "\\$default"}}},
     "routes.$connect.requestModels", "no"),
])
def test_bad_models_are_config_errors_naming_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        api_from(raw)
    found = [p for p in refused.value.problems if p.key == key]
    assert found and words in found[0].message, refused.value.problems


def test_wsgw_check_compiles_every_template_and_schema_and_exits_non_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path / "wsgw.yaml", {
        "models": {"Bad": {"type": 5}},
        "routes": {"r": {"integration": {"type": "MOCK", "integrationResponses": {"$default": {
            "responseTemplates": {"$default": "#foreach($x in"}}}}}}})
    result = subprocess.run([sys.executable, "-m", "wsgw", "check", "-c", str(config)], capture_output=True,
                            text=True, cwd=str(ROOT), timeout=60)
    assert result.returncode != 0
    assert "models.Bad" in result.stderr + result.stdout
    assert "routes.r.integration.integrationResponses.$default.responseTemplates.$default" in (
        result.stderr + result.stdout)


def test_aws_parse_json_example_renders_as_documented() -> None:
    from wsgw.aws.templates import compile_template

    rendered = compile_template(AWS["parseJsonTemplate"]).render('{"name": "Marco"}').strip()
    assert rendered == "Marco-modified"
