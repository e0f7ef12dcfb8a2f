"""Access logs (`accessLogSettings`): one line per connect, message, disconnect, push and REST request, read
back from the destination and checked field by field; a secret never appears; custom formats, rotation,
syslog; application logs as JSON."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from tests.helpers import api_from, serve, wait_for
from wsgw.errors import ConfigError
from wsgw.observe.app_logs import JsonLines

SECRETS = ("sekrit-query", "sekrit-header", "sekrit-apikey", "sekrit-rest", "sekrit-sig", "sekrit-in-exception",
           "sekrit-kw", "sekrit-proto")


def api(tmp_path: Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "stage": "dev", "apiId": "logsapi",
        "authorizers": {"users": {"type": "request", "handler": "observeapp:authorize",
                                  "identitySource": ["route.request.querystring.token"], "resultTtlInSeconds": 0}},
        "routes": {"$connect": {"handler": "testapp:ok", "authorizer": "users"},
                   "$disconnect": {"handler": "testapp:ok"},
                   "echo": {"handler": "observeapp:echo", "routeResponse": True},
                   "leak": {"handler": "observeapp:leak"}},
        "http": {"routes": {"GET /items/{id}": {"handler": "restapp:show"}}},
        "accessLogSettings": settings or {"destination": {"file": str(tmp_path / "access.log")}},
    }


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def traffic(port: int) -> None:
    """Connect (with credentials everywhere), echo, a failing handler, no route, REST, disconnect."""
    url = f"ws://127.0.0.1:{port}/dev?token=sekrit-query&other=1"
    headers = {"Authorization": "Bearer sekrit-header", "x-api-key": "sekrit-apikey"}
    async with connect(url, additional_headers=headers, subprotocols=["chat", "sekrit-proto"]) as ws:  # type: ignore[list-item]
        await ws.send('{"action": "echo", "n": 1}')
        assert json.loads(await ws.recv()) == {"action": "echo", "n": 1}
        await ws.send('{"action": "leak"}')
        assert json.loads(await ws.recv())["message"] == "Internal server error"
        await ws.send('{"action": "nothing-here"}')
        assert json.loads(await ws.recv())["message"] == "Forbidden"
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}/dev"
            async with session.get(f"{base}/items/7?token=sekrit-rest&X-Amz-Signature=sekrit-sig",
                                   headers={"Authorization": "Bearer sekrit-rest"}) as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200
            await ws.send('{"action": "echo", "who": true}')
            await ws.recv()


async def test_every_event_type_is_one_json_line_with_aws_context_names(tmp_path: Path) -> None:
    async with serve(api(tmp_path)) as server:
        await traffic(server.port)
        cid = ""
        async with connect(f"ws://127.0.0.1:{server.port}/dev?token=sekrit-query") as ws:
            cid = await wait_for(lambda: next(iter(server.gateway.connections), None))
            async with aiohttp.ClientSession() as session, session.post(
                    f"http://127.0.0.1:{server.port}/dev/@connections/{cid}", data=b"pushed") as response:
                assert response.status == 200
            assert await ws.recv() == "pushed"
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/dev?token=wrong"):
                pass
        except Exception:
            pass
    records = lines(tmp_path / "access.log")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        assert record["apiId"] == "logsapi" and record["stage"] == "dev"
        by_type.setdefault(record["eventType"], []).append(record)
    connects = by_type["CONNECT"]
    assert [c["status"] for c in connects] == [101, 101, 403]
    first = connects[0]
    assert first["routeKey"] == "$connect" and first["identity.sourceIp"] == "127.0.0.1"
    assert first["authorizer.principalId"] == "user-7"
    assert len(first["requestId"]) > 8 and len(first["connectionId"]) > 8
    assert isinstance(first["integrationLatency"], int) and "requestTime" in first
    assert connects[2]["error.message"] == "Forbidden" and "connectionId" in connects[2]

    messages = by_type["MESSAGE"]
    assert [(m.get("routeKey"), m["status"]) for m in messages] == [
        ("echo", 200), ("leak", 500), (None, 403), ("echo", 200)]
    assert messages[1]["error.message"] == "Internal server error"
    assert all(m["connectionId"] == first["connectionId"] for m in messages)
    assert messages[0]["integrationLatency"] >= 0 and messages[0]["authorizer.principalId"] == "user-7"

    disconnects = by_type["DISCONNECT"]
    assert len(disconnects) == 2 and {d["disconnectStatusCode"] for d in disconnects} == {1000}
    assert disconnects[0]["connectionId"] == first["connectionId"] and disconnects[0]["status"] == 200

    (push,) = by_type["PUSH"]
    assert push == {**push, "connectionId": cid, "status": 200, "routeKey": "@connections", "responseLength": 6}

    (rest,) = by_type["HTTP"]
    assert rest["routeKey"] == "GET /items/{id}" and rest["httpMethod"] == "GET" and rest["status"] == 200
    assert rest["path"] == "/dev/items/7" and rest["protocol"] == "HTTP/1.1" and rest["responseLength"] > 0
    assert rest["responseLatency"] >= rest["integrationLatency"] >= 0


async def test_no_secret_reaches_the_access_log_or_the_application_log(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fmt = ('{"id":"$context.requestId","auth":"$context.authorizer.sessionToken",'
           '"user":"$context.authorizer.user","err":"$context.error.message","path":"$context.path"}')
    settings = {"format": fmt, "destination": {"file": str(tmp_path / "custom.log")}}
    async with serve(api(tmp_path, settings)) as server:
        await traffic(server.port)
    custom = (tmp_path / "custom.log").read_text()
    async with serve(api(tmp_path)) as server:
        await traffic(server.port)
    default = (tmp_path / "access.log").read_text()
    parsed = [json.loads(line) for line in custom.splitlines()]
    assert {p["user"] for p in parsed if p["user"] != "-"} == {"ada"}
    assert {p["auth"] for p in parsed if p["auth"] != "-"} == {"[redacted]"}
    formatter = JsonLines()
    application = "\n".join(formatter.format(record) for record in caplog.records)
    for secret in SECRETS:
        assert secret not in custom and secret not in default, secret
        assert secret not in application, secret
    assert "[redacted]" in application          # the leaking handler's traceback was logged, scrubbed


async def test_a_text_format_renders_context_variables_and_dashes_for_missing_ones(tmp_path: Path) -> None:
    settings = {"format": "$context.eventType $context.routeKey $context.status $context.error.message "
                          "[$context.requestTime]", "destination": {"file": str(tmp_path / "t.log")}}
    async with serve(api(tmp_path, settings)) as server, \
            connect(f"ws://127.0.0.1:{server.port}/dev?token=sekrit-query") as ws:
        await ws.send('{"action": "echo"}')
        await ws.recv()
    text = (tmp_path / "t.log").read_text().splitlines()
    assert text[0].startswith("CONNECT $connect 101 - [")
    assert text[1].startswith("MESSAGE echo 200 - [")
    assert text[2].startswith("DISCONNECT $disconnect 200 - [") and text[2].endswith("+0000]")


async def test_a_file_destination_rotates_at_max_bytes(tmp_path: Path) -> None:
    settings = {"destination": {"file": str(tmp_path / "r.log"), "maxBytes": 2000, "backupCount": 2}}
    async with serve(api(tmp_path, settings)) as server, \
            connect(f"ws://127.0.0.1:{server.port}/dev?token=sekrit-query") as ws:
        for i in range(60):
            await ws.send(json.dumps({"action": "echo", "i": i}))
            await ws.recv()
    sizes = {path.name: path.stat().st_size for path in sorted(tmp_path.glob("r.log*"))}   # noqa: ASYNC240
    assert set(sizes) == {"r.log", "r.log.1", "r.log.2"} and max(sizes.values()) < 4000


async def test_a_syslog_destination_gets_one_datagram_per_record(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        settings = {"destination": {"syslog": f"127.0.0.1:{port}"}}
        async with serve(api(tmp_path, settings)) as server, \
                connect(f"ws://127.0.0.1:{server.port}/dev?token=sekrit-query"):
            pass
        first = receiver.recv(65536).decode()
    assert first.startswith("<") and '"eventType":"CONNECT"' in first


async def test_stdout_is_the_default_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with serve(api(tmp_path, {"destination": "stdout"})) as server, \
            connect(f"ws://127.0.0.1:{server.port}/dev?token=sekrit-query"):
        pass
    out = capsys.readouterr().out
    assert '"eventType":"CONNECT"' in out and '"eventType":"DISCONNECT"' in out


def test_bad_settings_are_config_problems_naming_the_key(tmp_path: Path) -> None:
    raw = api(tmp_path, {"destination": {"kafka": "x"}, "format": "no variables", "extra": 1})
    with pytest.raises(ConfigError) as caught:
        api_from(raw)
    keys = {p.key for p in caught.value.problems}
    assert keys == {"accessLogSettings.destination", "accessLogSettings.format", "accessLogSettings.extra"}


def test_json_application_logs_are_one_object_per_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    log = logging.getLogger("wsgw.test-json")
    log.addHandler(handler)
    try:
        log.warning("calling %s with token=%s", "upstream", "sekrit-kw")
    finally:
        log.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "WARNING" and entry["logger"] == "wsgw.test-json"
    assert entry["message"] == "calling upstream with token=[redacted]" and entry["time"].endswith("Z")
