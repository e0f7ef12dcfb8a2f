"""AWS's chat sample pattern, unchanged: DynamoDB (a local moto server) + post_to_connection over https."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from websockets.asyncio.client import connect

from tests.helpers import serve, wait_for, wait_for_sync
from wsgw.tls.setup import build_tls

TABLE = "chat-connections"


@pytest.fixture(scope="module")
def dynamodb_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}])
    try:
        yield url
    finally:
        server.stop()


def table_ids(url: str) -> set[str]:
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    return {item["connectionId"]["S"] for item in client.scan(TableName=TABLE)["Items"]}


def chat_api(dynamodb: str) -> dict[str, Any]:
    # Only configuration differs from AWS: where DynamoDB is. The handler code is AWS's pattern as is.
    function = {"TABLE_NAME": TABLE, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb}

    def route(handler: str) -> dict[str, Any]:
        return {"integration": {"type": "python", "handler": handler, "codeUri": "awschat"},
                "environment": function}

    return {"routes": {"$connect": route("app:on_connect"), "$disconnect": route("app:on_disconnect"),
                       "sendmessage": route("app:send_message")}}


async def test_dynamodb_chat_runs_unchanged_over_wss(dynamodb_url: str, dev_certs: Any) -> None:
    trust = ssl.create_default_context(cafile=str(dev_certs.ca_cert))
    async with serve(chat_api(dynamodb_url), tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        url = f"wss://localhost:{server.port}/dev"
        async with connect(url, ssl=trust) as alice, connect(url, ssl=trust) as bob:
            ids = set(server.gateway.connections)
            assert await asyncio.to_thread(table_ids, dynamodb_url) == ids

            await alice.send(json.dumps({"action": "sendmessage", "data": "hello from alice"}))
            assert await alice.recv() == "hello from alice"
            assert await bob.recv() == "hello from alice"

            # A connection id AWS would answer 410 for: the sample's GoneException branch deletes it.
            client = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test")
            await asyncio.to_thread(client.put_item, TableName=TABLE, Item={"connectionId": {"S": "c3RhbGU9"}})
            await bob.send(json.dumps({"action": "sendmessage", "data": "second"}))
            assert await alice.recv() == "second"
            assert await bob.recv() == "second"
            # The handler deletes the stale id after (or while) it pushes to the live ones: wait for it.
            await asyncio.to_thread(wait_for_sync, lambda: table_ids(dynamodb_url) == ids)
        await wait_for(lambda: not server.gateway.connections)
        # $disconnect runs after the socket is gone: wait for the sample's delete_item to land
        await asyncio.to_thread(wait_for_sync, lambda: table_ids(dynamodb_url) == set())
