"""Pure parts of the service and queue integrations: parameter mapping values, subtype inputs, reading pushes,
`consumers:` config."""

from __future__ import annotations

import base64

import pytest

from tests.helpers import api_from
from wsgw.aws.parameter_mapping import MappingError, MappingSource, compile_parameter
from wsgw.aws.subtypes import SUBTYPES, SubtypeError
from wsgw.consumers.push import Poison, read_fields, read_push, result
from wsgw.errors import ConfigError


def source(body: str = '{"a": {"b": [1, {"c": "x"}]}, "n": 3}') -> MappingSource:
    return MappingSource(body, {"requestId": "r1", "authorizer": {"principalId": "alice"}}, {"q": "queue-1"},
                         {"x-group": "g"}, {"page": "2"}, {"id": "7"})


def test_parameter_values_read_body_paths_context_headers_and_stage_variables() -> None:
    s = source()
    assert compile_parameter("$request.body.a.b[1].c").render(s) == "x"
    assert compile_parameter("$request.body.a").render(s) == '{"b":[1,{"c":"x"}]}'
    assert compile_parameter("$request.body.a").raw(s) == {"b": [1, {"c": "x"}]}
    assert compile_parameter("$request.body.missing").render(s) == ""
    assert compile_parameter("$context.authorizer.principalId").render(s) == "alice"
    assert compile_parameter("${stageVariables.q}/${request.header.X-Group}-${request.querystring.page}"
                             ).render(s) == "queue-1/g-2"
    assert compile_parameter("$request.path.id").render(s) == "7"
    assert compile_parameter("plain text").render(s) == "plain text"
    assert compile_parameter("$request.body").render(source("not json")) == "not json"
    with pytest.raises(MappingError):
        compile_parameter("${method.request.body}")


def test_subtypes_convert_values_to_the_operation_input() -> None:
    assert SUBTYPES["SQS-SendMessage"].build({"QueueUrl": "u", "MessageBody": {"a": 1}, "DelaySeconds": "5",
                                              "Region": "eu-west-1"}) == \
        {"QueueUrl": "u", "MessageBody": '{"a":1}', "DelaySeconds": 5}
    assert SUBTYPES["EventBridge-PutEvents"].build({"Detail": {"k": 1}, "DetailType": "t", "Source": "s"}) == \
        {"Entries": [{"Detail": '{"k":1}', "DetailType": "t", "Source": "s"}]}
    assert SUBTYPES["StepFunctions-StartExecution"].build({"StateMachineArn": "arn", "Input": "{}"}) == \
        {"stateMachineArn": "arn", "input": "{}"}
    assert SUBTYPES["Lambda-Invoke"].build({"FunctionName": "f", "Payload": "{}"})["InvocationType"] == "Event"
    with pytest.raises(SubtypeError):
        SUBTYPES["SQS-SendMessage"].build({"QueueUrl": "u", "MessageBody": "m", "DelaySeconds": "soon"})
    with pytest.raises(SubtypeError):
        SUBTYPES["DynamoDB-PutItem"].build({"TableName": "t", "Item": "{not json"})


def test_pushes_are_read_from_envelopes_headers_and_fields() -> None:
    push = read_push(b'{"connectionId": "c1", "data": {"x": 1}, "id": 9}', {}, 1000)
    assert (push.connection_id, push.data, push.push_id) == ("c1", b'{"x":1}', "9")
    assert result(push, True, "s") == {"id": "9", "connectionId": "c1", "status": "delivered"}
    assert result(push, False, "s")["status"] == "gone"
    binary = read_push(b'{"group": "room-1", "dataBase64": "' + base64.b64encode(b"\xff\x00") + b'"}', {}, 1000)
    assert binary.group == "room-1" and binary.data == b"\xff\x00" and binary.binary
    assert result(binary, 3, "s") == {"id": "s", "group": "room-1", "status": "delivered", "delivered": 3}
    assert read_push(b"raw", {"connectionId": "c2"}, 1000).data == b"raw"
    assert read_fields({b"connectionId": b"c3", b"data": b"hi"}, 1000).connection_id == "c3"
    assert read_fields({b"payload": b'{"connectionId": "c4", "data": "d"}'}, 1000).connection_id == "c4"


@pytest.mark.parametrize(("payload", "headers", "reason"), [
    (b"not json", {}, "malformed"),
    (b"[1]", {}, "malformed"),
    (b'{"data": "x"}', {}, "name exactly one"),
    (b'{"connectionId": "c", "group": "g", "data": "x"}', {}, "name exactly one"),
    (b'{"connectionId": "c"}', {}, "malformed: no data"),
    (b'{"group": "bad group!", "data": "x"}', {}, "group"),
    (b'{"connectionId": "c", "data": "' + b"x" * 2000 + b'"}', {}, "oversized"),
    (b"\xff\xfe", {"connectionId": "c"}, "UTF-8"),
    (b"x" * 5000, {"connectionId": "c"}, "oversized"),
])
def test_poison_pushes_name_their_reason(payload: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(Poison, match=reason):
        read_push(payload, headers, 1000)


def test_consumers_config_is_checked_by_key() -> None:
    api = api_from({"routes": {}, "consumers": [{"type": "nats", "subject": "s", "queue": "workers"},
                                                {"type": "redis_stream", "stream": "p", "maxAttempts": 3}]})
    assert [(c.type, c.source, c.group, c.url) for c in api.consumers] == [
        ("nats", "s", "workers", "nats://127.0.0.1:4222"), ("redis_stream", "p", "wsgw", None)]
    with pytest.raises(ConfigError) as err:
        api_from({"routes": {}, "consumers": [{"type": "kafka"}, {"type": "amqp", "queue": "q", "url": "http://x",
                                                                  "bogus": 1}, {"type": "nats"}]})
    text = str(err.value)
    assert "consumers[0].type" in text and "consumers[1].url" in text and "consumers[1].bogus" in text
    assert "consumers[2].subject" in text


def test_a_jetstream_consumer_takes_a_durable_name_and_its_options_only_with_jetstream() -> None:
    [spec] = api_from({"routes": {}, "consumers": [{"type": "nats", "subject": "s", "queue": "workers",
                                                    "jetstream": True, "ackWaitSeconds": 5}]}).consumers
    assert (spec.jetstream, spec.durable, spec.ack_wait_seconds) == (True, "workers", 5)
    with pytest.raises(ConfigError) as err:
        api_from({"routes": {}, "consumers": [{"type": "nats", "subject": "s", "durable": "d", "results": "r"},
                                              {"type": "nats", "subject": "s", "jetstream": True, "durable": "a.b"},
                                              {"type": "nats", "subject": "s", "jetstream": "yes",
                                               "ackWaitSeconds": 0}]})
    text = str(err.value)
    assert "consumers[0].durable" in text and "consumers[0].results" in text and "consumers[1].durable" in text
    assert "consumers[2].jetstream" in text and "consumers[2].ackWaitSeconds" in text


def test_queue_integration_options_are_checked_by_key() -> None:
    with pytest.raises(ConfigError) as err:
        api_from({"routes": {"a": {"integration": {"type": "nats", "subject": "a.*"}},
                             "b": {"integration": {"type": "amqp", "url": "amqp://h/", "persistent": "yes"}},
                             "c": {"integration": {"type": "redis_stream", "stream": "s", "maxLen": 0}}}})
    text = str(err.value)
    assert "routes.a.integration.subject" in text and "routes.b.integration.routingKey" in text
    assert "routes.b.integration.persistent" in text and "routes.c.integration.maxLen" in text


def test_every_consumer_type_the_config_accepts_has_a_consumer_class_in_the_table() -> None:
    from wsgw.config.consumers import CONSUMER_TYPES
    from wsgw.consumers import CONSUMER_CLASSES, consumer_class

    assert set(CONSUMER_CLASSES) == set(CONSUMER_TYPES)
    assert all(callable(consumer_class(name).from_spec) for name in CONSUMER_CLASSES)
