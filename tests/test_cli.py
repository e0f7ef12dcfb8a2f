"""`wsgw check` and `wsgw run` as a user runs them: real processes, real signals."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.helpers import APPS, ROOT, GatewayProcess, write_config


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsgw", "check", "-c", str(config)], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)


def test_check_accepts_the_example_config() -> None:
    result = run_check(ROOT / "wsgw.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_prints_one_line_per_problem_naming_the_key_and_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.yaml", {
        "stage": "no spaces allowed",
        "routez": {},
        "routes": {
            "$connect": {"handler": "not-a-reference"},
            "send": {"integration": {"type": "python", "handler": "testapp:echo", "timeoutMs": 10}},
            "$bogus": {"handler": "testapp:echo"},
        },
        "limits": {"maxMessageBytes": -1, "idleTimeoutSecond": 5},
    })
    result = run_check(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    keys = {line.split(":", 1)[0] for line in lines}
    assert {"stage", "routez", "routes.$connect.handler", "routes.send.integration.timeoutMs", "routes.$bogus",
            "limits.maxMessageBytes", "limits.idleTimeoutSecond"} <= keys
    assert any("did you mean 'routes'" in line for line in lines)
    assert any("did you mean 'idleTimeoutSeconds'" in line for line in lines)


def test_check_reports_a_handler_that_cannot_be_imported(tmp_path: Path) -> None:
    config = write_config(tmp_path / "wsgw.yaml", {"routes": {"$default": {"handler": "nosuchmodule:fn"}}})
    result = run_check(config)
    assert result.returncode == 2
    assert "routes.$default.handler: cannot import module 'nosuchmodule'" in result.stderr


def test_check_reports_an_unknown_integration_type_with_the_known_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path / "wsgw.yaml", {"routes": {"x": {"integration": {"type": "carrier-pigeon"}}}})
    result = run_check(config)
    assert result.returncode == 2
    assert "routes.x.integration.type: 'carrier-pigeon' is not one of" in result.stderr


def test_check_reports_broken_yaml_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "wsgw.yaml"
    config.write_text("routes:\n  $default: {handler: [unclosed\n", encoding="utf-8")
    result = run_check(config)
    assert result.returncode == 2
    assert "is not valid YAML at line" in result.stderr


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    result = run_check(tmp_path / "absent.yaml")
    assert result.returncode == 2
    assert "file not found" in result.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_prints_urls_serves_health_and_a_stop_signal_runs_every_disconnect(tmp_path: Path,
                                                                               stop_signal: int) -> None:
    log = tmp_path / "events.jsonl"
    config = write_config(tmp_path / "wsgw.yaml", {"routes": {
        "$connect": {"handler": "testapp:ok"},
        "$disconnect": {"handler": "testapp:sleepy_disconnect"},
        "$default": {"handler": "testapp:echo", "routeResponse": True},
    }})
    proc = GatewayProcess(config, env={"WSGW_TEST_EVENT_LOG": str(log), "PYTHONPATH": f"{ROOT}:{APPS}"})
    with proc:
        assert proc.ws_url.endswith("/dev")
        assert any("@connections:" in line for line in proc.output)
        with urllib.request.urlopen(f"{proc.base}/health", timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        stack = contextlib.ExitStack()
        clients = [stack.enter_context(connect(proc.ws_url)) for _ in range(3)]
        for ws in clients:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        code = proc.stop(stop_signal)
        assert code == 0
        codes = []
        for ws in clients:
            with contextlib.suppress(Exception):
                ws.recv(timeout=5)
            assert ws.close_code is not None
            codes.append(ws.close_code)
        stack.close()
        assert codes == [1001, 1001, 1001]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    disconnects = [e for e in events if e["requestContext"]["routeKey"] == "$disconnect"]
    assert len(disconnects) == 3
    assert {e["requestContext"]["disconnectStatusCode"] for e in disconnects} == {1001}


def test_run_with_a_broken_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path / "wsgw.yaml", {"routes": {"$default": {"handler": "testapp:nope"}}})
    result = subprocess.run([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0"],
                            capture_output=True, text=True, cwd=str(ROOT), timeout=60,
                            env={"PYTHONPATH": f"{ROOT}:{APPS}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "routes.$default.handler: module 'testapp' has no function 'nope'" in result.stderr


def test_make_run_config_serves_the_chat(tmp_path: Path) -> None:
    with GatewayProcess(ROOT / "wsgw.yaml") as proc, \
            connect(proc.ws_url + "?name=ada&room=lobby") as ada, connect(proc.ws_url + "?name=bob") as bob:
        bob.send('{"action": "join"}')
        assert json.loads(bob.recv(timeout=10)) == {"type": "joined", "room": "lobby"}
        assert json.loads(ada.recv(timeout=10))["principalId"] == "bob"
        bob.send('{"action": "sendmessage", "text": "hello all"}')
        message = {"type": "message", "room": "lobby", "from": "bob", "text": "hello all"}
        for ws in (ada, bob):
            assert json.loads(ws.recv(timeout=10)) == {"group": "room:lobby", "seq": 1, "data": message}


def test_check_and_run_report_the_same_build_problems(tmp_path: Path) -> None:
    """Both commands build the node with wsgw.server.node.build_node: problems only building finds (imports,
    folders and files on this machine) are listed alike, for every part, all in one run."""
    from wsgw.config import load_api
    from wsgw.config.node import NodeConfig
    from wsgw.errors import ConfigError
    from wsgw.server.node import build_node

    config = write_config(tmp_path / "wsgw.yaml", {
        "authorizers": {"auth": {"type": "request", "handler": "authapp:nope"},
                        "token": {"type": "jwt", "issuer": "https://auth.example.com/", "audience": ["chat"],
                                  "jwksUri": "missing-keys.json"}},
        "routes": {"$connect": {"handler": "testapp:nope", "authorizer": "auth"},
                   "far": {"integration": {"type": "python", "handler": "testapp:echo", "codeUri": "nowhere"}}},
        "http": {"routes": {"GET /x": {"handler": "nosuchmodule:fn", "authorizer": "token"}}},
    })
    env = {"PYTHONPATH": f"{ROOT}:{APPS}", "PATH": "/usr/bin:/bin"}
    check = subprocess.run([sys.executable, "-m", "wsgw", "check", "-c", str(config)], capture_output=True,
                           text=True, cwd=str(ROOT), timeout=60, env=env)
    run = subprocess.run([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0"],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=60, env=env)
    with pytest.raises(ConfigError) as built:
        build_node(load_api(config), NodeConfig(port=0))
    expected = sorted(str(p) for p in built.value.problems)
    assert {p.key for p in built.value.problems} == {
        "routes.$connect.handler", "routes.far.integration.codeUri", "authorizers.auth.handler",
        "authorizers.token.jwksUri", "http.routes.GET /x.handler"}
    assert (check.returncode, sorted(check.stderr.strip().splitlines())) == (2, expected)
    assert (run.returncode, sorted(run.stderr.strip().splitlines())) == (2, expected)
