"""`runtime`: a function run in its own processes through the Lambda Runtime API (Node.js, custom runtimes, and
Python with `isolation: process`), as `python` with a `runtime:` other than python3.x becomes.

The node's functions share one `RuntimeHost` (in `Resources.shared`): one loopback Runtime API, and one
`FunctionEnvironments` per function, made at its first call (nothing is spawned by building a node, so
`wsgw check` starts nothing) and stopped when the node stops (after every `$disconnect`). At start the server
tells the host how runtimes reach the gateway through AWS's host name for the API (`configure`). Failures are
answered like a failing in-process handler: a timeout as the gateway's timeout (`Endpoint request timed out`,
504 on `$connect`), anything else (the handler's error, an init error, a crash) as `Internal server error` / 502,
logged with the payload Lambda would have returned.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec, RuntimeOptions
from wsgw.errors import ConfigError
from wsgw.integrations.base import Integration, IntegrationFailed, Resources
from wsgw.runtimes.endpoint_alias import EndpointAlias
from wsgw.runtimes.environments import (
    NODE_RUNTIMES,
    RUNTIME_DIR,
    FunctionEnvironments,
    FunctionSpec,
    default_concurrency,
    runtime_command,
)
from wsgw.runtimes.invocation import FunctionTimeout, InvocationError, RuntimeUnavailable
from wsgw.runtimes.runtime_api import RuntimeApi

log = logging.getLogger("wsgw.integrations")

HOST_KEY = "wsgw.runtimes"
NODE_SDK = RUNTIME_DIR / "node" / "node_modules" / "@aws-sdk"
NODE_EXTENSIONS = (".js", ".mjs", ".cjs")


class RuntimeHost:
    """The node's Runtime API and its functions' environments, started at first use and stopped with the node."""

    def __init__(self) -> None:
        self.api: RuntimeApi | None = None
        self.specs: dict[str, FunctionSpec] = {}
        self.functions: dict[str, FunctionEnvironments] = {}
        self.aliases: tuple[EndpointAlias, ...] = ()
        self.local_ca: Path | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def register(self, spec: FunctionSpec) -> str:
        """The key of `spec`'s environments: routes naming the same function with the same settings share them."""
        key, n = spec.name, 1
        while key in self.specs and self.specs[key] != spec:
            n += 1
            key = f"{spec.name}#{n}"
        self.specs[key] = spec
        return key

    def configure(self, aliases: tuple[EndpointAlias, ...], local_ca: Path | None) -> None:
        """How runtimes reach the gateway: AWS's host names for the API → the listener, and the CA to trust."""
        self.aliases, self.local_ca = aliases, local_ca

    async def function(self, key: str) -> FunctionEnvironments:
        found = self.functions.get(key)
        if found is not None:
            return found
        async with self._lock:
            if self._closed:
                raise RuntimeUnavailable("the node is stopping")
            if self.api is None:
                api = RuntimeApi()
                await api.start()
                self.api = api
            if key not in self.functions:
                spec = replace(self.specs[key], endpoint_aliases=self.aliases, local_ca=self.local_ca)
                self.functions[key] = FunctionEnvironments(spec, self.api)
            return self.functions[key]

    async def close(self) -> None:
        """Stop every environment (SIGTERM, then SIGKILL) and the Runtime API; later calls are refused."""
        async with self._lock:
            self._closed = True
            functions, self.functions = list(self.functions.values()), {}
            await asyncio.gather(*(fn.close() for fn in functions), return_exceptions=True)
            if self.api is not None:
                await self.api.close()
                self.api = None


def runtime_host(resources: Resources) -> RuntimeHost:
    """The node's one RuntimeHost (made on first use)."""
    host = resources.shared.get(HOST_KEY)
    if not isinstance(host, RuntimeHost):
        host = resources.shared[HOST_KEY] = RuntimeHost()
    return host


def node_module_exists(code_dir: Path, handler: str) -> bool:
    """Whether Lambda's Node runtime would find the module of `dir/module.export` under `code_dir`."""
    module = handler.split(".", 1)[0] if "/" not in handler else \
        handler.rsplit("/", 1)[0] + "/" + handler.rsplit("/", 1)[1].split(".", 1)[0]
    return any((code_dir / f"{module}{ext}").is_file() for ext in NODE_EXTENSIONS)


class RuntimeIntegration(Integration):
    """Invokes the function's execution environments with the event; the result is what the handler returned."""

    type_name = "runtime"

    def __init__(self, spec: IntegrationSpec, function_name: str, host: RuntimeHost, key: str) -> None:
        super().__init__(spec, function_name)
        self.host = host
        self.key = key

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> RuntimeIntegration:
        options = spec.options
        assert isinstance(options, RuntimeOptions)
        folder = ((api.base_dir / options.code_uri) if options.code_uri else api.base_dir).resolve()
        if not folder.is_dir():
            raise ConfigError.single(f"{spec.key}.codeUri", f"{folder} is not a folder")
        name = options.function_name or function_name
        own = {k: v for k, v in resources.environment.items() if k == "WSGW_SCHEME"}
        function = FunctionSpec(
            name=name, runtime=options.runtime, handler=options.handler, code_dir=folder,
            timeout_s=spec.timeout_ms / 1000, memory_mb=options.memory_mb,
            environment={**api.environment, **own, **options.environment},
            region=resources.environment.get("AWS_REGION") or api.region, account_id=api.account_id,
            concurrency=options.concurrency or default_concurrency())
        try:
            runtime_command(function)
        except RuntimeUnavailable as exc:
            raise ConfigError.single(f"{spec.key}.runtime", str(exc)) from None
        if options.runtime in NODE_RUNTIMES:
            if not node_module_exists(folder, options.handler):
                raise ConfigError.single(f"{spec.key}.handler", f"no module for '{options.handler}' in {folder} "
                                         f"({', '.join(NODE_EXTENSIONS)})")
            if not NODE_SDK.is_dir():
                log.warning("%s: the AWS SDK for JavaScript v3 is not installed for Node.js handlers "
                            "(imports of @aws-sdk/* fail with Runtime.ImportModuleError): run `make node-runtime` "
                            "(npm ci; needs the Debian package npm)", spec.key)
            if shutil.which("npm") is None and not NODE_SDK.is_dir():
                log.warning("%s: npm is missing too: apt-get install npm", spec.key)
        host = runtime_host(resources)
        return cls(spec, name, host, host.register(function))

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        try:
            function = await self.host.function(self.key)
            return await function.invoke(event, self.timeout_ms / 1000, request_id=context.aws_request_id)
        except FunctionTimeout as exc:
            raise TimeoutError(f"{self.function_name}: {exc.error_message}") from exc
        except InvocationError as exc:
            raise IntegrationFailed(f"{self.function_name}: {orjson.dumps(exc.payload()).decode()}") from exc
        except RuntimeUnavailable as exc:
            raise IntegrationFailed(f"{self.function_name}: {exc}") from exc
