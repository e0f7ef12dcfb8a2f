"""The Lambda-like environment: runtime variables per function, API and route `environment:`, warm state."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.helpers import APPS, api_from, serve
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError
from wsgw.integrations.environment import node_environment
from wsgw.server.node import build_node

API: dict[str, Any] = {
    "stage": "dev",
    "region": "eu-west-1",
    "environment": {"SHARED": "api-level"},
    "routes": {
        "sync": {"integration": {"type": "python", "handler": "lambdaenv:report", "memorySize": 512,
                                 "functionName": "chat-dev-sync"},
                 "environment": {"ROUTE_ONLY": "sync-route", "SHARED": "overridden"}, "routeResponse": True},
        "async": {"handler": "lambdaenv:report_async", "routeResponse": True},
        "import": {"handler": "lambdaenv:at_import", "routeResponse": True, "environment": {"GREETING": "hi"}},
    },
}


async def ask(ws: Any, action: str) -> dict[str, Any]:
    await ws.send(json.dumps({"action": action}))
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def test_each_route_sees_its_own_lambda_variables_and_environment() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        sync = await ask(ws, "sync")
        asynchronous = await ask(ws, "async")
    assert sync["function_name"] == "chat-dev-sync"
    assert sync["memory_limit_in_mb"] == "512"
    assert sync["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "chat-dev-sync"
    assert sync["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert sync["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert sync["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
    assert sync["env"]["_HANDLER"] == "lambdaenv.report"
    assert sync["env"]["LAMBDA_TASK_ROOT"] == str(APPS.resolve())
    assert sync["env"]["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/chat-dev-sync"
    assert sync["env"]["ROUTE_ONLY"] == "sync-route" and sync["in_listing"]
    assert sync["env"]["SHARED"] == "overridden"
    assert asynchronous["function_name"] == "wsgw-dev-async"
    assert asynchronous["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "wsgw-dev-async"
    assert asynchronous["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert asynchronous["env"]["ROUTE_ONLY"] is None and not asynchronous["in_listing"]
    assert asynchronous["env"]["SHARED"] == "api-level"
    assert "ROUTE_ONLY" not in os.environ and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


async def test_module_state_persists_between_invocations_as_in_a_warm_lambda() -> None:
    async with serve(API) as server, connect(server.urls.websocket) as ws:
        first = (await ask(ws, "sync"))["calls"]
        second = (await ask(ws, "async"))["calls"]
        assert second == first + 1


def test_region_comes_from_the_config_when_the_shell_has_none(tmp_path: Path) -> None:
    values = node_environment(api_from(API), {}, tmp_path)
    assert values["AWS_REGION"] == values["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_the_shells_region_wins_over_the_configs(tmp_path: Path) -> None:
    values = node_environment(api_from(API), {"AWS_REGION": "ap-south-1"}, tmp_path)
    assert values["AWS_REGION"] == "ap-south-1"
    assert values["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_route_environment_on_a_mock_route_is_a_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        api_from({"routes": {"ping": {"integration": {"type": "mock", "response": "x"},
                                      "environment": {"A": "b"}}}})
    assert [p.key for p in caught.value.problems] == ["routes.ping.environment"]


def test_bad_python_options_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as at_load:        # checked at load: the value itself is wrong
        api_from({"routes": {"a": {"integration": {"type": "python", "handler": "lambdaenv:report",
                                                   "memorySize": 5}}}})
    assert [p.key for p in at_load.value.problems] == ["routes.a.integration.memorySize"]
    api = api_from({"routes": {     # found when the node is built: the folder is not on this machine
        "b": {"integration": {"type": "python", "handler": "lambdaenv:report", "codeUri": "nowhere/"}},
    }})
    with pytest.raises(ConfigError) as at_build:
        build_node(api, NodeConfig())
    assert [p.key for p in at_build.value.problems] == ["routes.b.integration.codeUri"]


async def test_same_module_name_in_two_code_folders_loads_two_modules(tmp_path: Path) -> None:
    for name in ("connect", "send"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "helper.py").write_text(f"WHO = {name!r}\n")
        (folder / "app.py").write_text(
            "import helper\n"
            "def handler(event, context):\n"
            "    return {'statusCode': 200, 'body': helper.WHO + ':' + __file__.rsplit('/', 2)[-2]}\n")
    api = api_from({"routes": {
        "one": {"integration": {"type": "python", "handler": "app:handler", "codeUri": "connect"},
                "routeResponse": True},
        "two": {"integration": {"type": "python", "handler": "app:handler", "codeUri": "send"},
                "routeResponse": True},
    }}, base_dir=tmp_path)
    async with serve(api) as server, connect(server.urls.websocket) as ws:
        await ws.send(json.dumps({"action": "one"}))
        assert await ws.recv() == "connect:connect"
        await ws.send(json.dumps({"action": "two"}))
        assert await ws.recv() == "send:send"


async def test_concurrent_handlers_of_different_routes_each_see_their_own_environment() -> None:
    def route(name: str) -> dict[str, Any]:
        return {"integration": {"type": "python", "handler": "lambdaenv:meet_then_report", "functionName": name},
                "environment": {"ROUTE_ONLY": f"only-{name}"}, "routeResponse": True}

    api = {"routes": {"left": route("left"), "right": route("right")}}
    async with serve(api) as server, connect(server.urls.websocket) as a, connect(server.urls.websocket) as b:
        await a.send(json.dumps({"action": "left"}))
        await b.send(json.dumps({"action": "right"}))
        replies = await asyncio.gather(a.recv(), b.recv())
    assert [json.loads(r) for r in replies] == [["left", "only-left"], ["right", "only-right"]]


@pytest.mark.parametrize("variable", ["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"])
def test_real_credential_sources_in_the_environment_are_seen(variable: str, tmp_path: Path) -> None:
    from wsgw.integrations.environment import has_aws_credentials

    assert has_aws_credentials({variable: "x"}, tmp_path)


@pytest.mark.parametrize("name", ["credentials", "config"])
def test_shared_aws_files_count_as_credentials(name: str, tmp_path: Path) -> None:
    from wsgw.integrations.environment import has_aws_credentials

    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / name).write_text("[default]\n")
    assert has_aws_credentials({}, tmp_path)


def test_a_bare_machine_has_no_credentials(tmp_path: Path) -> None:
    from wsgw.integrations.environment import has_aws_credentials

    on_ec2 = Path("/sys/devices/virtual/dmi/id/board_asset_tag")
    expected = on_ec2.exists() and on_ec2.read_text().strip().startswith("i-")
    assert has_aws_credentials({}, tmp_path) is expected
