"""A chat backend written the AWS way, as AWS's samples write it: unchanged code must run under wsgw.

Connection ids live in a DynamoDB table (TABLE_NAME); messages are pushed with
`apigatewaymanagementapi` over https://{domainName}/{stage}; a GoneException removes the stale id.
Locally, AWS_ENDPOINT_URL_DYNAMODB points boto3 at a local DynamoDB; nothing here knows about wsgw.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(os.environ["TABLE_NAME"])


def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    table.put_item(Item={"connectionId": event["requestContext"]["connectionId"]})
    return {"statusCode": 200, "body": "Connected."}


def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    table.delete_item(Key={"connectionId": event["requestContext"]["connectionId"]})
    return {"statusCode": 200, "body": "Disconnected."}


def send_message(event: dict[str, Any], context: Any) -> dict[str, Any]:
    domain_name = event["requestContext"]["domainName"]
    stage = event["requestContext"]["stage"]
    apigw = boto3.client("apigatewaymanagementapi", endpoint_url=f"https://{domain_name}/{stage}")
    message = json.loads(event["body"])["data"]
    connection_ids = [item["connectionId"] for item in table.scan(ProjectionExpression="connectionId")["Items"]]
    for connection_id in connection_ids:
        try:
            apigw.post_to_connection(ConnectionId=connection_id, Data=message.encode("utf-8"))
        except apigw.exceptions.GoneException:
            table.delete_item(Key={"connectionId": connection_id})
    return {"statusCode": 200, "body": "Data sent."}

