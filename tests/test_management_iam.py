"""IAM (SigV4) on the management API and on `$connect`: boto3 and the AWS SDK for JavaScript v3 work unchanged
with the configured credentials and get API Gateway's 403 error types with wrong ones; an altered body, an
expired signature and an unsigned call are refused; a presigned handshake opens a connection whose events
carry the signer's access key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
import testapp
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import api_from, endpoint, serve
from tests.runtimes_fixtures import NODE_RUNTIME_DIR, require_node_sdk
from tests.test_sigv4 import signed
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.server.node import build_node

AKID = "AKIDWSGWTEST"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"


def iam_api(**extra: Any) -> dict[str, Any]:
    return {
        "region": REGION,
        "management": {"auth": "iam", "credentials": [{"accessKeyId": AKID, "secretAccessKey": SECRET}]},
        "routes": {"$connect": {"handler": "testapp:ok"}, "$default": {"handler": "testapp:echo"}},
        **extra,
    }


def client(server: Any, key: str = AKID, secret: str = SECRET) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint(server), region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def error_of(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["Error"].get("Message", ""))


async def test_boto3_with_the_configured_credentials_posts_gets_and_deletes() -> None:
    async with serve(iam_api()) as server, connect(server.urls.websocket) as ws:
        conn_id = next(iter(server.gateway.connections))
        mgmt = client(server)
        await asyncio.to_thread(mgmt.post_to_connection, ConnectionId=conn_id, Data=b"signed hello")
        assert await ws.recv() == "signed hello"
        described = await asyncio.to_thread(mgmt.get_connection, ConnectionId=conn_id)
        assert described["Identity"]["SourceIp"] == "127.0.0.1"
        await asyncio.to_thread(mgmt.delete_connection, ConnectionId=conn_id)


async def test_boto3_with_wrong_credentials_gets_api_gateways_403s() -> None:
    async with serve(iam_api()) as server, connect(server.urls.websocket):
        conn_id = next(iter(server.gateway.connections))
        wrong_secret = client(server, secret="not-the-secret")
        status, code, message = await asyncio.to_thread(
            error_of, lambda: wrong_secret.post_to_connection(ConnectionId=conn_id, Data=b"x"))
        assert (status, code) == (403, "InvalidSignatureException")
        assert message.startswith("The request signature we calculated does not match")
        unknown = client(server, key="AKIDSOMEONEELSE")
        status, code, message = await asyncio.to_thread(
            error_of, lambda: unknown.get_connection(ConnectionId=conn_id))
        assert (status, code, message) == (403, "UnrecognizedClientException",
                                           "The security token included in the request is invalid.")
        assert len(server.gateway.connections) == 1


async def test_unsigned_altered_and_expired_calls_are_refused() -> None:
    async with serve(iam_api()) as server, connect(server.urls.websocket) as ws, \
            aiohttp.ClientSession() as session:
        conn_id = next(iter(server.gateway.connections))
        host = f"127.0.0.1:{server.port}"
        url = f"http://{host}/dev/@connections/{conn_id}"
        async with session.post(url, data=b"unsigned") as response:
            assert response.status == 403
            assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
            assert await response.json() == {"message": "Missing Authentication Token"}

        def sign(body: bytes, at: float | None = None) -> dict[str, str]:
            import tests.test_sigv4 as s
            old = s.HOST, s.KEYS
            s.HOST = host
            s.KEYS = {AKID: s.SigningKey(AKID, SECRET)}
            try:
                _, _, headers = signed("POST", f"/dev/@connections/{conn_id}", body, key_id=AKID, secret=SECRET,
                                       region=REGION, at=at)
            finally:
                s.HOST, s.KEYS = old
            return {k: v for k, v in headers if k.lower() != "host"}

        async with session.post(url, data=b"the real body", headers=sign(b"a signed body")) as response:
            assert response.status == 403
            assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
        async with session.post(url, data=b"old", headers=sign(b"old", at=time.time() - 400)) as response:
            assert response.status == 403
            assert (await response.json())["message"].startswith("Signature expired:")
        async with session.post(url, data=b"fresh", headers=sign(b"fresh")) as response:
            assert response.status == 200
        assert await ws.recv() == "fresh"


async def test_broadcast_and_groups_need_the_signature_too() -> None:
    async with serve(iam_api()) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}/dev"
        for url in (f"{base}/@broadcast", f"{base}/@groups/room"):
            async with session.post(url, data=b"x") as response:
                assert response.status == 403, url
                assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        async with session.get(f"{base}/@connections?principalId=p") as response:
            assert response.status == 403


async def test_the_javascript_sdk_signs_and_is_refused_with_a_wrong_secret(tmp_path: Path) -> None:
    require_node_sdk()
    sdk = NODE_RUNTIME_DIR / "node_modules" / "@aws-sdk" / "client-apigatewaymanagementapi"
    script = tmp_path / "post.cjs"
    script.write_text(f"""
const {{ ApiGatewayManagementApiClient, PostToConnectionCommand }} = require({json.dumps(str(sdk))});
const [endpoint, id, secret] = process.argv.slice(2);
const client = new ApiGatewayManagementApiClient({{ endpoint, region: {json.dumps(REGION)},
  credentials: {{ accessKeyId: {json.dumps(AKID)}, secretAccessKey: secret }} }});
client.send(new PostToConnectionCommand({{ ConnectionId: id, Data: 'from js' }}))
  .then(() => console.log(JSON.stringify({{ ok: true }})))
  .catch((e) => console.log(JSON.stringify({{ ok: false, name: e.name, status: e.$metadata?.httpStatusCode }})));
""")
    async with serve(iam_api()) as server, connect(server.urls.websocket) as ws:
        conn_id = next(iter(server.gateway.connections))

        def run(secret: str) -> dict[str, Any]:
            done = subprocess.run(["node", str(script), endpoint(server), conn_id, secret], capture_output=True,
                                  text=True, timeout=60, check=True)
            return dict(json.loads(done.stdout.strip().splitlines()[-1]))

        assert await asyncio.to_thread(run, SECRET) == {"ok": True}
        assert await ws.recv() == "from js"
        assert await asyncio.to_thread(run, "wrong") == {"ok": False, "name": "InvalidSignatureException",
                                                        "status": 403}


def presigned_url(server: Any, secret: str = SECRET) -> str:
    url = f"http://127.0.0.1:{server.port}/dev"
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(AKID, secret), "execute-api", REGION, expires=60).add_auth(request)
    return str(request.url).replace("http://", "ws://")


async def test_a_presigned_connect_opens_and_events_carry_the_access_key() -> None:
    raw = iam_api()
    raw["routes"]["$connect"] = {"handler": "testapp:ok", "authorizationType": "AWS_IAM"}
    async with serve(raw) as server:
        async with connect(presigned_url(server)):
            conn = next(iter(server.gateway.connections.values()))
            assert conn.info.access_key == AKID
        event = testapp.events_of("$connect")[-1]
        assert event["requestContext"]["identity"]["accessKey"] == AKID
        for bad in (presigned_url(server, "wrong"), server.urls.websocket):
            with pytest.raises(InvalidStatus) as caught:
                async with connect(bad):
                    pass
            assert caught.value.response.status_code == 403


def test_iam_on_connect_reads_the_management_credentials_from_the_environment(monkeypatch: Any) -> None:
    raw = {"routes": {"$connect": {"handler": "testapp:ok", "authorizationType": "AWS_IAM"}}}
    with pytest.raises(ConfigError, match="WSGW_MANAGEMENT_ACCESS_KEY_ID"):
        build_node(api_from(raw), NodeConfig(host="127.0.0.1", port=0)).discard()
    monkeypatch.setenv("WSGW_MANAGEMENT_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("WSGW_MANAGEMENT_SECRET_ACCESS_KEY", SECRET)
    node = build_node(api_from(raw), NodeConfig(host="127.0.0.1", port=0))
    assert node.gateway.connect_flow.iam is not None and AKID in node.gateway.connect_flow.iam.keys
    node.discard()


def test_credentials_from_a_secret_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    raw = iam_api()
    raw["management"]["credentials"] = [{"accessKeyId": AKID, "secretAccessKeyFile": "secret"}]
    node = build_node(api_from(raw, tmp_path), NodeConfig(host="127.0.0.1", port=0))
    assert node.router.connections.iam is not None
    assert node.router.connections.iam.keys[AKID].secret_access_key == SECRET
    node.discard()
    raw["management"]["credentials"] = [{"accessKeyId": AKID, "secretAccessKeyFile": "missing"}]
    with pytest.raises(ConfigError, match="cannot read"):
        build_node(api_from(raw, tmp_path), NodeConfig(host="127.0.0.1", port=0))
