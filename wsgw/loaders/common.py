"""What the serverless.yml and SAM translators share: their result and the Lambda facts they both need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wsgw.errors import ConfigProblem

MAX_INTEGRATION_MS = 29_000       # API Gateway's integration timeout, whatever the function's own timeout


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Deployment-time inputs a template reads: `--stage`, `--region` and `--param NAME=VALUE`."""

    stage: str | None = None
    region: str | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Translation:
    """A raw wsgw.yaml mapping plus what could not be honoured: errors stop `run`, warnings are printed."""

    raw: dict[str, Any] = field(default_factory=dict)
    errors: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)

    def error(self, key: str, message: str) -> None:
        self.errors.append(ConfigProblem(key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(ConfigProblem(key, message))


def lambda_handler_to_reference(handler: str) -> str | None:
    """Lambda's `path/to/module.function` (awslambdaric: rsplit('.', 1), '/' → '.') as wsgw's `module:function`."""
    module, dot, function = handler.rpartition(".")
    if not dot or not module or not function:
        return None
    module = module.replace("/", ".").strip(".")
    return f"{module}:{function}"


def is_python_runtime(runtime: Any) -> bool:
    return isinstance(runtime, str) and runtime.startswith("python")


PROCESS_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x", "provided", "provided.al2", "provided.al2023")


def function_integration(out: Translation, runtime: Any, handler: Any, runtime_key: str, handler_key: str,
                         handler_example: str) -> dict[str, Any] | None:
    """A function's integration when it can run here (`type: python`, plus `runtime:` for Node.js and custom
    runtimes, which run through the Lambda Runtime API), else None with the error under its key."""
    if runtime in PROCESS_RUNTIMES:
        if runtime.startswith("nodejs") and not (isinstance(handler, str) and "." in handler):
            out.error(handler_key, f"'{handler}' is not 'module.export' (e.g. app.handler)")
            return None
        entry: dict[str, Any] = {"type": "python", "runtime": runtime}
        if isinstance(handler, str) and handler:
            entry["handler"] = handler
        return entry
    if not is_python_runtime(runtime):
        out.error(runtime_key, f"'{runtime}' cannot run here: wsgw runs python3.x, "
                  + ", ".join(PROCESS_RUNTIMES))
        return None
    reference = lambda_handler_to_reference(handler) if isinstance(handler, str) else None
    if reference is None:
        out.error(handler_key, f"'{handler}' is not {handler_example}")
        return None
    return {"type": "python", "handler": reference}


def concurrency(value: Any) -> int | None:
    """Reserved concurrency as execution environments (0, which stops a function on AWS, is kept as 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(1, min(value, 1000))


def timeout_ms(seconds: Any) -> int:
    """A function timeout (s) as the integration timeout: API Gateway cuts at 29 s, wsgw's floor is 50 ms."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        return MAX_INTEGRATION_MS
    return max(50, min(int(seconds * 1000), MAX_INTEGRATION_MS))


def string_values(mapping: Any) -> dict[str, str]:
    """Environment values as Lambda stores them: strings (booleans as true/false)."""
    if not isinstance(mapping, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in mapping.items():
        if value is None:
            continue
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out
