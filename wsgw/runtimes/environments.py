"""Execution environments for one function: its runtime processes, polled through the Runtime API.

As on Lambda: an environment is one runtime process serving one invocation at a time, kept warm between
invocations (module state survives), at most `concurrency` at once (more callers queue), killed and
replaced when an invocation passes the function's timeout or the process exits, stopped after `idle_s`
without work, and all stopped on `close()`. Each process leads its own process group, so stopping it
stops whatever it started too; and every runtime client exits when its Runtime API goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from wsgw.runtimes.endpoint_alias import ENV_VARIABLE as ALIASES_VARIABLE
from wsgw.runtimes.endpoint_alias import EndpointAlias, format_aliases
from wsgw.runtimes.invocation import (
    MAX_PAYLOAD_BYTES,
    FunctionTimeout,
    InitError,
    Invocation,
    InvocationError,
    NotDelivered,
    RuntimeCrash,
    RuntimeUnavailable,
    exit_text,
)
from wsgw.runtimes.runtime_api import Endpoint, RuntimeApi

__all__ = [
    "CUSTOM_RUNTIMES",
    "NODE_BOOTSTRAP",
    "NODE_RUNTIMES",
    "PYTHON_BOOTSTRAP",
    "PYTHON_RUNTIMES",
    "ExecutionEnvironment",
    "FunctionEnvironments",
    "FunctionSpec",
    "default_concurrency",
    "lambda_environment",
    "runtime_command",
]

NODE_RUNTIMES = frozenset({"nodejs18.x", "nodejs20.x", "nodejs22.x"})
CUSTOM_RUNTIMES = frozenset({"provided", "provided.al2", "provided.al2023"})
PYTHON_RUNTIMES = frozenset({"python3.9", "python3.10", "python3.11", "python3.12", "python3.13"})
RUNTIME_DIR = Path(__file__).resolve().parent
NODE_BOOTSTRAP = RUNTIME_DIR / "node" / "bootstrap.mjs"
PYTHON_BOOTSTRAP = RUNTIME_DIR / "python" / "bootstrap.py"
PASSTHROUGH = ("NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE")
PASSTHROUGH_PREFIX = "AWS_ENDPOINT_URL"
_STOP_GRACE_S = 0.5


def default_concurrency() -> int:
    """Environments per function when the template reserves none: one per core, at least two."""
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What running one function takes: its runtime, code, handler and Lambda settings."""

    name: str
    runtime: str
    handler: str
    code_dir: Path
    timeout_s: float = 3.0
    memory_mb: int = 128
    environment: Mapping[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "000000000000"
    credentials: Mapping[str, str] | None = None       # AWS_ACCESS_KEY_ID etc.; None: the gateway's, else dummy
    concurrency: int = field(default_factory=default_concurrency)
    idle_s: float = 300.0
    init_timeout_s: float = 10.0                        # Lambda's init phase limit for on-demand functions
    endpoint_aliases: tuple[EndpointAlias, ...] = ()    # AWS host names of the APIs -> the gateway (endpoint_alias)
    local_ca: Path | None = None                        # the dev CA the gateway's certificate comes from

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


def runtime_command(spec: FunctionSpec) -> list[str]:
    """The process that implements `spec.runtime`; RuntimeUnavailable names what to install or fix."""
    if spec.runtime in NODE_RUNTIMES:
        node = shutil.which("node")
        if node is None:
            raise RuntimeUnavailable(f"{spec.runtime} needs `node` (Node.js 18 or later) on PATH: "
                                     "install the Debian package `nodejs` (apt-get install nodejs)")
        return [node, str(NODE_BOOTSTRAP)]
    if spec.runtime in PYTHON_RUNTIMES:
        # The gateway's own interpreter, in a process of its own: the packages the gateway sees (boto3) are
        # there, as the SDK is on Lambda; whatever version `python3.x` names.
        return [sys.executable, str(PYTHON_BOOTSTRAP)]
    if spec.runtime in CUSTOM_RUNTIMES:
        bootstrap = spec.code_dir / "bootstrap"
        if not bootstrap.is_file():
            raise RuntimeUnavailable(f"{spec.runtime}: {bootstrap} does not exist (a custom runtime's code folder "
                                     "holds its `bootstrap` executable)")
        if not os.access(bootstrap, os.X_OK):
            raise RuntimeUnavailable(f"{spec.runtime}: {bootstrap} is not executable (chmod +x it)")
        return [str(bootstrap)]
    raise RuntimeUnavailable(f"runtime {spec.runtime!r} cannot run as a process; supported: "
                             + ", ".join(sorted(NODE_RUNTIMES | PYTHON_RUNTIMES | CUSTOM_RUNTIMES)))


def lambda_environment(spec: FunctionSpec, runtime_api: str, log_stream: str,
                       parent: Mapping[str, str]) -> dict[str, str]:
    """The process environment Lambda gives a runtime (a clean one, not the gateway's), plus the function's own."""
    values = {
        "PATH": parent.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": str(RUNTIME_DIR),
        "_HANDLER": spec.handler,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
    }
    if spec.runtime in NODE_RUNTIMES:
        values["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
        node_modules = RUNTIME_DIR / "node" / "node_modules"
        values["NODE_PATH"] = f"{node_modules}:{RUNTIME_DIR / 'node'}:{spec.code_dir}"
    elif spec.runtime in PYTHON_RUNTIMES:
        values["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
    if spec.credentials is not None:
        values.update(spec.credentials)
    elif parent.get("AWS_ACCESS_KEY_ID") and parent.get("AWS_SECRET_ACCESS_KEY"):
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if parent.get(name):
                values[name] = parent[name]
    else:
        values["AWS_ACCESS_KEY_ID"] = "wsgw-local"
        values["AWS_SECRET_ACCESS_KEY"] = "wsgw-local"
    for name, value in parent.items():
        if name.startswith(PASSTHROUGH_PREFIX) or name in PASSTHROUGH:
            values[name] = value
    if spec.local_ca is not None:
        values["NODE_EXTRA_CA_CERTS"] = str(spec.local_ca)       # Node adds it to its roots at start
        values["WSGW_LOCAL_CA"] = str(spec.local_ca)             # the Python bootstrap: AWS_CA_BUNDLE = roots + it
    values.update(spec.environment)
    if spec.endpoint_aliases:
        values[ALIASES_VARIABLE] = format_aliases(spec.endpoint_aliases)
    values["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    return values


class ExecutionEnvironment:
    """One runtime process and its Runtime API endpoint; serves one invocation at a time."""

    def __init__(self, spec: FunctionSpec, endpoint: Endpoint, log: logging.Logger) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.log_stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
        self.cold_start_s: float | None = None
        self.last_used = time.monotonic()
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and not self._exited.is_set() and not self.endpoint.closed

    async def start(self, timeout_s: float) -> None:
        """Spawn the runtime and wait for its first `/next` (the end of its init phase)."""
        command = runtime_command(self.spec)
        env = lambda_environment(self.spec, self.endpoint.address, self.log_stream, os.environ)
        started = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *command, cwd=self.spec.code_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self._tasks.append(asyncio.create_task(self._watch(), name=f"wsgw-runtime-{self.process.pid}"))
        self._tasks.append(asyncio.create_task(self._forward_output(), name=f"wsgw-runtime-log-{self.process.pid}"))
        waits = [asyncio.create_task(event.wait()) for event in
                 (self.endpoint.ready, self.endpoint.init_failed, self._exited)]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if self.endpoint.ready.is_set() and not self.endpoint.init_failed.is_set():
            self.cold_start_s = time.perf_counter() - started
            self.log.debug("%s: environment %s ready in %.0f ms", self.spec.name, self.pid, self.cold_start_s * 1000)
            return
        await self.stop()
        if self.endpoint.init_error is not None:
            raise self.endpoint.init_error
        if self._exited.is_set():
            raise InitError("Runtime.ExitError", f"Runtime exited with error: {exit_text(self.returncode)}")
        raise InitError("Sandbox.Timedout", f"Init timed out after {timeout_s:.2f} seconds")

    async def invoke(self, invocation: Invocation, timeout_s: float) -> bytes:
        """Hand `invocation` to the runtime and wait for its answer; past `timeout_s` the process is killed."""
        self.endpoint.submit(invocation)
        try:
            async with asyncio.timeout(timeout_s):
                return await invocation.result
        except TimeoutError:
            await self.kill()
            raise FunctionTimeout(invocation.request_id, timeout_s) from None
        except asyncio.CancelledError:
            await self.kill()           # the caller gave up: the runtime still holds the event, so it cannot be reused
            raise
        finally:
            self.last_used = time.monotonic()

    async def kill(self) -> None:
        """SIGKILL the whole process group now (timeouts, abandoned invocations)."""
        await self.stop(grace_s=0)

    async def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """SIGTERM the process group, SIGKILL what is left after `grace_s`, close the endpoint."""
        process = self.process
        if process is not None and not self._exited.is_set():
            if grace_s > 0:
                _signal_group(process.pid, signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace_s):
                        await self._exited.wait()
            _signal_group(process.pid, signal.SIGKILL)
            await self._exited.wait()
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)      # whatever the runtime started and left behind
        self.endpoint.drop_queued(NotDelivered())
        await self.endpoint.close()
        for task in self._tasks:
            if not task.done():
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _watch(self) -> None:
        assert self.process is not None
        self.returncode = await self.process.wait()
        self._exited.set()
        _signal_group(self.process.pid, signal.SIGKILL)
        current = self.endpoint.current
        if current is not None and not current.result.done():
            self.log.error("%s: runtime %s exited (%s) during invocation %s", self.spec.name, self.process.pid,
                           exit_text(self.returncode), current.request_id)
            current.settle(RuntimeCrash(current.request_id, self.returncode))
        self.endpoint.drop_queued(NotDelivered())

    async def _forward_output(self) -> None:
        """The runtime's stdout and stderr, line by line, into the function's log (CloudWatch's role)."""
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        while True:
            try:
                line = await stream.readline()
            except ValueError:                      # a line past the stream limit: take what is buffered
                line = await stream.read(64 * 1024)
            if not line:
                return
            self.log.info("%s", line.decode("utf-8", "replace").rstrip("\n"))


class FunctionEnvironments:
    """All execution environments of one function; `invoke()` is the whole API."""

    def __init__(self, spec: FunctionSpec, api: RuntimeApi) -> None:
        self.spec = spec
        self.api = api
        self.log = logging.getLogger(f"wsgw.function.{spec.name}")
        self._slots = asyncio.Semaphore(spec.concurrency)
        self._idle: list[ExecutionEnvironment] = []          # a stack: the most recently used is reused first
        self._all: set[ExecutionEnvironment] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.cold_starts: list[float] = []

    @property
    def environments(self) -> list[ExecutionEnvironment]:
        return list(self._all)

    async def invoke(self, event: Any, deadline_s: float | None = None, *, request_id: str | None = None,
                     client_context: Mapping[str, Any] | None = None) -> Any:
        """Run the function on `event`: its JSON result, or an InvocationError subclass saying what went wrong.

        `deadline_s` (seconds from now) bounds the whole call, queueing and cold start included; the
        function's own timeout bounds the run. A body that is not JSON comes back as text.
        """
        payload = orjson.dumps(event)
        context = orjson.dumps(client_context).decode() if client_context is not None else None
        body = await self.invoke_raw(payload, deadline_s, request_id=request_id, client_context=context)
        if not body:
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")

    async def invoke_raw(self, payload: bytes, deadline_s: float | None = None, *, request_id: str | None = None,
                         client_context: str | None = None) -> bytes:
        """`invoke` with the event and result as bytes."""
        if self._closed:
            raise RuntimeUnavailable(f"function {self.spec.name} is stopped")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvocationError("RequestEntityTooLargeException",
                                  f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the Invoke operation")
        loop = asyncio.get_running_loop()
        limit = deadline_s if deadline_s is not None else self.spec.init_timeout_s + self.spec.timeout_s + 3600.0
        deadline = loop.time() + limit
        invocation_id = request_id or str(uuid.uuid4())
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise FunctionTimeout(invocation_id, limit) from None
        try:
            for attempt in range(3):
                env = await self._environment(deadline, invocation_id)
                run_s = min(self.spec.timeout_s, max(0.0, deadline - loop.time()))
                invocation = Invocation(payload, int((time.time() + run_s) * 1000), self.spec.arn,
                                        request_id=invocation_id, client_context=client_context)
                try:
                    return await env.invoke(invocation, run_s)
                except NotDelivered:
                    if attempt == 2:
                        raise
                    # the warm environment was on its way out (it exited after its last answer): take another
                finally:
                    self._release(env)
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    async def _environment(self, deadline: float, request_id: str) -> ExecutionEnvironment:
        while self._idle:
            env = self._idle.pop()
            if env.alive:
                return env
            self._all.discard(env)
        endpoint = await self.api.open_endpoint()
        env = ExecutionEnvironment(self.spec, endpoint, self.log)
        self._all.add(env)
        left = deadline - asyncio.get_running_loop().time()
        try:
            await env.start(min(self.spec.init_timeout_s, max(0.0, left)))
        except BaseException:
            self._all.discard(env)
            await env.stop(grace_s=0)
            raise
        assert env.cold_start_s is not None
        self.cold_starts.append(env.cold_start_s)
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name=f"wsgw-reaper-{self.spec.name}")
        return env

    def _release(self, env: ExecutionEnvironment) -> None:
        if env.alive and not self._closed:
            self._idle.append(env)
        else:
            self._all.discard(env)
            if env.process is not None and not env.endpoint.closed:
                asyncio.get_running_loop().create_task(env.stop(grace_s=0))

    async def _reap(self) -> None:
        """Stop environments idle for `idle_s` (Lambda reclaims them similarly; the next call is a cold start)."""
        interval = min(1.0, max(0.02, self.spec.idle_s / 4))
        while not self._closed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            stale = [env for env in self._idle if now - env.last_used >= self.spec.idle_s or not env.alive]
            for env in stale:
                self._idle.remove(env)
                self._all.discard(env)
                self.log.debug("%s: stopping idle environment %s", self.spec.name, env.pid)
                await env.stop()

    async def close(self) -> None:
        """Stop every environment (busy ones too: their callers get RuntimeCrash) and the reaper."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        envs = list(self._all)
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(env.stop() for env in envs), return_exceptions=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
