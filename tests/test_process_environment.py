"""Building, serving and stopping a node leaves the process's environment alone (issue 12 item 7): region,
credentials, the API's `environment:`, WSGW_SCHEME and the local CA's bundle reach in-process handlers only."""

from __future__ import annotations

import json
import os
from typing import Any

from websockets.asyncio.client import connect

from tests.helpers import api_from, serve
from wsgw.config.node import NodeConfig
from wsgw.server.node import build_node


def api(region: str) -> dict[str, Any]:
    return {"region": region, "environment": {"SHARED": f"from-{region}"},
            "routes": {"report": {"handler": "lambdaenv:report", "routeResponse": True}}}


async def report(url: str) -> dict[str, Any]:
    async with connect(url) as ws:
        await ws.send(json.dumps({"action": "report"}))
        return json.loads(await ws.recv())["env"]  # type: ignore[no-any-return]


async def test_a_node_never_changes_the_process_environment() -> None:
    """What made test_aws_chat fail after test_lambda_environment: a node for eu-west-1 left AWS_REGION and
    dummy credentials behind, so the next API's boto3 calls went to another region than its table's."""
    before = dict(os.environ)
    build_node(api_from(api("eu-west-1")), NodeConfig()).discard()
    assert dict(os.environ) == before
    async with serve(api("eu-west-1")) as server:
        seen = await report(server.urls.websocket)
        assert dict(os.environ) == before
    assert dict(os.environ) == before
    assert seen["SHARED"] == "from-eu-west-1"


async def test_two_nodes_in_one_process_each_give_their_handlers_their_own_region() -> None:
    shell = os.environ.get("AWS_REGION")
    async with serve(api("eu-west-1")) as west, serve(api("ap-south-1")) as south:
        seen_west, seen_south = await report(west.urls.websocket), await report(south.urls.websocket)
    assert seen_west["SHARED"] == "from-eu-west-1" and seen_south["SHARED"] == "from-ap-south-1"
    # the shell's region wins over the API's, as the Lambda runtime's would; absent, each API's own
    assert seen_west["AWS_REGION"] == (shell or "eu-west-1")
    assert seen_south["AWS_REGION"] == (shell or "ap-south-1")

