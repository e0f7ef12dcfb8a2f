"""AWS and AWS_PROXY service integrations against moto in server mode: the request reaches the service signed,
the service's answer (or its error, as AWS's error frame) comes back; throttling is retried."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import orjson
import pytest
from aiohttp import web
from websockets.asyncio.client import connect

from tests.helpers import serve
from tests.service_fixtures import unique
from wsgw.errors import ConfigError

KEYS = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, **KEYS)


def queue(url: str) -> str:
    return str(client("sqs", url).create_queue(QueueName=unique("q"))["QueueUrl"])


def bodies(url: str, queue_url: str, n: int) -> list[dict[str, Any]]:
    sqs = client("sqs", url)
    got: list[dict[str, Any]] = []
    for _ in range(20):
        got += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   MessageAttributeNames=["All"]).get("Messages", [])
        if len(got) >= n:
            break
    return got


def ws_api(integration: dict[str, Any], route_response: bool = True) -> dict[str, Any]:
    return {"routes": {"$default": {"integration": integration, "routeResponse": route_response}}}


async def test_aws_action_sends_the_form_template_to_sqs_and_shapes_the_answer(moto_url: str) -> None:
    queue_url = queue(moto_url)
    account_path = queue_url.split("/", 3)[3]
    integration = {
        "type": "AWS", "uri": f"arn:aws:apigateway:us-east-1:sqs:path/{account_path}", "endpointUrl": moto_url,
        "requestParameters": {"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
        "requestTemplates": {"$default": "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"},
        "integrationResponses": {"/2\\d\\d/": {"responseTemplates": {
            "$default": '{"sent": true, "requestId": "$context.requestId"}'}}},
    }
    async with serve(ws_api(integration)) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"text": "hello & more"}')
        answer = json.loads(await ws.recv())
        assert answer["sent"] is True and answer["requestId"]
        got = bodies(moto_url, queue_url, 1)
        assert [m["Body"] for m in got] == ['{"text": "hello & more"}']


async def test_aws_action_uri_uses_the_json_protocol_with_a_json_template(moto_url: str) -> None:
    queue_url = queue(moto_url)
    integration = {
        "type": "AWS", "uri": "arn:aws:apigateway:us-east-1:sqs:action/SendMessage", "endpointUrl": moto_url,
        "requestTemplates": {"$default": f'{{"QueueUrl": "{queue_url}", "MessageBody": "$util.escapeJavaScript('
                             '$input.body)", "MessageAttributes": {"connectionId": {"DataType": "String", '
                             '"StringValue": "$context.connectionId"}}}'},
    }
    async with serve(ws_api(integration)) as server, connect(server.urls.websocket) as ws:
        await ws.send("plain text")
        answer = json.loads(await ws.recv())
        assert "MessageId" in answer
        [message] = bodies(moto_url, queue_url, 1)
        assert message["Body"] == "plain text"
        conn_id = message["MessageAttributes"]["connectionId"]["StringValue"]
        assert conn_id in server.gateway.connections


async def test_service_error_answers_the_error_frame_and_logs_the_code(moto_url: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    integration = {"type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage", "endpointUrl": moto_url,
                   "requestParameters": {"QueueUrl": f"{moto_url}/123456789012/missing-queue",
                                         "MessageBody": "$request.body"}}
    async with serve(ws_api(integration)) as server, connect(server.urls.websocket) as ws:
        await ws.send("x")
        frame = orjson.loads(await ws.recv())
        assert frame["message"] == "Internal server error"
    assert "status 400, QueueDoesNotExist: The specified queue does not exist" in caplog.text


async def test_sqs_send_message_maps_body_fields_context_and_stage_variables(moto_url: str) -> None:
    queue_url = queue(moto_url)
    api = ws_api({"type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage", "endpointUrl": moto_url,
                  "requestParameters": {
                      "QueueUrl": "${stageVariables.queue}", "MessageBody": "$request.body.text",
                      "MessageAttributes": '{"conn": {"DataType": "String", "StringValue": '
                                           '"${context.connectionId}"}}'}})
    api["stageVariables"] = {"queue": queue_url}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        for i in range(5):
            await ws.send(json.dumps({"text": f"m{i}"}))
            assert "MessageId" in json.loads(await ws.recv())
        got = bodies(moto_url, queue_url, 5)
        assert sorted(m["Body"] for m in got) == [f"m{i}" for i in range(5)]
        assert {m["MessageAttributes"]["conn"]["StringValue"] for m in got} == set(server.gateway.connections)


async def test_every_subtype_reaches_its_service(moto_url: str) -> None:
    stream, table, topic = unique("s"), unique("t"), None
    kinesis = client("kinesis", moto_url)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    client("dynamodb", moto_url).create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    topic = client("sns", moto_url).create_topic(Name=unique("topic"))["TopicArn"]
    sfn = client("stepfunctions", moto_url)
    machine = sfn.create_state_machine(
        name=unique("m"), roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    routes: dict[str, Any] = {}

    def route(key: str, subtype: str, params: dict[str, str]) -> None:
        routes[key] = {"integration": {"type": "AWS_PROXY", "integrationSubtype": subtype, "endpointUrl": moto_url,
                                       "requestParameters": params}, "routeResponse": True}

    route("kinesis", "Kinesis-PutRecord", {"StreamName": stream, "Data": "$request.body.data",
                                           "PartitionKey": "$context.connectionId"})
    route("events", "EventBridge-PutEvents", {"Source": "chat", "DetailType": "message",
                                              "Detail": "$request.body.data"})
    route("sfn", "StepFunctions-StartExecution", {"StateMachineArn": machine, "Input": "$request.body.data"})
    route("sns", "SNS-Publish", {"TopicArn": topic, "Message": "$request.body.data"})
    route("ddb", "DynamoDB-PutItem", {"TableName": table,
                                      "Item": '{"id": {"S": "${context.connectionId}"}, '
                                              '"text": {"S": "${request.body.data.text}"}}'})
    api = {"routeSelectionExpression": "$request.body.action", "routes": routes}
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        async def ask(action: str) -> dict[str, Any]:
            await ws.send(json.dumps({"action": action, "data": {"text": "hi"}}))
            return dict(json.loads(await ws.recv()))

        conn_id = next(iter(server.gateway.connections))
        assert "SequenceNumber" in await ask("kinesis")
        shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        [rec] = kinesis.get_records(ShardIterator=iterator)["Records"]
        assert json.loads(rec["Data"]) == {"text": "hi"} and rec["PartitionKey"] == conn_id
        assert (await ask("events"))["FailedEntryCount"] == 0
        assert "executionArn" in await ask("sfn")
        [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
        assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {"text": "hi"}
        await ws.send(json.dumps({"action": "sns", "data": {"text": "hi"}}))
        assert "MessageId" in await ws.recv()       # SNS answers XML (the query protocol), passed through
        await ask("ddb")
        item = client("dynamodb", moto_url).get_item(TableName=table, Key={"id": {"S": conn_id}})["Item"]
        assert item["text"] == {"S": "hi"}


async def test_lambda_invoke_is_asynchronous(moto_url: str) -> None:
    lam = client("lambda", moto_url)
    iam = client("iam", moto_url)
    role = iam.create_role(RoleName=unique("r"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return event\n")
    name = unique("fn")
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="app.handler",
                        Code={"ZipFile": code.getvalue()})
    api = ws_api({"type": "AWS_PROXY", "integrationSubtype": "Lambda-Invoke", "endpointUrl": moto_url,
                  "requestParameters": {"FunctionName": name}})
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send('{"n": 1}')
        answer = await ws.recv()       # 202 Accepted: no body from an Event invoke
        assert "Internal server error" not in answer


async def test_aws_proxy_on_a_rest_route(moto_url: str) -> None:
    queue_url = queue(moto_url)
    api = {"http": {"routes": {"POST /send": {"integration": {
        "type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage", "endpointUrl": moto_url,
        "requestParameters": {"QueueUrl": queue_url, "MessageBody": "$request.body",
                              "MessageGroupId": "$request.header.x-group"}}}}}}
    import aiohttp

    async with serve(api) as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}/dev"
        async with http.post(f"{base}/send", data="from rest") as response:
            assert response.status == 200, await response.text()
            assert "MessageId" in await response.json(content_type=None)
        assert [m["Body"] for m in bodies(moto_url, queue_url, 1)] == ["from rest"]


async def test_endpoint_comes_from_aws_endpoint_url_variables(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue_url = queue(moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    api = ws_api({"type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage",
                  "requestParameters": {"QueueUrl": queue_url, "MessageBody": "$request.body"}})
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send("via env")
        assert "MessageId" in json.loads(await ws.recv())
    assert [m["Body"] for m in bodies(moto_url, queue_url, 1)] == ["via env"]


async def test_throttling_is_retried_within_the_timeout() -> None:
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization", ""))
        if len(calls) < 3:
            return web.json_response({"__type": "com.amazonaws.kinesis#ProvisionedThroughputExceededException",
                                      "message": "slow down"}, status=400)
        return web.json_response({"ShardId": "shardId-0", "SequenceNumber": "1"})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    try:
        api = ws_api({"type": "AWS_PROXY", "integrationSubtype": "Kinesis-PutRecord",
                      "endpointUrl": f"http://127.0.0.1:{port}", "timeoutMs": 5000,
                      "requestParameters": {"StreamName": "s", "Data": "$request.body", "PartitionKey": "k"}})
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send("x")
            assert json.loads(await ws.recv())["SequenceNumber"] == "1"
        assert len(calls) == 3 and all(c.startswith("AWS4-HMAC-SHA256") for c in calls)
    finally:
        await runner.cleanup()


def test_config_refuses_unknown_subtypes_and_missing_parameters() -> None:
    from tests.helpers import api_from

    with pytest.raises(ConfigError) as err:
        api_from(ws_api({"type": "AWS_PROXY", "integrationSubtype": "SQS-Nope"}))
    assert "integrationSubtype" in str(err.value)
    with pytest.raises(ConfigError) as err:
        api_from(ws_api({"type": "AWS_PROXY", "integrationSubtype": "Kinesis-PutRecord",
                         "requestParameters": {"StreamName": "s", "Bogus": "x"}}))
    text = str(err.value)
    assert "requestParameters.Bogus" in text and "requestParameters.Data" in text
    with pytest.raises(ConfigError) as err:
        api_from(ws_api({"type": "AWS", "uri": "arn:aws:sqs:us-east-1:1:q"}))
    assert ".uri" in str(err.value)


def test_kinesis_data_is_base64_on_the_wire(moto_url: str) -> None:
    from tests.helpers import api_from
    from wsgw.integrations import Resources, build_integration

    api = api_from(ws_api({"type": "AWS_PROXY", "integrationSubtype": "Kinesis-PutRecord", "endpointUrl": moto_url,
                           "requestParameters": {"StreamName": "s", "Data": "$request.body", "PartitionKey": "k"}}))
    integration = build_integration(api.routes["$default"].integration, api, Resources(), "f")
    method, _url, body, headers = integration.request({"body": "abc", "requestContext": {}})  # type: ignore[attr-defined]
    assert method == "POST" and headers["X-Amz-Target"] == "Kinesis_20131202.PutRecord"
    assert json.loads(body)["Data"] == base64.b64encode(b"abc").decode()


async def test_a_role_in_credentials_is_assumed_and_signs_the_request(moto_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"ShardId": "shardId-0", "SequenceNumber": "1"})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSOURCE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "source-secret")
    try:
        api = ws_api({"type": "AWS_PROXY", "integrationSubtype": "Kinesis-PutRecord",
                      "endpointUrl": f"http://127.0.0.1:{port}",
                      "credentials": "arn:aws:iam::123456789012:role/gateway",
                      "requestParameters": {"StreamName": "s", "Data": "$request.body", "PartitionKey": "k"}})
        async with serve(api) as server, connect(server.urls.websocket) as ws:
            await ws.send("x")
            assert json.loads(await ws.recv())["SequenceNumber"] == "1"
        [authorization] = seen
        assert "Credential=ASIA" in authorization       # STS's temporary keys, not the source ones
    finally:
        await runner.cleanup()


SAM_SERVICE_INTEGRATIONS = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  QueueName: {Type: String}
  QueueAccount: {Type: String, Description: "the account owning the queue (moto's is 123456789012)"}
Resources:
  Chat:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: chat, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Web:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: web, ProtocolType: HTTP}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Ref QueueName}
  GatewayRole:
    Type: AWS::IAM::Role
    Properties: {RoleName: gateway-sqs, AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: []}}
  ToQueue:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Chat
      IntegrationType: AWS
      IntegrationMethod: POST
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:sqs:path/${QueueAccount}/${Queue.QueueName}
      CredentialsArn: !Sub arn:aws:iam::${QueueAccount}:role/${GatewayRole}
      TemplateSelectionExpression: \\$default
      RequestParameters:
        integration.request.header.Content-Type: "'application/x-www-form-urlencoded'"
      RequestTemplates:
        $default: Action=SendMessage&MessageBody=$util.urlEncode($input.body)
  SendRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Chat, RouteKey: $default, Target: !Sub "integrations/${ToQueue}"}
  SendResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties: {ApiId: !Ref Chat, RouteId: !Ref SendRoute, RouteResponseKey: $default}
  ProxyToQueue:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Web
      IntegrationType: AWS_PROXY
      IntegrationSubtype: SQS-SendMessage
      PayloadFormatVersion: '1.0'
      CredentialsArn: !Sub arn:aws:iam::${QueueAccount}:role/${GatewayRole}
      RequestParameters:
        QueueUrl: !Sub https://sqs.${AWS::Region}.amazonaws.com/${QueueAccount}/${Queue.QueueName}
        MessageBody: $request.body.text
  PostRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Web, RouteKey: POST /send, Target: !Sub "integrations/${ProxyToQueue}"}
  Prod:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Chat, StageName: prod}
"""


async def test_a_sam_template_sends_to_sqs_through_aws_and_aws_proxy_integrations_with_its_role(
        moto_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    from wsgw.config import parse_api
    from wsgw.loaders import LoadOptions, load_document

    for name, value in (("AWS_ENDPOINT_URL", moto_url), ("AWS_ACCESS_KEY_ID", "test"),
                        ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    name = unique("samq")
    sqs = client("sqs", moto_url)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    client("iam", moto_url).create_role(RoleName="gateway-sqs", AssumeRolePolicyDocument="{}")
    template = tmp_path / "template.yaml"
    template.write_text(SAM_SERVICE_INTEGRATIONS, encoding="utf-8")
    raw = load_document(template, LoadOptions(region="us-east-1", params={"QueueName": name,
                                                                           "QueueAccount": "123456789012"})).raw
    assert raw["routes"]["$default"]["integration"] == {
        "type": "AWS", "httpMethod": "POST", "uri": f"arn:aws:apigateway:us-east-1:sqs:path/123456789012/{name}",
        "credentials": "arn:aws:iam::123456789012:role/gateway-sqs", "templateSelectionExpression": "\\$default",
        "requestParameters": {"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
        "requestTemplates": {"$default": "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"}}
    assert raw["http"]["routes"]["POST /send"]["integration"] == {
        "type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage",
        "credentials": "arn:aws:iam::123456789012:role/gateway-sqs",
        "requestParameters": {"QueueUrl": f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}",
                              "MessageBody": "$request.body.text"}}
    api = parse_api(raw, tmp_path)
    async with serve(api) as server, connect(server.urls.websocket) as ws, aiohttp.ClientSession() as http:
        await ws.send('{"text": "over the socket"}')
        assert "SendMessageResponse" in await ws.recv()
        async with http.post(f"http://127.0.0.1:{server.port}/prod/send", json={"text": "over http"}) as answer:
            assert answer.status == 200, await answer.text()
        got = []
        for _ in range(20):
            got += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if len(got) >= 2:
                break
    assert sorted(m["Body"] for m in got) == ["over http", '{"text": "over the socket"}']
