"""Execution environments with custom runtimes (`provided.al2023`): a `bootstrap` script polling the Runtime API,
idle reaping, shutdown without orphans, and the runtime-unavailable answers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.runtimes_fixtures import (
    PYTHON_BOOTSTRAP_HEAD,
    MakeFunction,
    children_of,
    make_function,
    process_gone,
    runtime_api,
)
from wsgw.runtimes.environments import FunctionSpec, lambda_environment, runtime_command
from wsgw.runtimes.invocation import FunctionError, InitError, RuntimeUnavailable

__all__ = ["make_function", "runtime_api"]

PYTHON_RUNTIME = PYTHON_BOOTSTRAP_HEAD + """
import json, os, subprocess, urllib.request

if os.environ.get("SPAWN_CHILD"):       # a runtime that leaves a child of its own behind
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], f"child-{os.getpid()}.pid"), "w") as fh:
        fh.write(str(child.pid))

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
calls = 0

def post(path, body, headers=None):
    request = urllib.request.Request(API + path, data=body, method="POST", headers=headers or {})
    return urllib.request.urlopen(request).status

while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline = response.headers["Lambda-Runtime-Deadline-Ms"]
        arn = response.headers["Lambda-Runtime-Invoked-Function-Arn"]
        event = json.loads(response.read())
    calls += 1
    if event.get("fail"):
        post(f"/invocation/{request_id}/error",
             json.dumps({"errorType": "ValueError", "errorMessage": event["fail"], "stackTrace": ["line 1"]}).encode(),
             {"Lambda-Runtime-Function-Error-Type": "ValueError"})
        continue
    result = {"event": event, "calls": calls, "pid": os.getpid(), "deadline": int(deadline), "arn": arn,
              "handler": os.environ["_HANDLER"], "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}
    post(f"/invocation/{request_id}/response", json.dumps(result).encode())
"""



async def test_provided_runtime_bootstrap_round_trips_and_stays_warm(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": PYTHON_RUNTIME}, runtime="provided.al2023", handler="function.handler",
                             name="custom")
    first = await fn.invoke({"a": 1})
    second = await fn.invoke({"a": 2})
    assert first["event"] == {"a": 1} and second["event"] == {"a": 2}
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["pid"] == second["pid"]
    assert first["handler"] == "function.handler" and first["name"] == "custom"
    assert first["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:custom"
    assert first["deadline"] > 0


async def test_provided_runtime_error_keeps_what_it_posted(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": PYTHON_RUNTIME}, runtime="provided.al2", handler="h")
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"fail": "nope"})
    assert caught.value.payload() == {"errorType": "ValueError", "errorMessage": "nope", "stackTrace": ["line 1"]}
    assert (await fn.invoke({}))["calls"] == 2


async def test_bootstrap_that_exits_before_asking_for_work_is_an_init_error(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": "#!/bin/sh\necho 'cannot start' >&2\nexit 7\n"}, runtime="provided.al2023",
                             handler="h")
    with pytest.raises(InitError) as caught:
        await fn.invoke({})
    assert caught.value.payload() == {"errorType": "Runtime.ExitError",
                                      "errorMessage": "Runtime exited with error: exit status 7"}


async def test_idle_environments_are_reaped(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": PYTHON_RUNTIME}, runtime="provided.al2023", handler="h", idle_s=0.2)
    pid = (await fn.invoke({}))["pid"]
    await wait_for(lambda: not fn.environments)
    await wait_for(lambda: process_gone(pid))
    assert (await fn.invoke({}))["calls"] == 1          # a cold start again


async def test_close_stops_every_process_and_what_they_started(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": PYTHON_RUNTIME}, runtime="provided.al2023", handler="h", concurrency=2,
                             environment={"SPAWN_CHILD": "1"})
    pids = {r["pid"] for r in await asyncio.gather(fn.invoke({}), fn.invoke({}))}
    children = [int(p.read_text()) for p in fn.spec.code_dir.glob("child-*.pid")]
    assert len(pids) == 2 and len(children) == 2
    assert all(not process_gone(pid) for pid in [*pids, *children])
    await fn.close()
    # close() waits for each runtime; a grandchild killed with its group may take a moment more to go
    await wait_for(lambda: all(process_gone(pid) for pid in [*pids, *children]))
    assert not [pid for pid in children_of(os.getpid()) if pid in pids]


async def test_invoking_a_stopped_function_is_refused(make_function: MakeFunction) -> None:
    fn = await make_function({"bootstrap": PYTHON_RUNTIME}, runtime="provided.al2023", handler="h")
    await fn.close()
    with pytest.raises(RuntimeUnavailable):
        await fn.invoke({})


def test_missing_node_names_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = FunctionSpec(name="f", runtime="nodejs20.x", handler="app.handler", code_dir=tmp_path)
    with pytest.raises(RuntimeUnavailable, match="Debian package `nodejs`"):
        runtime_command(spec)


def test_custom_runtime_without_an_executable_bootstrap_says_what_to_fix(tmp_path: Path) -> None:
    spec = FunctionSpec(name="f", runtime="provided.al2023", handler="h", code_dir=tmp_path)
    with pytest.raises(RuntimeUnavailable, match="does not exist"):
        runtime_command(spec)
    (tmp_path / "bootstrap").write_text("#!/bin/sh\n")
    with pytest.raises(RuntimeUnavailable, match="chmod"):
        runtime_command(spec)
    with pytest.raises(RuntimeUnavailable, match="cannot run as a process"):
        runtime_command(FunctionSpec(name="f", runtime="java21", handler="h", code_dir=tmp_path))


def test_given_credentials_replace_the_dummy_ones(tmp_path: Path) -> None:
    spec = FunctionSpec(name="f", runtime="provided.al2023", handler="h", code_dir=tmp_path,
                        credentials={"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"})
    env = lambda_environment(spec, "127.0.0.1:1", "stream", {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "parent",
                                                             "NODE_EXTRA_CA_CERTS": "/ca.pem"})
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA1"
    assert env["NODE_EXTRA_CA_CERTS"] == "/ca.pem"
    assert "AWS_EXECUTION_ENV" not in env
