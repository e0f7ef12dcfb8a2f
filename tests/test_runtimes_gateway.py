"""Node.js, custom-runtime and Python functions behind the gateway, loaded from a SAM template in the shape of AWS's
Node.js chat sample (tests/fixtures/sam_node): real `node` processes through the Lambda Runtime API, the AWS SDK
for JavaScript v3 against DynamoDB (a local moto server), clients over wss, AWS's host name for the API reaching
this gateway. One gateway serves the module (its environments are shared, as on one node)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import ROOT, serve, wait_for, wait_for_sync
from tests.runtimes_fixtures import process_gone, require_node_sdk
from wsgw.config import ApiConfig, parse_api
from wsgw.integrations.runtime import RuntimeHost, runtime_host
from wsgw.loaders import LoadOptions, load_document
from wsgw.runtimes import endpoint_alias
from wsgw.runtimes.environments import FunctionEnvironments
from wsgw.server.app import GatewayServer
from wsgw.server.node import api_host_names
from wsgw.tls.setup import build_tls

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "sam_node" / "template.yaml"
TABLE = "simplechat_connections"


@pytest.fixture(scope="module")
def dynamodb_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    dynamodb(url).create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                               KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
                               AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}])
    try:
        yield url
    finally:
        server.stop()


def dynamodb(url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def table_ids(url: str) -> set[str]:
    return {item["connectionId"]["S"] for item in dynamodb(url).scan(TableName=TABLE)["Items"]}


def load_sample(dynamodb: str) -> ApiConfig:
    """The template as `wsgw run -c template.yaml` reads it; only where DynamoDB is differs from AWS."""
    loaded = load_document(TEMPLATE, LoadOptions())
    raw = {**loaded.raw, "environment": {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb}}
    return parse_api(raw, loaded.base_dir)


@dataclass
class Sample:
    server: GatewayServer
    host: RuntimeHost
    trust: ssl.SSLContext
    dynamodb: str
    pids: set[int]

    @property
    def url(self) -> str:
        return f"wss://localhost:{self.server.port}/Prod"

    def function(self, logical: str) -> FunctionEnvironments:
        return self.host.functions[logical]

    def remember_pids(self) -> None:
        for fn in self.host.functions.values():
            self.pids.update(env.pid for env in fn.environments if env.pid is not None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sample(dynamodb_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sample]:
    require_node_sdk()
    api = load_sample(dynamodb_url)
    ca_dir = tmp_path_factory.mktemp("wsgw-sample-ca")
    tls = build_tls("only", ca_dir=ca_dir, api_hosts=api_host_names(api, os.environ))
    trust = ssl.create_default_context(cafile=str(tls.dev_ca))
    pids: set[int] = set()
    async with serve(api, tls=tls) as server:
        state = Sample(server, runtime_host(server.node.resources), trust, dynamodb_url, pids)
        yield state
        state.remember_pids()
    # Stopping the node stopped every runtime process it started: no orphans.
    assert pids and all(process_gone(pid) for pid in pids)
    assert endpoint_alias.alias_for(api_host_names(api, os.environ)[0]) is None


async def action(ws: ClientConnection, name: str, data: Any) -> Any:
    await ws.send(json.dumps({"action": name, "data": data}))
    return await asyncio.wait_for(ws.recv(), 10)


def error_message(frame: Any) -> str:
    return str(json.loads(frame)["message"])


async def test_the_node_chat_sample_chats_over_wss_and_deletes_a_stale_connection(sample: Sample) -> None:
    async with connect(sample.url, ssl=sample.trust) as alice, connect(sample.url, ssl=sample.trust) as bob, \
            connect(sample.url, ssl=sample.trust) as carol:
        live = set(sample.server.gateway.connections)
        assert len(live) == 3
        # $connect ran onconnect in Node: each connection is in the table (others' may linger until their
        # $disconnect lands)
        await asyncio.to_thread(wait_for_sync, lambda: live <= table_ids(sample.dynamodb))

        await alice.send(json.dumps({"action": "sendmessage", "data": "hello from alice"}))
        for ws in (alice, bob, carol):
            assert await asyncio.wait_for(ws.recv(), 10) == "hello from alice"

        # A connection AWS would answer 410 for: the handler's GoneException path deletes it from the table.
        await asyncio.to_thread(dynamodb(sample.dynamodb).put_item, TableName=TABLE,
                                Item={"connectionId": {"S": "c3RhbGUwMDA="}})
        await carol.send(json.dumps({"action": "sendmessage", "data": "second"}))
        for ws in (alice, bob, carol):
            assert await asyncio.wait_for(ws.recv(), 10) == "second"
        await asyncio.to_thread(wait_for_sync, lambda: "c3RhbGUwMDA=" not in table_ids(sample.dynamodb))

        send = sample.function("SendMessageFunction")
        assert len(send.cold_starts) == 1            # the second message reused the warm environment
        sample.remember_pids()
    # $disconnect ran ondisconnect in Node after each socket closed
    await asyncio.to_thread(wait_for_sync, lambda: not live & table_ids(sample.dynamodb))


async def test_a_commonjs_callback_handler_answers_and_keeps_its_module_state(sample: Sample) -> None:
    async with connect(sample.url, ssl=sample.trust) as ws:
        first = json.loads(await action(ws, "echo", "one"))
        second = json.loads(await action(ws, "echo", "two"))
    assert (first["echo"], second["echo"]) == ("one", "two")
    assert second["calls"] == first["calls"] + 1 and second["pid"] == first["pid"]      # warm reuse
    assert first["function"] == "EchoFunction" and first["memory"] == "128"
    assert 0 < first["left"] <= 5000                          # Globals.Timeout: 5 s


async def test_reserved_concurrency_queues_callers_on_one_environment(sample: Sample) -> None:
    async with connect(sample.url, ssl=sample.trust) as a, connect(sample.url, ssl=sample.trust) as b:
        answers = await asyncio.gather(action(a, "echo", {"n": 1}), action(b, "echo", {"n": 2}))
    pids = {json.loads(answer)["pid"] for answer in answers}
    assert len(pids) == 1                                     # ReservedConcurrentExecutions: 1
    assert sample.function("EchoFunction").spec.concurrency == 1
    sample.remember_pids()


async def test_a_custom_runtime_bootstrap_serves_its_route(sample: Sample) -> None:
    async with connect(sample.url, ssl=sample.trust) as ws:
        answer = json.loads(await action(ws, "custom", "hi"))
    assert answer == {"custom": "hi", "handler": "echo.handler"}
    sample.remember_pids()


async def test_failures_are_answered_with_aws_frames_and_the_environment_is_replaced(sample: Sample) -> None:
    async with connect(sample.url, ssl=sample.trust) as ws:
        fine = await action(ws, "fault", "ok")
        assert fine.startswith("fine pid=")
        assert error_message(await action(ws, "fault", "throw")) == "Internal server error"
        crashed_pid = int(fine.removeprefix("fine pid="))
        assert error_message(await action(ws, "fault", "exit")) == "Internal server error"
        assert process_gone(crashed_pid)
        assert error_message(await action(ws, "fault", "hang")) == "Endpoint request timed out"   # Timeout: 2
        after = await action(ws, "fault", "ok")
        assert after.startswith("fine pid=") and after != fine                # a fresh environment
    sample.remember_pids()


async def test_in_process_python_reaches_the_gateway_by_the_execute_api_host(sample: Sample) -> None:
    api = sample.server.api
    name = endpoint_alias.execute_api_host(api.api_id, api.region)
    alias = endpoint_alias.alias_for(name)
    assert alias is not None and alias.port == sample.server.port
    assert endpoint_alias.alias_for("sts.amazonaws.com") is None              # nothing else is redirected
    assert endpoint_alias.alias_for(f"other.execute-api.{api.region}.amazonaws.com") is None
    async with connect(sample.url, ssl=sample.trust) as ws:
        # the handler posts to its own connection via boto3, then answers (route response)
        assert await action(ws, "pyecho", "x") == "pushed:x"
        assert await asyncio.wait_for(ws.recv(), 10) == "python:x"


async def test_python_with_process_isolation_runs_through_the_runtime_api(tmp_path: Path) -> None:
    code = tmp_path / "iso"
    code.mkdir()
    (code / "app.py").write_text("import os\n\ndef handler(event, context):\n"
                                 "    return {'statusCode': 200, 'body': f\"{os.getpid()} {context.function_name}\"}\n")
    raw = {"routes": {"$default": {"routeResponse": True, "integration": {
        "type": "python", "isolation": "process", "handler": "app.handler", "codeUri": "iso",
        "functionName": "isolated", "timeoutMs": 5000}}}}
    async with serve(parse_api(raw, tmp_path)) as server:
        async with connect(server.urls.websocket) as ws:
            await ws.send("{}")
            pid, name = str(await asyncio.wait_for(ws.recv(), 10)).split()
        fn = runtime_host(server.node.resources).functions["isolated"]
        assert int(pid) != os.getpid() and name == "isolated"
        assert fn.spec.runtime.startswith("python3.")
        pids = [env.pid for env in fn.environments if env.pid is not None]
    await wait_for(lambda: all(process_gone(p) for p in pids))


async def test_template_functions_become_runtime_integrations_with_their_settings() -> None:
    api = load_sample("http://127.0.0.1:1")
    echo = api.routes["echo"].integration
    assert echo.type == "runtime"
    assert (echo.options.runtime, echo.options.handler, echo.options.concurrency) == (  # type: ignore[union-attr]
        "nodejs20.x", "index.handler", 1)
    assert api.routes["custom"].integration.options.runtime == "provided.al2023"  # type: ignore[union-attr]
    assert api.routes["fault"].integration.timeout_ms == 2000
    assert api.routes["pyecho"].integration.type == "python"               # python3.x stays in-process


def wsgw_check(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "wsgw", "check", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


async def test_wsgw_check_accepts_node_and_custom_runtimes_and_names_a_missing_node(tmp_path: Path) -> None:
    ok = await asyncio.to_thread(wsgw_check, "-c", str(TEMPLATE))
    assert ok.returncode == 0, ok.stderr
    assert "7 routes" in ok.stdout
    bare = tmp_path / "bin"
    bare.mkdir()
    missing = await asyncio.to_thread(wsgw_check, "-c", str(TEMPLATE), path=str(bare))
    assert missing.returncode == 2
    assert ("routes.$connect.integration.runtime: nodejs20.x needs `node` (Node.js 18 or later) on PATH: install "
            "the Debian package `nodejs`") in missing.stderr


async def test_serverless_runtimes_at_provider_and_function_level_become_runtime_integrations(
        tmp_path: Path) -> None:
    (tmp_path / "app.mjs").write_text("export const handler = async () => ({ statusCode: 200 });\n")
    custom = tmp_path / "bootstrap"
    custom.write_text("#!/bin/sh\n")
    custom.chmod(0o755)
    (tmp_path / "serverless.yml").write_text("""
service: chat
provider: {name: aws, runtime: nodejs20.x, timeout: 4}
functions:
  send:
    handler: app.handler
    reservedConcurrency: 3
    events: [{websocket: sendmessage}]
  native:
    handler: bootstrap
    runtime: provided.al2023
    events: [{websocket: $default}]
""")
    loaded = load_document(tmp_path / "serverless.yml", LoadOptions())
    api = parse_api(loaded.raw, loaded.base_dir)
    send, native = api.routes["sendmessage"].integration, api.routes["$default"].integration
    assert (send.type, send.timeout_ms) == ("runtime", 4000)
    assert (send.options.runtime, send.options.concurrency) == ("nodejs20.x", 3)  # type: ignore[union-attr]
    assert native.options.runtime == "provided.al2023"                         # type: ignore[union-attr]
    assert not [w for w in loaded.warnings if "oncurrency" in w.key]
