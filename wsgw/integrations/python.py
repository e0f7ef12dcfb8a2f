"""`python`: an in-process `module:function`, async awaited on the loop, sync run in the thread pool.

Options besides `handler`, all optional (the serverless.yml and SAM loaders fill them in):
`codeUri` (the folder, relative to the config file, the module is imported from — Lambda's task root;
default: the config file's folder), `functionName` (what `context.function_name` and
AWS_LAMBDA_FUNCTION_NAME report), `memorySize` (MB, for `context.memory_limit_in_mb`), `environment`
(the function's own variables), `maxConcurrency` (sync handlers: calls running at once, default 32 —
like a Lambda's reserved concurrency, it keeps one hung function from taking every thread of the node).
Each call runs with its function's Lambda-like environment.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.errors import ConfigError
from wsgw.events import LambdaContext
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.integrations.environment import function_environment, function_scope
from wsgw.integrations.modules import import_from

DEFAULT_MEMORY_MB = 128
DEFAULT_MAX_CONCURRENCY = 32


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
                 memory_mb: int = DEFAULT_MEMORY_MB, max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        super().__init__(spec, function_name)
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.executor = resources.executor
        self.environment = environment if environment is not None else {}
        self.memory = str(memory_mb)
        self.max_concurrency = max_concurrency
        self.running = 0                       # sync calls whose thread has not returned (timed out ones too)
        self.lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> PythonIntegration:
        options = spec.options
        handler_key = f"{spec.key}.handler" if not spec.key.endswith("handler") else spec.key
        base = spec.key.removesuffix(".handler")
        reference = options.get("handler")
        if not isinstance(reference, str):
            raise ConfigError.single(handler_key, "missing: give 'module:function'")
        code_uri = options.get("codeUri")
        if code_uri is not None and (not isinstance(code_uri, str) or not code_uri):
            raise ConfigError.single(f"{base}.codeUri", "must be a folder relative to the config file")
        folder = (api.base_dir / code_uri) if code_uri else api.base_dir
        if not folder.is_dir():
            raise ConfigError.single(f"{base}.codeUri", f"{folder} is not a folder")
        name = options.get("functionName", function_name)
        if not isinstance(name, str) or not name:
            raise ConfigError.single(f"{base}.functionName", "must be a non-empty string")
        memory = options.get("memorySize", DEFAULT_MEMORY_MB)
        if isinstance(memory, bool) or not isinstance(memory, int) or not 128 <= memory <= 10240:
            raise ConfigError.single(f"{base}.memorySize", "must be a whole number of MB from 128 to 10240")
        own = options.get("environment") or {}
        if not isinstance(own, dict):
            raise ConfigError.single(f"{base}.environment", "must be a mapping of names to strings")
        concurrency = options.get("maxConcurrency", DEFAULT_MAX_CONCURRENCY)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1000:
            raise ConfigError.single(f"{base}.maxConcurrency", "must be a whole number from 1 to 1000")
        environment = function_environment(api, name, reference, folder.resolve(), memory,
                                           {str(k): str(v) for k, v in own.items()})
        with function_scope(environment):
            function = import_handler(reference, folder, handler_key)
        return cls(spec, name, function, resources, environment, memory, concurrency)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        context.memory_limit_in_mb = self.memory
        if self.is_async:
            with function_scope(self.environment):
                return await self.function(event, context)
        with self.lock:
            if self.running >= self.max_concurrency:
                raise IntegrationFailed(f"{self.function_name}: {self.running} calls still running "
                                        f"(maxConcurrency {self.max_concurrency}); refusing this one")
            self.running += 1
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, partial(self._in_scope, event, context))
        except RuntimeError:                   # the pool is shut down: the thread never ran
            self._finished()
            raise

    def _in_scope(self, event: dict[str, Any], context: LambdaContext) -> object:
        try:
            with function_scope(self.environment):
                return self.function(event, context)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self.lock:
            self.running -= 1
