"""A node serving a canary split dies (kill -9): the survivor runs each orphan's $disconnect on the version that
served the connection, and one whose version it does not serve is logged and counted, never run on other code
(two real `wsgw run --redis` processes on a real redis-server)."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import GatewayProcess, wait_for
from tests.stage_apps import read_log, write_site, write_version


def connects(log: Path) -> dict[str, str]:
    """connection id → the version whose $connect ran."""
    return {e["id"]: e["version"] for e in read_log(log) if e["kind"] == "connect"}


def disconnects(log: Path) -> list[tuple[str, str]]:
    return [(e["id"], e["version"]) for e in read_log(log) if e["kind"] == "disconnect"]


def unserved(base: str) -> dict[str, float]:
    """wsgw_orphan_disconnects_unserved_total by the deployment it names, from a node's /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wsgw_orphan_disconnects_unserved_total":
                key = sample.labels["deployment"]
                found[key] = found.get(key, 0.0) + sample.value
    return found


async def test_a_dead_nodes_connections_disconnect_on_their_own_version_or_are_counted_unserved(
        tmp_path: Path, redis_url: str) -> None:
    log = tmp_path / "calls.log"
    versions = {name: write_version(tmp_path, name, log) for name in ("v1", "v2", "v3")}
    prod = {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50}}
    dying = write_site(tmp_path / "a.yaml", {"versions": versions, "stages": {"prod": prod, "beta": {"version": "v3"}}})
    surviving = write_site(tmp_path / "b.yaml", {"versions": versions, "stages": {"prod": prod}})
    env = {"PYTHONPATH": str(tmp_path)}
    with GatewayProcess(dying, "--redis", redis_url, env=env) as a, \
            GatewayProcess(surviving, "--redis", redis_url, env=env) as b:
        opened: list[ClientConnection] = []
        try:
            # until both sides of the canary hold a connection on the node that dies (bounded: 1 in 2^40 fails)
            for _ in range(40):
                opened.append(await connect(f"ws://127.0.0.1:{a.port}/prod"))
                await wait_for(lambda: len(connects(log)) == len(opened), timeout=10)
                if set(connects(log).values()) == {"v1", "v2"}:
                    break
            opened.append(await connect(f"ws://127.0.0.1:{a.port}/beta"))
            await wait_for(lambda: "v3" in connects(log).values(), timeout=10)
            served = connects(log)
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            on_prod = {cid for cid, version in served.items() if version != "v3"}
            await wait_for(lambda: {cid for cid, _ in disconnects(log)} >= on_prod, timeout=30)
            await wait_for(lambda: unserved(f"http://127.0.0.1:{b.port}"), timeout=10)
        finally:
            await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        ran = disconnects(log)
        assert sorted(ran) == sorted((cid, served[cid]) for cid in on_prod)     # once each, on its own version
        assert {key.split("/", 1)[1] for key in unserved(f"http://127.0.0.1:{b.port}")} == {"beta/v3"}
        assert sum(unserved(f"http://127.0.0.1:{b.port}").values()) == 1
