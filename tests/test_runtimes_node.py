"""Node.js functions through the Lambda Runtime API: real `node` processes running wsgw's bootstrap.mjs."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from tests.helpers import wait_for
from tests.runtimes_fixtures import MakeFunction, make_function, process_gone, runtime_api
from wsgw.runtimes.invocation import FunctionError, FunctionTimeout, InitError, RuntimeCrash

__all__ = ["make_function", "runtime_api"]

ESM_ECHO = {"app.mjs": """
    let calls = 0;
    export const handler = async (event, context) => {
      calls += 1;
      return {
        echo: event, calls, pid: process.pid,
        requestId: context.awsRequestId, functionName: context.functionName,
        functionVersion: context.functionVersion, arn: context.invokedFunctionArn,
        memory: context.memoryLimitInMB, group: context.logGroupName, stream: context.logStreamName,
        remaining: context.getRemainingTimeInMillis(), waits: context.callbackWaitsForEmptyEventLoop,
      };
    };
"""}


async def test_esm_async_handler_gets_the_event_and_lambdas_context(make_function: MakeFunction) -> None:
    fn = await make_function(ESM_ECHO, timeout_s=5.0, memory_mb=256)
    result = await fn.invoke({"hello": ["wörld", 1]}, request_id="req-1")
    assert result["echo"] == {"hello": ["wörld", 1]}
    assert result["requestId"] == "req-1"
    assert result["functionName"] == "fn"
    assert result["functionVersion"] == "$LATEST"
    assert result["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert result["memory"] == "256"
    assert result["group"] == "/aws/lambda/fn"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", result["stream"])
    assert 0 < result["remaining"] <= 5000
    assert result["waits"] is True


async def test_warm_environment_keeps_module_state_between_invocations(make_function: MakeFunction) -> None:
    fn = await make_function(ESM_ECHO)
    results = [await fn.invoke({"n": n}) for n in range(3)]
    assert [r["calls"] for r in results] == [1, 2, 3]
    assert len({r["pid"] for r in results}) == 1
    assert len(fn.cold_starts) == 1


async def test_commonjs_callback_handler_answers_through_the_callback(make_function: MakeFunction) -> None:
    fn = await make_function({"app.js": """
        let seen = 0;
        exports.handler = function (event, context, callback) {
          seen += 1;
          setTimeout(() => callback(null, { doubled: event.n * 2, seen }), 5);
        };
    """})
    assert await fn.invoke({"n": 21}) == {"doubled": 42, "seen": 1}
    assert await fn.invoke({"n": 1}) == {"doubled": 2, "seen": 2}


async def test_callback_with_empty_loop_wait_off_answers_despite_pending_timers(make_function: MakeFunction) -> None:
    fn = await make_function({"app.cjs": """
        module.exports.handler = (event, context, callback) => {
          context.callbackWaitsForEmptyEventLoop = false;
          setInterval(() => {}, 1000);          // would keep the loop busy forever
          callback(null, "early");
        };
    """}, timeout_s=3.0)
    assert await fn.invoke({}) == "early"


async def test_callback_waits_for_the_event_loop_to_empty_by_default(make_function: MakeFunction) -> None:
    fn = await make_function({"app.js": """
        let finished = 0;
        exports.handler = (event, context, callback) => {
          callback(null, { finishedBefore: finished });
          setTimeout(() => { finished += 1; }, 20);  // Lambda answers only after this ran
        };
    """})
    assert await fn.invoke({}) == {"finishedBefore": 0}
    assert await fn.invoke({}) == {"finishedBefore": 1}


async def test_esm_in_a_js_file_under_a_module_package(make_function: MakeFunction) -> None:
    fn = await make_function({"package.json": '{"type": "module"}',
                              "src/app.js": "export async function handler(e) { return { ok: e.x }; }"},
                             handler="src/app.handler")
    assert await fn.invoke({"x": 7}) == {"ok": 7}


async def test_thrown_error_is_answered_in_aws_shape_and_environment_stays_warm(make_function: MakeFunction) -> None:
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => {
          if (event.fail) throw new TypeError("bad input: " + event.fail);
          return process.pid;
        };
    """})
    pid = await fn.invoke({})
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"fail": "x"})
    assert caught.value.error_type == "TypeError"
    assert caught.value.error_message == "bad input: x"
    payload = caught.value.payload()
    assert payload["errorType"] == "TypeError" and payload["errorMessage"] == "bad input: x"
    assert payload["trace"][0] == "TypeError: bad input: x"
    assert await fn.invoke({}) == pid


async def test_timeout_kills_the_process_and_the_next_call_gets_a_fresh_one(make_function: MakeFunction) -> None:
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => {
          if (event.hang) await new Promise(() => setInterval(() => {}, 1000));
          return process.pid;
        };
    """}, timeout_s=0.5)
    pid = await fn.invoke({})
    with pytest.raises(FunctionTimeout) as caught:
        await fn.invoke({"hang": True}, request_id="slow-1")
    assert caught.value.payload() == {"errorType": "Sandbox.Timedout",
                                      "errorMessage": "RequestId: slow-1 Error: Task timed out after 0.50 seconds"}
    await wait_for(lambda: process_gone(pid))
    fresh = await fn.invoke({})
    assert fresh != pid


async def test_process_exit_is_answered_as_a_crash_and_the_environment_replaced(make_function: MakeFunction) -> None:
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => {
          if (event.exit) process.exit(3);
          return process.pid;
        };
    """})
    pid = await fn.invoke({})
    with pytest.raises(RuntimeCrash) as caught:
        await fn.invoke({"exit": True}, request_id="crash-1")
    assert caught.value.payload() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: crash-1 Error: Runtime exited with error: exit status 3"}
    assert process_gone(pid)
    assert await fn.invoke({}) != pid


async def test_uncaught_exception_in_a_callback_is_reported_then_replaced(make_function: MakeFunction) -> None:
    fn = await make_function({"app.js": """
        exports.handler = (event, context, callback) => {
          if (event.boom) setTimeout(() => { throw new RangeError("late boom"); }, 1);
          else callback(null, process.pid);
        };
    """})
    pid = await fn.invoke({})
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"boom": True})
    assert (caught.value.error_type, caught.value.error_message) == ("RangeError", "late boom")
    await wait_for(lambda: process_gone(pid))
    assert await fn.invoke({}) != pid


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), [
    ({"app.mjs": "throw new Error('no config');"}, "app.handler", "Error", "no config"),
    ({"app.mjs": "export const other = 1;"}, "app.handler", "Runtime.HandlerNotFound",
     "app.handler is undefined or not exported"),
    ({"app.mjs": "export const handler = 1;"}, "missing.handler", "Runtime.ImportModuleError",
     "Error: Cannot find module 'missing'"),
    ({"app.js": "exports.handler = (;"}, "app.handler", "Runtime.UserCodeSyntaxError", "SyntaxError"),
    ({"app.js": "exports.handler = () => 1;"}, "nodots", "Runtime.MalformedHandlerName", "Bad handler nodots"),
])
async def test_init_errors_answer_the_invocation(make_function: MakeFunction, files: dict[str, str], handler: str,
                                                 error_type: str, message: str) -> None:
    fn = await make_function(files, handler=handler)
    with pytest.raises(InitError) as caught:
        await fn.invoke({})
    assert caught.value.error_type == error_type
    assert message in caught.value.error_message
    assert fn.environments == []


async def test_console_lines_carry_time_request_id_and_level(make_function: MakeFunction,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsgw.function")
    fn = await make_function({"app.mjs": """
        console.log("loading");
        export const handler = async () => { console.log("hello %s", "there"); console.error("two\\nlines"); };
    """}, name="logs")
    assert await fn.invoke({}, request_id="log-req") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "wsgw.function.logs"]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert any(re.fullmatch(stamp + r"\tundefined\tINFO\tloading", line) for line in lines), lines
    assert any(re.fullmatch(stamp + r"\tlog-req\tINFO\thello there", line) for line in lines), lines
    assert any(re.fullmatch(stamp + r"\tlog-req\tERROR\ttwo\rlines", line) for line in lines), lines


async def test_lambda_environment_variables(make_function: MakeFunction, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:5000")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("WSGW_NOT_PASSED", "secret")
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => Object.fromEntries(event.names.map((n) => [n, process.env[n] ?? null]));
    """}, name="envfn", memory_mb=512, region="eu-west-1",
        environment={"TABLE_NAME": "chat", "AWS_LAMBDA_RUNTIME_API": "ignored"})
    names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
             "AWS_REGION", "AWS_DEFAULT_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_DYNAMODB", "TABLE_NAME", "WSGW_NOT_PASSED",
             "AWS_EXECUTION_ENV", "AWS_LAMBDA_RUNTIME_API", "_X_AMZN_TRACE_ID"]
    env = await fn.invoke({"names": names})
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "envfn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(fn.spec.code_dir)
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "wsgw-local"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:5000"
    assert env["TABLE_NAME"] == "chat"
    assert env["WSGW_NOT_PASSED"] is None
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs20.x"
    assert env["AWS_LAMBDA_RUNTIME_API"] == fn.environments[0].endpoint.address
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")


async def test_concurrency_limit_queues_callers_beyond_it(make_function: MakeFunction) -> None:
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => {
          await new Promise((r) => setTimeout(r, 150));
          return process.pid;
        };
    """}, concurrency=2)
    pids = await asyncio.gather(*(fn.invoke({"n": n}) for n in range(6)))
    assert len(set(pids)) == 2
    assert len(fn.cold_starts) == 2
    assert len(fn.environments) == 2


async def test_oversized_response_is_refused_with_aws_error(make_function: MakeFunction) -> None:
    fn = await make_function({"app.mjs": """
        export const handler = async (event) => event.big ? "x".repeat(7 * 1024 * 1024) : "small";
    """}, timeout_s=10.0)
    with pytest.raises(FunctionError) as caught:
        await fn.invoke({"big": True})
    assert caught.value.error_type == "Function.ResponseSizeTooLarge"
    assert await fn.invoke({}) == "small"
