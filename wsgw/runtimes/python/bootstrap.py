"""The Python side of wsgw's Lambda runtimes (`isolation: process`): what AWS's Python runtime client does.

Run as `python bootstrap.py` (the gateway's interpreter) in the function's code folder. Imports `_HANDLER`
(`module.function`, `dir/module.function`, or wsgw's `module:function`) with LAMBDA_TASK_ROOT first on
sys.path, then loops on the Runtime API at AWS_LAMBDA_RUNTIME_API: GET /invocation/next, call
`handler(event, context)` with a LambdaContext, POST /response or /error. Errors have the Python runtime's
shape (`errorMessage`, `errorType`, `requestId`, `stackTrace`) and its `Runtime.*` types for load failures,
which go to /init/error before the process exits. `logging` lines are formatted as on Lambda
(`[LEVEL]\\t<time>\\t<requestId>\\t<message>`); print() goes to the log as is. A coroutine returned by an
`async def` handler is run to completion on the process's one event loop (wsgw's in-process Python accepts
those too). Any failure of the Runtime API itself ends the process: the gateway that ran it is gone.
"""

from __future__ import annotations

import asyncio
import decimal
import http.client
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

BASE = "/2018-06-01/runtime"
_request_id = ""                      # the invocation in flight, for log lines; empty during init


class LoadError(Exception):
    """The handler could not be loaded; `error_type` is the Python runtime's `Runtime.*` name for why."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace or []


class RuntimeClient:
    """The Runtime API over one keep-alive connection (the API serves one environment per port)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self.connection = http.client.HTTPConnection(host.strip("[]"), int(port))

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        try:
            self.connection.request(method, BASE + path, body=body, headers=headers or {})
            response = self.connection.getresponse()
            return response.status, response.headers, response.read()
        except (OSError, http.client.HTTPException) as exc:
            api_gone(self.address, exc)

    def error(self, path: str, body: dict[str, Any]) -> None:
        self.call("POST", path, json.dumps(body).encode(),
                  {"Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": body["errorType"]})


def api_gone(address: str, exc: BaseException) -> NoReturn:
    sys.stderr.write(f"wsgw runtime: the Runtime API at {address} is unreachable ({exc}); exiting\n")
    sys.stderr.flush()
    os._exit(1)


# -- loading the handler ------------------------------------------------------------------------------------

def load_handler(spec: str) -> Callable[..., Any]:
    """Import the handler as Lambda's Python runtime does; LoadError with its `Runtime.*` type otherwise."""
    if ":" in spec:
        module_name, _, name = spec.partition(":")
    else:
        module_name, dot, name = spec.rpartition(".")
        if not dot:
            raise LoadError("Runtime.MalformedHandlerName",
                            f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    if not module_name or not name:
        raise LoadError("Runtime.MalformedHandlerName", f"Bad handler '{spec}'")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise LoadError("Runtime.BuiltInModuleConflict",
                        f"Cannot use built-in module {module_name} as a handler module")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise LoadError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise LoadError("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}",
                        trace) from exc
    handler = getattr(module, name, None)
    if handler is None:
        raise LoadError("Runtime.HandlerNotFound", f"Handler '{name}' missing on module '{module_name}'")
    if not callable(handler):
        raise LoadError("Runtime.HandlerNotFound", f"Handler '{name}' on module '{module_name}' is not callable")
    return handler  # type: ignore[no-any-return]


# -- errors and results in the Python runtime's shape ---------------------------------------------------------

def error_body(exc: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(exc, LoadError):
        return {"errorMessage": str(exc), "errorType": exc.error_type, "requestId": request_id,
                "stackTrace": exc.trace}
    frames = traceback.extract_tb(exc.__traceback__)[1:]          # without this file's calling frame
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
            "stackTrace": traceback.format_list(frames)}


def _decimal(value: object) -> object:
    """As the Python runtime: Decimals (DynamoDB numbers) become numbers."""
    if isinstance(value, decimal.Decimal):
        return float(value) if value % 1 else int(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def log_error(body: dict[str, Any]) -> None:
    lines = [f"[ERROR] {body['errorType']}: {body['errorMessage']}", *(
        line.rstrip("\n") for line in body.get("stackTrace", []))]
    sys.stdout.write("\r".join(lines) + "\n")


# -- logging as Lambda's Python runtime does it ---------------------------------------------------------------

class LambdaLogFormatter(logging.Formatter):
    """`[LEVEL]\\t2024-01-01T00:00:00.000Z\\t<requestId>\\t<message>`, one line per record."""

    def __init__(self) -> None:
        super().__init__("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                         "%Y-%m-%dT%H:%M:%S")
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        record.aws_request_id = _request_id
        return super().format(record).replace("\n", "\r")


def setup_logging() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LambdaLogFormatter())
    logging.getLogger().addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        logging.getLogger().setLevel(level.upper())


# -- the process ----------------------------------------------------------------------------------------------

def prepare_process(task_root: str) -> None:
    """sys.path as on Lambda (the task root first, not this file's folder), trust and endpoint aliases."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [entry for entry in sys.path if entry and Path(entry).resolve() != Path(here)]
    sys.path.insert(0, task_root)
    if importlib.util.find_spec("wsgw") is None:       # run from a source tree that is not installed
        sys.path.append(str(Path(__file__).resolve().parents[3]))
    from wsgw.runtimes.endpoint_alias import ENV_VARIABLE, install, parse_aliases

    aliases = os.environ.pop(ENV_VARIABLE, "")
    if aliases:
        install(parse_aliases(aliases))
    local_ca = os.environ.pop("WSGW_LOCAL_CA", "")
    if local_ca:
        from wsgw.tls.trust import trust_bundle

        bundle = trust_bundle(Path(local_ca), os.environ)
        bundle.write()
        os.environ.update(bundle.variables)       # this process is the function's own, as on Lambda


def main() -> None:
    global _request_id
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    setup_logging()
    try:
        prepare_process(task_root)
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exc:
        body = error_body(exc, "")
        log_error(body)
        client.error("/init/error", body)
        sys.stdout.flush()
        os._exit(1)

    from wsgw.aws.lambda_context import LambdaContext

    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    loop: asyncio.AbstractEventLoop | None = None
    while True:
        status, headers, payload = client.call("GET", "/invocation/next")
        if status != 200:
            api_gone(client.address, RuntimeError(f"GET /invocation/next answered {status}"))
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        trace = headers.get("Lambda-Runtime-Trace-Id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        _request_id = request_id
        parts = arn.split(":")
        region, account = (parts[3], parts[4]) if len(parts) > 4 else ("us-east-1", "000000000000")
        context = LambdaContext(name, request_id, max(0, deadline_ms - int(time.time() * 1000)), region, account,
                                memory)
        context.invoked_function_arn = arn or context.invoked_function_arn
        if stream:
            context.log_stream_name = stream
        client_context = headers.get("Lambda-Runtime-Client-Context")
        if client_context:
            parsed = json.loads(client_context)
            context.client_context = SimpleNamespace(client=parsed.get("client"), custom=parsed.get("custom"),
                                                     env=parsed.get("env"))
        try:
            result = handler(json.loads(payload or b"null"), context)
            if asyncio.iscoroutine(result):
                loop = loop or asyncio.new_event_loop()
                result = loop.run_until_complete(result)
        except Exception as exc:
            body = error_body(exc, request_id)
            log_error(body)
            client.error(f"/invocation/{request_id}/error", body)
            continue
        try:
            text = json.dumps(result, default=_decimal)
        except (TypeError, ValueError) as exc:
            body = {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError",
                    "requestId": request_id, "stackTrace": []}
            log_error(body)
            client.error(f"/invocation/{request_id}/error", body)
            continue
        client.call("POST", f"/invocation/{request_id}/response", text.encode(),
                    {"Content-Type": "application/json"})


if __name__ == "__main__":
    main()
