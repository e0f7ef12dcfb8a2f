"""`python`: an in-process `module:function`, async awaited on the loop, sync run in the thread pool."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.errors import ConfigError
from wsgw.events import LambdaContext
from wsgw.integrations.base import Integration, Resources


def import_handler(reference: str, base_dir: Path, key: str) -> Callable[..., Any]:
    """Import `module:function` with the config file's folder on sys.path, as Lambda does with the task root."""
    module_name, _, attr = reference.partition(":")
    folder = str(base_dir)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError.single(key, f"cannot import module '{module_name}' from {folder}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError.single(key, f"module '{module_name}' has no function '{attr}'")
    return function  # type: ignore[no-any-return]


class PythonIntegration(Integration):
    """Calls `def handler(event, context)` or `async def handler(event, context)` in this process."""

    type_name = "python"

    def __init__(self, spec: IntegrationSpec, function_name: str, function: Callable[..., Any],
                 resources: Resources) -> None:
        super().__init__(spec, function_name)
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.executor = resources.executor

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> PythonIntegration:
        reference = spec.options.get("handler")
        if not isinstance(reference, str):
            raise ConfigError.single(f"{spec.key}.handler", "missing: give 'module:function'")
        function = import_handler(reference, api.base_dir, f"{spec.key}.handler" if
                                  not spec.key.endswith("handler") else spec.key)
        return cls(spec, function_name, function, resources)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        if self.is_async:
            return await self.function(event, context)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(self.function, event, context))
