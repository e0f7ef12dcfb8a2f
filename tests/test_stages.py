"""Several stages, versions and APIs in one node: stage variables and throttles apart, canaries sticky per
connection, same-named handler modules apart, reload under load without dropping a socket or a message."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import free_port, wait_for
from tests.stage_apps import read_log, write_site, write_version
from wsgw.cli import _build_parser, _node_config
from wsgw.config.node import NodeConfig
from wsgw.config.site import load_site
from wsgw.errors import ConfigError
from wsgw.integrations.runtime import runtime_host
from wsgw.loaders import LoadOptions
from wsgw.runtimes.endpoint_alias import alias_for, execute_api_host
from wsgw.server.app import GatewayServer
from wsgw.server.site import Site, site_host_names
from wsgw.tls.setup import build_tls


@asynccontextmanager
async def serve_site(path: Path, rnd: Any = None, **node: Any) -> AsyncIterator[GatewayServer]:
    site, _ = load_site(path)
    server = GatewayServer(Site(site, NodeConfig(host="127.0.0.1", port=0, **node), rnd=rnd))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels are exactly `labels` in a /metrics text."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def ws_url(server: GatewayServer, stage: str, port: int | None = None) -> str:
    return f"ws://127.0.0.1:{port or server.port}/{stage}"


async def ask(ws: ClientConnection, body: str = "hi") -> dict[str, Any]:
    await ws.send(body)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[no-any-return]


async def test_each_stage_has_its_own_stage_variables_throttle_and_request_context(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1 = write_version(tmp_path, "v1", log, stageVariables={"shared": "file"})
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1}, "stages": {
        "prod": {"version": "v1", "stageVariables": {"color": "blue"},
                 "throttling": {"rateLimit": 0.001, "burstLimit": 3}},
        "beta": {"version": "v1", "stageVariables": {"color": "green"}},
    }})
    async with serve_site(path) as server:
        async with connect(ws_url(server, "prod")) as prod, connect(ws_url(server, "beta")) as beta:
            first = await ask(prod)
            assert first["stage"] == "prod" and first["vars"] == {"shared": "file", "color": "blue"}
            answer = await ask(beta)
            assert answer["stage"] == "beta" and answer["vars"] == {"shared": "file", "color": "green"}
            await ask(prod)              # the burst of 3 ($connect took one): this message takes the last
            refused = await ask(prod)
            assert refused["message"] == "Too Many Requests"
            for _ in range(5):           # beta's bucket is its own
                assert (await ask(beta))["stage"] == "beta"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/beta/info") as reply:
                assert reply.status == 200 and json.loads(await reply.text())["vars"]["color"] == "green"
            async with http.get(f"http://127.0.0.1:{server.port}/nope/info") as reply:
                assert reply.status == 404
            async with http.get(f"http://127.0.0.1:{server.port}/metrics") as reply:
                text = await reply.text()
            # the lone API is labelled by its ApiId (CloudWatch's dimension), the version by its name
            assert sample(text, "wsgw_messages_received_total", api="wsgwlocal0", stage="beta", version="v1") == 6


async def test_a_canary_and_its_main_version_take_the_stages_rate_together(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1, v2 = write_version(tmp_path, "v1", log), write_version(tmp_path, "v2", log)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {
        "version": "v1", "throttling": {"rateLimit": 0.001, "burstLimit": 6},
        "canary": {"version": "v2", "percentTraffic": 50}}}})
    sides = iter([0.0, 0.99])                  # the first connection to the canary, the second to v1
    async with serve_site(path, rnd=lambda: next(sides)) as server, \
            connect(ws_url(server, "prod")) as canary, connect(ws_url(server, "prod")) as main:
        answers = [await ask(ws, f"m{i}") for i in range(4) for ws in (canary, main)]
    # one bucket of 6 for the stage: two $connects took two, four messages of eight get through (not 2 x 6)
    assert [a.get("version") for a in answers[:4]] == ["v2", "v1", "v2", "v1"]
    assert all(a.get("message") == "Too Many Requests" for a in answers[4:])


async def test_canary_takes_its_share_of_connections_and_keeps_each_for_life(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1, v2 = write_version(tmp_path, "v1", log), write_version(tmp_path, "v2", log)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {
        "version": "v1", "stageVariables": {"color": "blue"},
        "canary": {"version": "v2", "percentTraffic": 30, "stageVariableOverrides": {"color": "green"}}}}})
    count = 300
    async with serve_site(path) as server:
        async def one(i: int) -> str:
            async with connect(ws_url(server, "prod")) as ws:
                first = await ask(ws, f"m{i}")
                second = await ask(ws, f"n{i}")
                assert first["version"] == second["version"]
                assert first["vars"]["color"] == ("green" if first["version"] == "v2" else "blue")
                return str(first["version"])

        versions: list[str] = []
        for start in range(0, count, 50):
            versions += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 50))))
        await wait_for(lambda: sum(e["kind"] == "disconnect" for e in read_log(log)) == count, timeout=20)
        text = server.site.metrics().decode()
    share = Counter(versions)["v2"]
    # binomial(300, 0.3): mean 90, sd 7.9; 5 sd either side
    assert 50 <= share <= 130, share
    by_connection: dict[str, set[str]] = {}
    for entry in read_log(log):
        by_connection.setdefault(entry["id"], set()).add(entry["version"])
    assert len(by_connection) == count
    assert all(len(v) == 1 for v in by_connection.values())     # $connect, messages, $disconnect: one version
    assert Counter(next(iter(v)) for v in by_connection.values())["v2"] == share
    assert sample(text, "wsgw_connections_opened_total", api="wsgwlocal0", stage="prod", version="v2",
                  canary="true") == share
    assert sample(text, "wsgw_connections_opened_total", api="wsgwlocal0", stage="prod", version="v1") == count - share


async def test_every_deployment_writes_its_own_access_log_and_traces_its_own_calls(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"

    def observed(version: str) -> str:
        return write_version(tmp_path, version, log, tracing={"exporter": "memory"},
                             accessLogSettings={"destination": {"file": str(tmp_path / f"{version}.access.log")}})

    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": observed("v1"), "v2": observed("v2")}, "stages": {
        "prod": {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50}},
        "beta": {"version": "v1"}}})
    picks = iter([0.0, 0.99])                  # the first prod connection goes to the canary, the second to v1
    async with serve_site(path, rnd=lambda: next(picks)) as server:
        for stage in ("prod", "prod", "beta"):
            async with connect(ws_url(server, stage)) as ws:
                assert (await ask(ws))["stage"] == stage
        deployments = {(d.stage, d.version): d for d in server.site.routing.deployments}
        assert set(deployments) == {("prod", "v1"), ("prod", "v2"), ("beta", "v1")}
        for deployment in deployments.values():
            tracing = deployment.node.tracing
            assert tracing is not None and tracing.exported is not None
            await wait_for(lambda t=tracing.exported: {"websocket.connect", "websocket.message"}   # type: ignore[misc]
                           <= {s.name for s in t.get_finished_spans()})
        assert len({id(d.node.tracing) for d in deployments.values()}) == 3
    written: dict[str, list[tuple[str, str]]] = {}
    for version in ("v1", "v2"):
        records = [json.loads(line) for line in (tmp_path / f"{version}.access.log").read_text().splitlines()]
        written[version] = sorted({(r["stage"], r["eventType"]) for r in records})
    events = ("CONNECT", "DISCONNECT", "MESSAGE")
    assert written["v1"] == sorted({(stage, e) for stage in ("beta", "prod") for e in events})
    assert written["v2"] == [("prod", e) for e in events]


async def test_each_stage_has_its_own_inspector(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1 = write_version(tmp_path, "v1", log)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1}, "stages": {
        "prod": {"version": "v1"}, "beta": {"version": "v1"}}})
    async with serve_site(path) as server, aiohttp.ClientSession() as http, connect(ws_url(server, "beta")) as ws:
        await ask(ws)
        beta = next(iter(server.site.routing.apis["default"].stages["beta"].main.gateway.connections))
        for stage, expected in (("beta", [beta]), ("prod", [])):
            async with http.get(f"http://127.0.0.1:{server.port}/{stage}/@inspect") as reply:
                assert reply.status == 200 and "text/html" in reply.headers["Content-Type"]
            async with connect(f"ws://127.0.0.1:{server.port}/{stage}/@inspect/ws") as inspector:
                snapshot = json.loads(await asyncio.wait_for(inspector.recv(), 5))
                assert snapshot["type"] == "snapshot"
                assert [c["connectionId"] for c in snapshot["connections"]] == expected


async def test_rest_requests_pick_the_canary_per_request(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1, v2 = write_version(tmp_path, "v1", log), write_version(tmp_path, "v2", log)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": v2}, "stages": {
        "prod": {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50}}}})
    async with serve_site(path, rnd=random.Random(7).random) as server, aiohttp.ClientSession() as http:
        seen: Counter[str] = Counter()
        for _ in range(60):
            async with http.get(f"http://127.0.0.1:{server.port}/prod/info") as reply:
                seen[json.loads(await reply.text())["version"]] += 1
    assert seen["v1"] > 10 and seen["v2"] > 10


async def test_two_apis_in_one_process_keep_modules_environment_and_connections_apart(tmp_path: Path) -> None:
    chat_log, game_log = tmp_path / "chat.log", tmp_path / "game.log"
    chat_root, game_root = tmp_path / "chat", tmp_path / "game"
    chat_root.mkdir()
    game_root.mkdir()
    chat = write_version(chat_root, "v1", chat_log, api_name="chat")
    game = write_version(game_root, "v1", game_log, api_name="game")
    game_port = free_port()
    path = write_site(tmp_path / "wsgw.yaml", {"apis": {
        "chat": {"hosts": ["chat.example.com"], "versions": {"v1": f"chat/{chat}"}, "stages": {"prod": {}}},
        "game": {"port": game_port, "versions": {"v1": f"game/{game}"}, "stages": {"prod": {}}},
        "ops": {"hosts": ["ops.example.com"], "versions": {"v1": f"chat/{chat}"}, "stages": {"live": {}}},
    }})
    async with serve_site(path) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{server.port}/prod",
                                   headers={"Host": "chat.example.com"}) as on_chat, \
                connect(ws_url(server, "prod", game_port)) as on_game:
            await on_chat.send_str("hello")
            chat_answer = json.loads(await on_chat.receive_str(timeout=5))
            game_answer = await ask(on_game)
            assert chat_answer["api"] == "chat" and game_answer["api"] == "game"
            # a push names its API by where it is sent: chat's id is unknown to game
            chat_id = read_log(chat_log)[0]["id"]
            async with http.post(f"http://127.0.0.1:{game_port}/prod/@connections/{chat_id}", data=b"x") as reply:
                assert reply.status == 410
            async with http.post(f"http://127.0.0.1:{server.port}/prod/@connections/{chat_id}", data=b"x",
                                 headers={"Host": "chat.example.com"}) as reply:
                assert reply.status == 200
            assert await on_chat.receive_str(timeout=5) == "x"
        async with http.get(f"http://127.0.0.1:{server.port}/prod/info", headers={"Host": "other.example"}) as r:
            assert r.status == 404                 # no API takes every host on the main port
        async with http.get(f"http://127.0.0.1:{server.port}/live/info", headers={"Host": "ops.example.com"}) as r:
            assert r.status == 200
    assert {e["api"] for e in read_log(chat_log)} == {"chat"} and {e["api"] for e in read_log(game_log)} == {"game"}


async def test_every_apis_execute_api_host_reaches_its_own_port_with_the_dev_ca(tmp_path: Path) -> None:
    """Handlers build `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`: with several APIs each name
    reaches the port serving its API (picked there by apiId when the port picks by Host), runtime hosts of every
    deployment are told the whole table, and stopping the node takes it out again."""
    log = tmp_path / "calls.log"
    chat_root, game_root = tmp_path / "chat", tmp_path / "game"
    chat_root.mkdir()
    game_root.mkdir()
    chat = write_version(chat_root, "v1", log, api_name="chat", apiId="chatapi01")
    game = write_version(game_root, "v1", log, api_name="game", apiId="gameapi01")
    game_port = free_port()
    path = write_site(tmp_path / "wsgw.yaml", {"apis": {
        "chat": {"hosts": ["chat.example.com"], "versions": {"v1": f"chat/{chat}"}, "stages": {"prod": {}}},
        "game": {"port": game_port, "versions": {"v1": f"game/{game}"}, "stages": {"prod": {}, "beta": {}}},
    }})
    site, _ = load_site(path)
    names = site_host_names(site, {})
    region = site.first().region
    chat_host, game_host = (execute_api_host(i, region) for i in ("chatapi01", "gameapi01"))
    assert names == (chat_host, game_host)
    tls = build_tls("only", ca_dir=tmp_path / "ca", api_hosts=names)
    assert tls.dev_ca is not None
    trust = ssl.create_default_context(cafile=str(tls.dev_ca))

    def get(url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, context=trust, timeout=5) as reply:       # resolves via getaddrinfo
            return json.loads(reply.read())  # type: ignore[no-any-return]

    async with serve_site(path, tls=tls) as server:
        hosts = [runtime_host(d.node.resources) for d in server.site.routing.deployments]
        assert len(hosts) == 3 and all(h.local_ca == tls.dev_ca for h in hosts)
        assert all({(a.name, a.port) for a in h.aliases} >= {(chat_host, server.port), (game_host, game_port)}
                   for h in hosts)
        chat_answer = await asyncio.to_thread(get, f"https://{chat_host}/prod/info")
        game_answer = await asyncio.to_thread(get, f"https://{game_host}/beta/info")
        assert chat_answer["stage"] == "prod" and game_answer["stage"] == "beta"
    assert alias_for(chat_host) is None and alias_for(game_host) is None
    assert all(h._closed for h in hosts)                    # every deployment's runtime host was stopped


def test_wsgw_runs_dev_certificate_names_every_apis_execute_api_host(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    chat = write_version(tmp_path, "v1", log, apiId="chatapi01")
    game = write_version(tmp_path, "v2", log, apiId="gameapi01")
    path = write_site(tmp_path / "wsgw.yaml", {"apis": {
        "chat": {"hosts": ["chat.example.com"], "versions": {"v1": chat}, "stages": {"prod": {}}},
        "game": {"port": free_port(), "versions": {"v1": game}, "stages": {"prod": {}}},
    }})
    site, _ = load_site(path)
    args = _build_parser().parse_args(["run", "-c", str(path), "--tls", "--ca-dir", str(tmp_path / "ca")])
    tls = _node_config(args, site).tls
    assert tls is not None and tls.certfile is not None
    cert = x509.load_pem_x509_certificate(tls.certfile.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    region = site.first().region
    assert {execute_api_host("chatapi01", region), execute_api_host("gameapi01", region)} <= \
        set(sans.get_values_for_type(x509.DNSName))


def test_versions_and_stages_are_checked_with_keys_naming_them(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1 = write_version(tmp_path, "v1", log)
    (tmp_path / "broken.yaml").write_text("routes: {$default: {handler: nope:fn}}\n", encoding="utf-8")
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": "broken.yaml", "v3": "missing.yaml"},
                                              "stages": {"prod": {"version": "v4", "canary": {"version": "v1"}},
                                                         "health": {"version": "v1"},
                                                         "beta": {"version": "v1", "colour": 1,
                                                                  "canary": {"version": "v1",
                                                                             "percentTraffic": 101}}}})
    with pytest.raises(ConfigError) as failed:
        load_site(path)
    keys = {p.key for p in failed.value.problems}
    assert "versions.v3: " + str(tmp_path / "missing.yaml") in keys
    assert {"stages.prod.version", "stages.health", "stages.beta.colour",
            "stages.beta.canary.percentTraffic"} <= keys


async def test_reload_under_load_drops_no_connection_and_no_message(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1 = write_version(tmp_path, "v1", log)
    v2 = write_version(tmp_path, "v2", log, new_route=True)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1}, "stages": {"prod": {"version": "v1"}}})
    async with serve_site(path) as server:
        clients = [await connect(ws_url(server, "prod")) for _ in range(20)]
        stop = asyncio.Event()
        answers: list[list[str]] = [[] for _ in clients]

        async def talk(i: int, ws: ClientConnection) -> int:
            sent = 0
            while not stop.is_set():
                answers[i].append((await ask(ws, f"{i}-{sent}"))["version"])
                sent += 1
            return sent

        talking = [asyncio.create_task(talk(i, ws)) for i, ws in enumerate(clients)]
        await wait_for(lambda: all(len(a) >= 3 for a in answers))
        write_site(path, {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {"version": "v2"}}})
        lines = await server.reload(load_site(path)[0])
        assert lines == ["stage prod serves version v2"]
        async with connect(ws_url(server, "prod")) as fresh:       # at once: new connections on the new routes
            await fresh.send(json.dumps({"action": "new"}))
            assert json.loads(await asyncio.wait_for(fresh.recv(), 5)) == {"version": "v2", "route": "new"}
        counts = [len(a) for a in answers]
        await wait_for(lambda: all(len(a) >= c + 3 for a, c in zip(answers, counts, strict=True)))
        stop.set()
        sent = await asyncio.gather(*talking)
        assert sent == [len(a) for a in answers]                  # every message answered
        assert all(set(a) == {"v1"} for a in answers)             # open connections stay on their version
        assert all(ws.close_code is None for ws in clients)       # none closed
        assert len(server.site.retiring) == 1
        for ws in clients:
            await ws.close()
        await wait_for(lambda: not server.site.retiring, timeout=10)   # v1 stops once its last connection ended
    disconnects = Counter(e["version"] for e in read_log(log) if e["kind"] == "disconnect")
    assert disconnects == {"v1": 20, "v2": 1}


async def test_a_broken_reload_is_refused_and_the_node_keeps_serving(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    v1 = write_version(tmp_path, "v1", log)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1}, "stages": {"prod": {"version": "v1"}}})
    async with serve_site(path) as server:
        async with connect(ws_url(server, "prod")) as ws:
            write_site(path, {"versions": {"v1": v1}, "stages": {"prod": {"version": "v9"}}})
            with pytest.raises(ConfigError) as refused:
                await server.reload(load_site(path)[0])
            assert "stages.prod.version" in str(refused.value)
            (tmp_path / "v1" / "bad.yaml").write_text("routes: {$default: {handler: stagehandlers.chat:gone}}\n")
            write_site(path, {"versions": {"v1": "v1/bad.yaml"}, "stages": {"prod": {"version": "v1"}}})
            with pytest.raises(ConfigError) as refused:
                await server.reload(load_site(path)[0])
            assert "has no function 'gone'" in str(refused.value)
            assert (await ask(ws))["version"] == "v1"
            async with connect(ws_url(server, "prod")) as again:
                assert (await ask(again))["version"] == "v1"
        assert not server.site.retiring


async def test_stages_canaries_and_reload_across_two_nodes_on_redis(tmp_path: Path, redis_url: str) -> None:
    log = tmp_path / "calls.log"
    v1, v2 = write_version(tmp_path, "v1", log), write_version(tmp_path, "v2", log, new_route=True)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": v2}, "stages": {
        "prod": {"version": "v1", "canary": {"version": "v2", "percentTraffic": 50}},
        "beta": {"version": "v2"}}})
    always_canary, never = (lambda: 0.0), (lambda: 0.99)
    async with serve_site(path, rnd=always_canary, redis_url=redis_url) as a, \
            serve_site(path, rnd=never, redis_url=redis_url) as b, aiohttp.ClientSession() as http, \
            connect(ws_url(a, "prod")) as on_a, connect(ws_url(b, "prod")) as on_b:
        assert (await ask(on_a))["version"] == "v2" and (await ask(on_b))["version"] == "v1"
        ids = {e["version"]: e["id"] for e in read_log(log) if e["kind"] == "connect"}
        # a push through either node and either stage reaches the connection wherever it lives
        async with http.post(f"http://127.0.0.1:{b.port}/beta/@connections/{ids['v2']}", data=b"to-a") as r:
            assert r.status == 200
        assert await asyncio.wait_for(on_a.recv(), 5) == "to-a"
        async with http.post(f"http://127.0.0.1:{a.port}/prod/@connections/{ids['v1']}", data=b"to-b") as r:
            assert r.status == 200
        assert await asyncio.wait_for(on_b.recv(), 5) == "to-b"
        # promote v2 on both nodes: open connections stay, new ones get v2
        write_site(path, {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {"version": "v2"},
                                                                      "beta": {"version": "v2"}}})
        for server in (a, b):
            await server.reload(load_site(path)[0])
        write_site(path, {"versions": {"v1": v1}, "stages": {"prod": {"version": "v7"}}})
        with pytest.raises(ConfigError):
            await b.reload(load_site(path)[0])
        assert (await ask(on_b))["version"] == "v1"
        async with connect(ws_url(b, "prod")) as fresh:
            assert (await ask(fresh))["version"] == "v2"
        async with http.post(f"http://127.0.0.1:{a.port}/prod/@connections/{ids['v1']}", data=b"still") as r:
            assert r.status == 200
        assert await asyncio.wait_for(on_b.recv(), 5) == "still"


def test_sighup_and_wsgw_reload_apply_good_files_and_refuse_bad_ones(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.helpers import ROOT, GatewayProcess, wait_for_sync

    log = tmp_path / "calls.log"
    v1, v2 = write_version(tmp_path, "v1", log), write_version(tmp_path, "v2", log, new_route=True)
    path = write_site(tmp_path / "wsgw.yaml", {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {"version": "v1"}}})
    check = subprocess.run([sys.executable, "-m", "wsgw", "check", "-c", str(path)], capture_output=True, text=True,
                           cwd=ROOT)
    assert check.returncode == 0 and "stage prod serves version v1" in check.stdout

    async def version_of_new_connection(url: str) -> str:
        async with connect(url) as ws:
            return str((await ask(ws))["version"])

    pid_file = tmp_path / "wsgw.pid"
    with GatewayProcess(path, "--pid-file", str(pid_file)) as node:
        url = f"ws://127.0.0.1:{node.port}/prod"
        assert asyncio.run(version_of_new_connection(url)) == "v1"
        write_site(path, {"versions": {"v1": v1, "v2": v2}, "stages": {"prod": {"version": "v2"}}})
        assert node.proc is not None
        node.proc.send_signal(signal.SIGHUP)
        wait_for_sync(lambda: any("reloaded" in line for line in node.output))
        assert asyncio.run(version_of_new_connection(url)) == "v2"
        write_site(path, {"versions": {"v1": v1}, "stages": {"prod": {"version": "v2"}}})
        refused = subprocess.run([sys.executable, "-m", "wsgw", "reload", "--url", node.base], capture_output=True,
                                 text=True, cwd=ROOT)
        assert refused.returncode == 2 and "stages.prod.version" in refused.stderr
        assert any("reload refused" in line for line in node.output)
        assert asyncio.run(version_of_new_connection(url)) == "v2"
        write_site(path, {"versions": {"v1": v1}, "stages": {"prod": {"version": "v1"}}})
        by_pid = subprocess.run([sys.executable, "-m", "wsgw", "reload", "--pid-file", str(pid_file)],
                                capture_output=True, text=True, cwd=ROOT)
        assert by_pid.returncode == 0
        wait_for_sync(lambda: sum("reloaded" in line for line in node.output) >= 2)
        assert asyncio.run(version_of_new_connection(url)) == "v1"


def test_a_sam_template_with_two_stages_serves_both(tmp_path: Path) -> None:
    from tests.helpers import ROOT

    text = (ROOT / "tests" / "fixtures" / "sam" / "template.yaml").read_text(encoding="utf-8")
    beta = ("  BetaStage:\n    Type: AWS::ApiGatewayV2::Stage\n    Properties:\n      StageName: beta\n"
            "      ApiId: !Ref ChatApi\n      StageVariables:\n        room: beta-room\n\n")
    template = tmp_path / "template.yaml"
    template.write_text(text.replace("  ConnectionsTable:", beta + "  ConnectionsTable:", 1), encoding="utf-8")
    for item in (ROOT / "tests" / "fixtures" / "sam").iterdir():
        if item.name != "template.yaml":
            (tmp_path / item.name).symlink_to(item)
    site, warnings = load_site(template)
    stages = site.apis["default"].stages
    assert set(stages) == {"prod", "beta"}
    assert stages["beta"].api.stage_variables == {"room": "beta-room"} and stages["beta"].api.stage == "beta"
    assert stages["prod"].api.stage_variables["room"] == "main-hall"
    assert not any("one stage" in w.message for w in warnings)
    one, _ = load_site(template, LoadOptions(stage="beta"))
    assert set(one.apis["default"].stages) == {"beta"}
