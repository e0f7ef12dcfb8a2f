"""serverless.yml and SAM templates: translated to wsgw.yaml, served unchanged, unsupported keys reported."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import connect

from tests.helpers import ROOT, GatewayProcess, serve
from wsgw.config import load_api, parse_api
from wsgw.errors import ConfigError
from wsgw.loaders import LoadFailed, LoadOptions, load_document
from wsgw.tls.setup import build_tls

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SLS = FIXTURES / "serverless" / "serverless.yml"
SAM = FIXTURES / "sam" / "template.yaml"


def check(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsgw", "check", "-c", str(config), *extra], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)


def without_authorizers(raw: dict[str, Any]) -> dict[str, Any]:
    """The API without its authorizers, for tests about everything else (the end-to-end ones keep them)."""
    routes = {key: {k: v for k, v in route.items() if k != "authorizer"} for key, route in raw["routes"].items()}
    return {**{k: v for k, v in raw.items() if k != "authorizers"}, "routes": routes}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- serverless.yml


def test_serverless_service_becomes_routes_authorizer_environment_and_http_routes() -> None:
    loaded = load_document(SLS)
    raw = loaded.raw
    assert loaded.kind == "serverless"
    assert raw["stage"] == "dev" and raw["region"] == "eu-west-1"
    assert raw["routeSelectionExpression"] == "$request.body.action"
    assert raw["environment"] == {"TABLE_NAME": "chat-sls-connections-dev", "ROOM": "lobby"}
    assert set(raw["routes"]) == {"$connect", "$disconnect", "$default", "echo"}
    connect_route = raw["routes"]["$connect"]
    assert connect_route["authorizer"] == "auth"
    assert connect_route["integration"] == {"type": "python", "handler": "src.handler:connect",
                                            "functionName": "chat-sls-dev-connect", "memorySize": 256,
                                            "timeoutMs": 6000}
    assert raw["authorizers"]["auth"] == {
        "type": "request", "identitySource": ["route.request.querystring.token"], "resultTtlInSeconds": 0,
        "integration": {"type": "python", "handler": "src.auth:authorize", "functionName": "chat-sls-dev-auth",
                        "memorySize": 256, "timeoutMs": 6000}}
    assert raw["routes"]["echo"]["integration"]["memorySize"] == 512
    assert raw["routes"]["echo"]["integration"]["timeoutMs"] == 10000
    assert raw["routes"]["$default"]["integration"]["environment"] == {"GREETING": "hello"}
    assert raw["http"]["routes"]["GET /rooms"]["integration"]["handler"] == "src.handler:rooms"
    api = parse_api(raw, loaded.base_dir)
    assert api.authorizers["auth"].type == "request"
    assert api.routes["$connect"].authorizer == "auth"
    assert api.routes["echo"].route_response


def test_serverless_variables_follow_stage_env_and_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSGW_TEST_GREETING", "bonjour")
    raw = load_document(SLS, LoadOptions(stage="prod", region="us-west-2")).raw
    assert raw["stage"] == "prod" and raw["region"] == "us-west-2"
    assert raw["environment"] == {"TABLE_NAME": "chat-sls-connections-prod", "ROOM": "main-hall"}
    assert raw["routes"]["$default"]["integration"]["environment"] == {"GREETING": "bonjour"}
    assert raw["routes"]["echo"]["integration"]["functionName"] == "chat-sls-prod-echo"
    override = load_document(SLS, LoadOptions(params={"roomName": "attic"})).raw
    assert override["environment"]["ROOM"] == "attic"


def test_serverless_warnings_name_each_ignored_key() -> None:
    keys = {w.key for w in load_document(SLS).warnings}
    assert keys == {"plugins.serverless-python-requirements", "provider.iamRoleStatements",
                    "functions.echo.layers", "resources.Resources.ConnectionsTable"}


async def test_serverless_service_is_served_with_handlers_unchanged() -> None:
    loaded = load_document(SLS)
    api = parse_api(without_authorizers(loaded.raw), loaded.base_dir)
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send(json.dumps({"action": "echo", "n": 1}))
        assert json.loads(await ws.recv()) == {"action": "echo", "n": 1}
        await ws.send("not json at all")
        assert json.loads(await ws.recv()) == {"greeting": "hello", "table": "chat-sls-connections-dev",
                                               "room": "lobby", "function": "chat-sls-dev-default",
                                               "memory": "256"}


def test_wsgw_run_serves_a_serverless_yml_over_wss(tmp_path: Path) -> None:
    service = tmp_path / "svc"
    shutil.copytree(SLS.parent, service)
    text = (service / "serverless.yml").read_text()
    start = text.index("          authorizer:")
    end = text.index("  disconnect:")
    (service / "serverless.yml").write_text(text[:start] + text[end:])
    ca = tmp_path / "ca"
    with GatewayProcess(service / "serverless.yml", "--tls", "--stage", "prod", env={"WSGW_CA_DIR": str(ca)}) as node:
        assert node.ws_url.startswith("wss://") and node.ws_url.endswith("/prod")
        assert any("warning: functions.echo.layers" in line for line in node.output)

        async def talk() -> Any:
            trust = ssl.create_default_context(cafile=str(ca / "ca.pem"))
            async with connect(node.ws_url.replace("127.0.0.1", "localhost"), ssl=trust) as ws:
                await ws.send("{}")
                return json.loads(await ws.recv())

        assert asyncio.run(talk())["room"] == "main-hall"


# ---------------------------------------------------------------- SAM


def test_sam_template_becomes_routes_authorizer_and_stage() -> None:
    loaded = load_document(SAM)
    raw = loaded.raw
    assert loaded.kind == "sam"
    assert raw["stage"] == "prod"
    assert raw["stageVariables"] == {"room": "main-hall"}
    assert raw["routeSelectionExpression"] == "$request.body.action"
    assert set(raw["routes"]) == {"$connect", "$disconnect", "sendmessage", "whoami", "ping"}
    assert raw["routes"]["$connect"]["authorizer"] == "TokenAuthorizer"
    assert raw["routes"]["$connect"]["integration"]["codeUri"] == "onconnect"
    assert raw["routes"]["$disconnect"]["integration"]["codeUri"] == "ondisconnect"
    send = raw["routes"]["sendmessage"]["integration"]
    assert send == {"type": "python", "handler": "app:handler", "codeUri": "sendmessage",
                    "functionName": "chat-prod-send", "memorySize": 512, "timeoutMs": 10000,
                    "environment": {"TABLE_NAME": "chat_connections", "GREETING": "hi"}}
    assert raw["routes"]["whoami"]["routeResponse"] is True
    assert raw["routes"]["ping"] == {"integration": {
        "type": "MOCK", "requestTemplates": {"$default": '{"statusCode": 200}'},
        "templateSelectionExpression": "\\$default",
        "integrationResponses": {"$default": {
            "responseTemplates": {"$default": '{"action": "pong", "route": "$context.routeKey"}'},
            "templateSelectionExpression": "\\$default"}}}, "routeResponse": True}
    assert raw["routes"]["sendmessage"]["requestModels"] == {"sendmessage": "SendMessage"}
    assert raw["models"]["SendMessage"]["required"] == ["action", "data"]
    authorizer = raw["authorizers"]["TokenAuthorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == ["route.request.querystring.token"]
    assert authorizer["integration"]["codeUri"] == "authorizer"
    assert {w.key for w in loaded.warnings} == {"Resources.OnConnectFunction.Properties.Policies",
                                                "Resources.ConnectionsTable"}
    api = parse_api(raw, loaded.base_dir)
    assert api.routes["$connect"].authorizer == "TokenAuthorizer"


def test_sam_parameters_and_stage_can_be_overridden() -> None:
    raw = load_document(SAM, LoadOptions(stage="dev", params={"StageName": "test", "TableName": "t2"})).raw
    assert raw["stage"] == "dev"
    assert raw["stageVariables"] == {"room": "lobby"}
    assert raw["routes"]["sendmessage"]["integration"]["functionName"] == "chat-test-send"
    assert raw["routes"]["sendmessage"]["integration"]["environment"]["TABLE_NAME"] == "t2"


async def test_sam_template_is_served_over_wss_with_each_codeuri_its_own_app_module(dev_certs: Any) -> None:
    loaded = load_document(SAM)
    api = parse_api(without_authorizers(loaded.raw), loaded.base_dir)
    trust = ssl.create_default_context(cafile=str(dev_certs.ca_cert))
    async with serve(api, tls=build_tls("only", ca_dir=dev_certs.directory)) as server, \
            connect(f"wss://localhost:{server.port}/prod", ssl=trust) as ws:
        await ws.send(json.dumps({"action": "sendmessage", "data": "via https"}))
        assert await ws.recv() == "via https"
        await ws.send(json.dumps({"action": "whoami"}))
        assert json.loads(await ws.recv()) == {"function": "chat-prod-send", "memory": "512",
                                               "table": "chat_connections", "greeting": "hi",
                                               "room": "main-hall", "stage": "prod"}
        await ws.send(json.dumps({"action": "ping"}))          # MOCK written the AWS way: its templates answer
        assert json.loads(await ws.recv()) == {"action": "pong", "route": "ping"}
        await ws.send(json.dumps({"action": "sendmessage", "data": 5}))     # fails the SendMessage model
        refused = json.loads(await ws.recv())
        assert refused["message"] == "Invalid request body" and set(refused) == {"message", "connectionId",
                                                                                 "requestId"}
        await ws.send(json.dumps({"action": "sendmessage", "data": "still open"}))
        assert await ws.recv() == "still open"


def test_printed_wsgw_yaml_loads_to_the_same_api(tmp_path: Path) -> None:
    for source in (SLS, SAM):
        copy = tmp_path / source.parent.name
        shutil.copytree(source.parent, copy)
        result = check(copy / source.name, "--print")
        printed = result.stdout
        assert printed.startswith("# wsgw.yaml translated from"), result.stderr
        (copy / "wsgw.yaml").write_text(printed)
        assert load_api(copy / "wsgw.yaml") == load_api(copy / source.name)
        assert yaml.safe_load(printed)["routes"]


# ---------------------------------------------------------------- what cannot be honoured


def test_unsupported_serverless_keys_are_errors_naming_the_key(tmp_path: Path) -> None:
    config = write(tmp_path / "serverless.yml", """
service: bad
provider:
  name: aws
  runtime: ruby3.3
  environment: {REGION_TAG: '${opt:flavour}'}
functions:
  node:
    handler: index.handler
    events: [{websocket: $default}]
  py:
    handler: app.handler
    runtime: python3.12
    environment:
      SECRET: ${ssm:/my/secret}
    events:
      - websocket: {route: $connect, authorizer: "arn:aws:lambda:us-east-1:1:function:auth"}
      - sqs: arn:aws:sqs:us-east-1:1:q
  py2:
    handler: app
    runtime: python3.12
""")
    result = check(config)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    keys = {line.split(": ", 1)[0] for line in lines if not line.startswith("warning:")}
    assert {"functions.node.runtime", "provider.environment.REGION_TAG", "functions.py.environment.SECRET",
            "functions.py.events[0].websocket.authorizer.arn", "functions.py2.handler"} <= keys
    assert "warning: functions.py.events[1].sqs: sqs events are not triggered locally; ignored" in lines
    assert any("no --flavour given" in line for line in lines)


def test_unsupported_sam_constructs_are_errors_naming_the_key(tmp_path: Path) -> None:
    config = write(tmp_path / "template.yaml", """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Secret: {Type: String}
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $default
      AuthorizationType: AWS_IAM
      Target: !Sub integrations/${Integ}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: index.handler
      Runtime: java21
      CodeUri: src/
      Environment:
        Variables:
          SECRET: !Ref Secret
          OTHER: !ImportValue shared-thing
          WEIRD: !Frobnicate x
""")
    result = check(config)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    text = "\n".join(errors)
    assert "Resources.Fn.Properties.Runtime: 'java21' cannot run here" in text
    assert "parameter 'Secret' has no Default; pass --param Secret=VALUE" in text
    assert "Fn::ImportValue cannot be resolved locally" in text
    assert "unknown tag !Frobnicate (line 33)" in text
    assert "Resources.Route.Properties.AuthorizationType: AWS_IAM" in text


def test_unknown_tag_in_a_wsgw_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    config = write(tmp_path / "wsgw.yaml", "routes:\n  $default: !Magic {handler: testapp:echo}\n")
    with pytest.raises(ConfigError) as caught:
        load_api(config)
    assert str(caught.value.problems[0]) == f"{config}: unknown tag !Magic at line 2"


def test_template_with_two_websocket_apis_is_refused(tmp_path: Path) -> None:
    api = "    Type: AWS::ApiGatewayV2::Api\n    Properties: {ProtocolType: WEBSOCKET}\n"
    config = write(tmp_path / "t.yaml", f"AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  A:\n{api}  B:\n{api}")
    with pytest.raises(LoadFailed) as caught:
        load_document(config)
    assert caught.value.problems[0].key == "Resources"


def test_serverless_variable_that_refers_to_itself_is_a_problem(tmp_path: Path) -> None:
    config = write(tmp_path / "serverless.yml", """
service: loop
custom: {a: '${self:custom.a}'}
provider: {name: aws, runtime: python3.12, environment: {A: '${self:custom.a}'}}
functions:
  f: {handler: app.handler, events: [{websocket: $default}]}
""")
    with pytest.raises(LoadFailed) as caught:
        load_document(config)
    assert any("refers to itself" in p.message for p in caught.value.problems)


# ---------------------------------------------------------------- with their authorizers, end to end


@pytest.mark.parametrize("document", [SLS, SAM], ids=["serverless", "sam"])
async def test_template_authorizer_guards_connect_end_to_end(document: Path, dev_certs: Any) -> None:
    from websockets.exceptions import InvalidStatus

    loaded = load_document(document)
    api = parse_api(loaded.raw, loaded.base_dir)
    trust = ssl.create_default_context(cafile=str(dev_certs.ca_cert))
    async with serve(api, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        url = f"wss://localhost:{server.port}/{api.stage}"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "?token=wrong", ssl=trust):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as missing:
            async with connect(url, ssl=trust):
                pass
        assert missing.value.response.status_code == 401
        async with connect(url + "?token=letmein", ssl=trust) as ws:
            assert len(server.gateway.connections) == 1
            await ws.send("not json")
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            # serverless.yml has a $default route that greets; the SAM template has none: AWS's Forbidden frame
            assert reply.get("greeting") == "hello" if document == SLS else reply["message"] == "Forbidden"


SAM_HTTP = """
AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Ws:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Fwd:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Ws, RouteKey: fwd, Target: !Sub "integrations/${Proxy}"}
  Proxy:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Ws, IntegrationType: HTTP_PROXY, IntegrationMethod: POST,
                 IntegrationUri: "http://127.0.0.1:9/backend"}
  Http:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: HTTP}
  Admin:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Http, RouteKey: GET /admin, AuthorizationType: JWT, AuthorizerId: x,
                 Target: !Sub "integrations/${HttpProxy}"}
  HttpProxy:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Http, IntegrationType: HTTP_PROXY, IntegrationMethod: GET,
                 IntegrationUri: "http://127.0.0.1:9/admin"}
"""


def test_sam_http_proxy_passes_the_request_through_and_a_guarded_http_route_is_never_served_open(
        tmp_path: Path) -> None:
    template = write(tmp_path / "template.yaml", SAM_HTTP)
    with pytest.raises(ConfigError) as refused:
        load_api(template)
    assert any(p.key == "Resources.Admin.Properties.AuthorizationType" for p in refused.value.problems)
    open_route = write(tmp_path / "open.yaml", SAM_HTTP.replace("AuthorizationType: JWT, AuthorizerId: x,", ""))
    raw = load_document(open_route).raw
    assert raw["routes"]["fwd"]["integration"] == {"type": "HTTP_PROXY", "uri": "http://127.0.0.1:9/backend",
                                                   "method": "POST"}
    assert "GET /admin" in raw["http"]["routes"]
    assert check(open_route).returncode == 0


def test_serverless_http_api_route_scopes_are_refused_not_dropped(tmp_path: Path) -> None:
    service = write(tmp_path / "serverless.yml", """
service: scoped
provider:
  name: aws
  runtime: python3.12
  httpApi:
    authorizers:
      tokens: {type: jwt, identitySource: $request.header.Authorization,
               issuerUrl: https://auth.example.com/, audience: [api]}
functions:
  admin:
    handler: handler.admin
    events:
      - httpApi: {method: GET, path: /admin, authorizer: {name: tokens, scopes: [admin]}}
""")
    write(tmp_path / "handler.py", "def admin(event, context):\\n    return 'ok'\\n")
    with pytest.raises((ConfigError, LoadFailed)) as refused:
        load_api(service)
    problems = getattr(refused.value, "problems", None) or getattr(refused.value, "errors", [])
    assert any("scopes" in str(p) for p in problems), problems


def test_serverless_logs_become_the_stage_access_log_and_execution_logs_are_named() -> None:
    doc = yaml.safe_load(SLS.read_text())
    doc["provider"]["logs"] = {
        "websocket": {"level": "INFO", "fullExecutionData": True,
                      "format": '{"id": "$context.requestId", "route": "$context.routeKey"}'},
        "httpApi": True,
        "restApi": True,
    }
    path = SLS.with_name("logs-serverless.yml")
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_document(path)
    finally:
        path.unlink()
    assert loaded.raw["accessLogSettings"] == {
        "destination": "stdout", "format": '{"id": "$context.requestId", "route": "$context.routeKey"}'}
    warned = {w.key: w.message for w in loaded.warnings}
    assert "execution logs are not written" in warned["provider.logs.websocket.level"]
    assert "provider.logs.websocket.fullExecutionData" in warned
    assert "no REST API (v1)" in warned["provider.logs.restApi"]
    assert not any("access logs are not written" in message for message in warned.values())
    api = parse_api(without_authorizers(loaded.raw), loaded.base_dir)
    assert api.observe.access_log is not None and api.observe.access_log.format is not None


def test_serverless_websocket_logs_without_access_logging_write_none() -> None:
    doc = yaml.safe_load(SLS.read_text())
    doc["provider"]["logs"] = {"websocket": {"accessLogging": False, "executionLogging": True}}
    path = SLS.with_name("nologs-serverless.yml")
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_document(path)
    finally:
        path.unlink()
    assert "accessLogSettings" not in loaded.raw
    assert {w.key for w in loaded.warnings} >= {"provider.logs.websocket.executionLogging"}


SAM_TRANSFORMS = """
AWSTemplateFormatVersion: '2010-09-09'
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: ask, Target: !Sub "integrations/${Ask}",
                 ModelSelectionExpression: $default, RequestModels: {$default: Question}}
  Ask:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: HTTP, IntegrationUri: "http://127.0.0.1:9/ask",
                 RequestTemplates: {$default: "#if($a"}, ContentHandlingStrategy: CONVERT_TO_TEXT}
  Passed:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: HTTP_PROXY, IntegrationUri: "http://127.0.0.1:9/x",
                 RequestTemplates: {$default: "x"}}
  PassedResponse:
    Type: AWS::ApiGatewayV2::IntegrationResponse
    Properties: {ApiId: !Ref Api, IntegrationId: !Ref Passed, IntegrationResponseKey: $default}
  AskResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Api, RouteId: !Ref Route, RouteResponseKey: $default,
                 ResponseParameters: {x: y}}
  Question:
    Type: AWS::ApiGatewayV2::Model
    Properties: {ApiId: !Ref Api, Name: Question, ContentType: application/json,
                 Schema: '{"type": "object", "required": ["q"]}'}
"""


def test_sam_transforms_nothing_is_dropped_without_a_word(tmp_path: Path) -> None:
    result = check(write(tmp_path / "template.yaml", SAM_TRANSFORMS))
    assert result.returncode == 2
    text = result.stderr
    assert "Resources.Ask.Properties.ContentHandlingStrategy: not served locally" in text
    assert "Resources.Passed.Properties.RequestTemplates: a HTTP_PROXY integration passes the request" in text
    assert "Resources.PassedResponse.Properties.IntegrationId: integration responses apply to MOCK" in text
    assert "Resources.AskResponse.Properties.ResponseParameters: not served locally" in text


def test_sam_models_and_templates_are_compiled_and_reported_by_key(tmp_path: Path) -> None:
    fixable = SAM_TRANSFORMS.replace(", ContentHandlingStrategy: CONVERT_TO_TEXT", "")
    fixable = fixable[:fixable.index("  Passed:")] + fixable[fixable.index("  Question:"):]
    result = check(write(tmp_path / "template.yaml", fixable))
    assert result.returncode == 2
    assert "routes.ask.integration.requestTemplates.$default: mapping template syntax error" in result.stderr
    raw = load_document(write(tmp_path / "good.yaml", fixable.replace("#if($a", "$input.body")))
    assert raw.raw["models"] == {"Question": {"type": "object", "required": ["q"]}}
    assert raw.raw["routes"]["ask"]["requestModels"] == {"$default": "Question"}
    assert check(tmp_path / "good.yaml").returncode == 0
