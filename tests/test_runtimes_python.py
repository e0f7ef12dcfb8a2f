"""Python functions in processes of their own (`isolation: process`): real interpreters running wsgw's
runtimes/python/bootstrap.py against the Runtime API, as Lambda's Python runtime runs them."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.runtimes_fixtures import (
    API_HOST,
    ConnectionsStandIn,
    MakeFunction,
    api_certs,
    connections_stand_in,
    make_function,
    process_gone,
    runtime_api,
)
from wsgw.runtimes.environments import PYTHON_BOOTSTRAP, FunctionSpec, runtime_command
from wsgw.runtimes.invocation import FunctionError, FunctionTimeout, InitError

__all__ = ["api_certs", "connections_stand_in", "make_function", "runtime_api"]

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"

ECHO = {"app.py": """
    import os

    calls = 0

    def handler(event, context):
        global calls
        calls += 1
        return {
            "echo": event, "calls": calls, "pid": os.getpid(),
            "request_id": context.aws_request_id, "function_name": context.function_name,
            "version": context.function_version, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "group": context.log_group_name, "stream": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "client_custom": getattr(context.client_context, "custom", None),
            "env": {name: os.environ.get(name) for name in ("AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
                                                             "_HANDLER", "WSGW_ENDPOINT_ALIASES")},
            "module_file": __file__,
        }
"""}


def test_python_runtimes_run_the_gateways_interpreter_with_wsgws_bootstrap() -> None:
    spec = FunctionSpec("f", "python3.12", "app.handler", Path("/nonexistent"))
    assert runtime_command(spec) == [sys.executable, str(PYTHON_BOOTSTRAP)]


async def test_handler_gets_the_event_and_a_lambda_context_and_stays_warm(make_function: MakeFunction) -> None:
    fn = await make_function(ECHO, runtime=RUNTIME, timeout_s=5.0, memory_mb=256, name="py")
    first = await fn.invoke({"hello": ["wörld", 1]}, request_id="req-1",
                            client_context={"custom": {"k": "v"}})
    assert first["echo"] == {"hello": ["wörld", 1]}
    assert first["request_id"] == "req-1"
    assert (first["function_name"], first["version"]) == ("py", "$LATEST")
    assert first["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:py"
    assert first["memory"] == "256"
    assert first["group"] == "/aws/lambda/py"
    assert first["stream"] == fn.environments[0].log_stream
    assert 0 < first["remaining"] <= 5000
    assert first["client_custom"] == {"k": "v"}
    assert first["env"] == {"AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}", "AWS_LAMBDA_FUNCTION_NAME": "py",
                            "_HANDLER": "app.handler", "WSGW_ENDPOINT_ALIASES": None}
    assert first["module_file"] == str(fn.spec.code_dir / "app.py")
    second = await fn.invoke({"n": 2})
    assert (second["calls"], second["pid"]) == (2, first["pid"])             # module state survives, as on Lambda
    assert len(fn.cold_starts) == 1


async def test_handler_error_has_the_python_runtimes_shape_and_the_environment_stays(
        make_function: MakeFunction) -> None:
    fn = await make_function({"app.py": """
        import os

        def check(event):
            if event.get("fail"):
                raise ValueError("bad input: " + event["fail"])

        def handler(event, context):
            check(event)
            return os.getpid()
    """}, runtime=RUNTIME)
    pid = await fn.invoke({})
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"fail": "x"}, request_id="err-1")
    payload = caught.value.payload()
    assert (payload["errorType"], payload["errorMessage"], payload["requestId"]) == ("ValueError", "bad input: x",
                                                                                    "err-1")
    assert any("app.py" in line and "in check" in line for line in payload["stackTrace"]), payload["stackTrace"]
    assert not any("bootstrap.py" in line for line in payload["stackTrace"])
    assert await fn.invoke({}) == pid


async def test_async_handlers_decimals_and_unmarshallable_results(make_function: MakeFunction) -> None:
    fn = await make_function({"app.py": """
        import asyncio, decimal

        async def handler(event, context):
            await asyncio.sleep(0)
            if event.get("set"):
                return {1, 2}
            return {"n": decimal.Decimal("3"), "f": decimal.Decimal("0.5")}
    """}, runtime=RUNTIME)
    assert await fn.invoke({}) == {"n": 3, "f": 0.5}
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"set": True})
    assert caught.value.error_type == "Runtime.MarshalError"
    assert caught.value.error_message.startswith("Unable to marshal response: Object of type set")


async def test_timeout_kills_the_process_and_the_next_call_gets_a_fresh_one(make_function: MakeFunction) -> None:
    fn = await make_function({"app.py": """
        import os, threading

        def handler(event, context):
            if event.get("hang"):
                threading.Event().wait()
            return os.getpid()
    """}, runtime=RUNTIME, timeout_s=0.5)
    pid = await fn.invoke({})
    with pytest.raises(FunctionTimeout) as caught:
        await fn.invoke({"hang": True}, request_id="slow-1")
    assert caught.value.payload() == {"errorType": "Sandbox.Timedout",
                                      "errorMessage": "RequestId: slow-1 Error: Task timed out after 0.50 seconds"}
    await wait_for(lambda: process_gone(pid))
    assert await fn.invoke({}) != pid


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), [
    ({"app.py": "raise RuntimeError('no config')"}, "app.handler", "RuntimeError", "no config"),
    ({"app.py": "other = 1"}, "app.handler", "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'app'"),
    ({"app.py": "x = 1"}, "missing.handler", "Runtime.ImportModuleError",
     "Unable to import module 'missing': No module named 'missing'"),
    ({"app.py": "def handler(:"}, "app.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'app'"),
    ({"app.py": "x = 1"}, "nodots", "Runtime.MalformedHandlerName", "Bad handler 'nodots'"),
    ({"app.py": "x = 1"}, "sys.exit", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys"),
])
async def test_load_failures_answer_the_invocation_as_init_errors(make_function: MakeFunction, files: dict[str, str],
                                                                  handler: str, error_type: str, message: str) -> None:
    fn = await make_function(files, runtime=RUNTIME, handler=handler)
    with pytest.raises(InitError) as caught:
        await fn.invoke({})
    assert caught.value.error_type == error_type
    assert message in caught.value.error_message
    assert fn.environments == []


async def test_handlers_in_subfolders_and_wsgws_colon_form(make_function: MakeFunction) -> None:
    fn = await make_function({"src/chat/app.py": "def on_message(event, context):\n    return 'sub'\n"},
                             runtime=RUNTIME, handler="src/chat/app.on_message")
    assert await fn.invoke({}) == "sub"
    colon = await make_function({"app.py": "def handler(event, context):\n    return 'colon'\n"},
                                runtime=RUNTIME, handler="app:handler", name="colon")
    assert await colon.invoke({}) == "colon"


async def test_log_lines_are_formatted_as_on_lambda(make_function: MakeFunction,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsgw.function")
    fn = await make_function({"app.py": """
        import logging
        logger = logging.getLogger()
        logger.setLevel(logging.INFO)
        print("loading")

        def handler(event, context):
            print("plain print")
            logger.info("hello %s", "there")
            logger.warning("two\\nlines")
    """}, runtime=RUNTIME, name="pylogs")
    assert await fn.invoke({}, request_id="log-req") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "wsgw.function.pylogs"]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert "loading" in lines and "plain print" in lines, lines
    assert any(re.fullmatch(r"\[INFO\]\t" + stamp + r"\tlog-req\thello there", line) for line in lines), lines
    assert any(re.fullmatch(r"\[WARNING\]\t" + stamp + r"\tlog-req\ttwo\rlines", line) for line in lines), lines


async def test_boto3_in_the_process_reaches_the_gateway_through_the_api_host(
        make_function: MakeFunction, connections_stand_in: ConnectionsStandIn) -> None:
    fn = await make_function({"app.py": """
        import boto3
        from wsgw.runtimes.endpoint_alias import alias_for

        def handler(event, context):
            ctx = event["requestContext"]
            if alias_for(ctx["domainName"]) is None:
                raise RuntimeError("no alias")                       # never leave this machine
            client = boto3.client("apigatewaymanagementapi",
                                  endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}")
            client.post_to_connection(ConnectionId=event["to"], Data=event["body"].encode())
            try:
                client.post_to_connection(ConnectionId="stale", Data=b"x")
            except client.exceptions.GoneException:
                return "sent; stale one gone"
    """}, runtime=RUNTIME, timeout_s=10.0, **connections_stand_in.reach)
    connections_stand_in.gone.add("stale")
    event = {"requestContext": {"domainName": API_HOST, "stage": "dev"}, "to": "L0SM9cOFvHcCIhw=", "body": "py"}
    assert await fn.invoke(event) == "sent; stale one gone"
    sent, stale = connections_stand_in.posted
    assert (sent.connection_id, sent.body, sent.host, sent.server_name) == ("L0SM9cOFvHcCIhw=", b"py", API_HOST,
                                                                            API_HOST)
    assert "Credential=wsgw-local/" in sent.authorization
    assert stale.connection_id == "stale"
