"""`python`: an in-process `module:function`, async awaited on the loop, sync run in the handler pool
(wsgw/integrations/handler_pool.py).

Options besides `handler`, all optional (the serverless.yml and SAM loaders fill them in):
`codeUri` (the folder, relative to the config file, the module is imported from — Lambda's task root;
default: the config file's folder), `functionName` (what `context.function_name` and
AWS_LAMBDA_FUNCTION_NAME report), `memorySize` (MB, for `context.memory_limit_in_mb`), `environment`
(the function's own variables), `maxHungCalls` (sync handlers: calls still running after their timeout, default
16; past it the function's new calls are refused, so one hung function cannot take every thread of the node
— healthy bursts just queue for a thread).
Each call runs with its function's Lambda-like environment.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec, PythonOptions
from wsgw.errors import ConfigError
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.environment import environment_overlay, function_environment, function_scope
from wsgw.integrations.handler_pool import JobState
from wsgw.integrations.modules import import_from
from wsgw.observe.tracing import enabled as tracing_enabled


def import_handler(reference: str, base_dir: Path, key: str) -> Callable[..., Any]:
    """Import `module:function` with `base_dir` first on sys.path, as Lambda does with the task root."""
    module_name, _, attr = reference.partition(":")
    try:
        module = import_from(base_dir, module_name)
    except Exception as exc:
        raise ConfigError.single(key, f"cannot import module '{module_name}' from {base_dir}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError.single(key, f"module '{module_name}' has no function '{attr}'")
    return function  # type: ignore[no-any-return]


class PythonIntegration(Integration):
    """Calls `def handler(event, context)` or `async def handler(event, context)` in this process."""

    type_name = "python"

    def __init__(self, spec: IntegrationSpec, function_name: str, function: Callable[..., Any],
                 resources: Resources, environment: dict[str, str] | None = None,
                 memory_mb: int = 128, max_hung: int = 16) -> None:
        super().__init__(spec, function_name)
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.pool = resources.handler_pool
        self.environment = environment if environment is not None else {}
        self.memory = str(memory_mb)
        self.max_hung = max_hung
        self.hung = 0                          # sync calls given up on (timeout) whose thread still runs
        self.lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> PythonIntegration:
        options = spec.options
        assert isinstance(options, PythonOptions)
        handler_key = f"{spec.key}.handler" if not spec.key.endswith("handler") else spec.key
        base = spec.key.removesuffix(".handler")
        reference = options.handler
        folder = (api.base_dir / options.code_uri) if options.code_uri else api.base_dir
        if not folder.is_dir():
            raise ConfigError.single(f"{base}.codeUri", f"{folder} is not a folder")
        name = options.function_name or function_name
        memory = options.memory_mb
        max_hung = options.max_hung_calls
        environment = function_environment(resources.environment, name, reference, folder.resolve(), memory,
                                           options.environment)
        with function_scope(environment):
            function = import_handler(reference, folder, handler_key)
        return cls(spec, name, function, resources, environment, memory, max_hung)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        context.memory_limit_in_mb = self.memory
        if self.is_async:    # function_scope inlined: its generator-based context manager was 3 calls per message
            token = environment_overlay.set(self.environment)
            try:
                return await self.function(event, context)
            finally:
                environment_overlay.reset(token)
        if self.hung >= self.max_hung:
            raise IntegrationFailed(f"{self.function_name}: {self.hung} timed-out calls are still running "
                                    f"(maxHungCalls {self.max_hung}); refusing new calls until they return")
        # With tracing on, the thread runs in a copy of this context so the handler sees the current span.
        job = (self.pool.submit(contextvars.copy_context().run, self._in_scope, event, context)
               if tracing_enabled() else self.pool.submit(self._in_scope, event, context))
        try:
            return await job.future
        except asyncio.CancelledError:         # timed out (or shutting down) while waiting for the thread
            if self.pool.give_up(job, self._returned) is JobState.RUNNING:
                with self.lock:                # its thread stays busy until the function returns
                    self.hung += 1
            raise

    def _in_scope(self, event: dict[str, Any], context: LambdaContext) -> object:
        with function_scope(self.environment):
            return self.function(event, context)

    def _returned(self) -> None:
        with self.lock:
            self.hung -= 1
