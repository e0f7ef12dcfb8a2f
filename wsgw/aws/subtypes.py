"""AWS_PROXY integration subtypes: which service operation each one calls and how its `requestParameters`
become the operation's input; pure (the names and parameters are AWS's, docs/aws-services.md cites them).

AWS's own (HTTP APIs' "Integration subtype reference"): SQS-SendMessage, EventBridge-PutEvents,
Kinesis-PutRecord, StepFunctions-StartExecution. wsgw's own, named the same way: SNS-Publish, DynamoDB-PutItem
and Lambda-Invoke (always InvocationType Event: the function runs asynchronously and the route answers once
Lambda queued the event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["SUBTYPES", "Subtype", "SubtypeError"]


class SubtypeError(ValueError):
    """A parameter value the operation cannot take (not a number, not JSON)."""


# How one parameter's value (text, or the JSON value of a whole `$request.body.x`) becomes an input member.
Kind = str   # "str" | "int" | "json" | "blob" | "jsontext"


def _convert(name: str, kind: Kind, value: object) -> object:
    if kind == "str":
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if kind == "jsontext":        # a JSON document carried as a string (EventBridge Detail, Step Functions Input)
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if kind == "int":
        try:
            return int(str(value))
        except ValueError:
            raise SubtypeError(f"{name}: '{value}' is not a whole number") from None
    if kind == "blob":
        return value.encode() if isinstance(value, str) else orjson.dumps(value)
    # json: a structure, map or list given as JSON text or as a JSON value
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise SubtypeError(f"{name}: not JSON") from None
    return value


@dataclass(frozen=True, slots=True)
class Subtype:
    """One subtype: botocore's service name, the operation, its parameters (name -> kind) and the required ones."""

    name: str
    service: str
    operation: str
    parameters: Mapping[str, Kind]
    required: frozenset[str]
    shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda params: params
    one_of: frozenset[str] = frozenset()     # at least one of these must be given

    def build(self, values: Mapping[str, object]) -> dict[str, Any]:
        """The operation's input from the mapped values (Region excluded: it picks the endpoint)."""
        params = {name: _convert(name, self.parameters[name], value)
                  for name, value in values.items() if name != "Region" and value != ""}
        return self.shape(params)


def _put_events(params: dict[str, Any]) -> dict[str, Any]:
    return {"Entries": [params]}


def _start_execution(params: dict[str, Any]) -> dict[str, Any]:
    """Step Functions' API spells its members in camelCase; the subtype's parameters are AWS's PascalCase."""
    return {name[0].lower() + name[1:]: value for name, value in params.items()}


def _invoke_event(params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "InvocationType": "Event"}


SUBTYPES: dict[str, Subtype] = {s.name: s for s in (
    Subtype("SQS-SendMessage", "sqs", "SendMessage",
            {"QueueUrl": "str", "MessageBody": "str", "DelaySeconds": "int", "MessageAttributes": "json",
             "MessageDeduplicationId": "str", "MessageGroupId": "str", "MessageSystemAttributes": "json",
             "Region": "str"},
            frozenset({"QueueUrl", "MessageBody"})),
    Subtype("EventBridge-PutEvents", "events", "PutEvents",
            {"Detail": "jsontext", "DetailType": "str", "Source": "str", "Time": "str", "EventBusName": "str",
             "Resources": "json", "Region": "str", "TraceHeader": "str"},
            frozenset({"Detail", "DetailType", "Source"}), _put_events),
    Subtype("Kinesis-PutRecord", "kinesis", "PutRecord",
            {"StreamName": "str", "Data": "blob", "PartitionKey": "str", "SequenceNumberForOrdering": "str",
             "ExplicitHashKey": "str", "Region": "str"},
            frozenset({"StreamName", "Data", "PartitionKey"})),
    Subtype("StepFunctions-StartExecution", "stepfunctions", "StartExecution",
            {"StateMachineArn": "str", "Name": "str", "Input": "jsontext", "Region": "str"},
            frozenset({"StateMachineArn"}), _start_execution),
    Subtype("SNS-Publish", "sns", "Publish",
            {"TopicArn": "str", "TargetArn": "str", "Message": "str", "Subject": "str", "MessageAttributes": "json",
             "MessageGroupId": "str", "MessageDeduplicationId": "str", "Region": "str"},
            frozenset({"Message"}), one_of=frozenset({"TopicArn", "TargetArn"})),
    Subtype("DynamoDB-PutItem", "dynamodb", "PutItem",
            {"TableName": "str", "Item": "json", "ConditionExpression": "str", "ExpressionAttributeNames": "json",
             "ExpressionAttributeValues": "json", "Region": "str"},
            frozenset({"TableName", "Item"})),
    Subtype("Lambda-Invoke", "lambda", "Invoke",
            {"FunctionName": "str", "Payload": "blob", "Qualifier": "str", "ClientContext": "str", "Region": "str"},
            frozenset({"FunctionName"}), _invoke_event),
)}
