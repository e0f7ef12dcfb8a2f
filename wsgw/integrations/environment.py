"""The process environment in-process handlers see, as the Lambda runtime would set it up.

Process-wide (every thread): the region, the API's `environment:` and, when none exist, dummy credentials.
Per function (route): the variables the Lambda runtime sets (`AWS_LAMBDA_FUNCTION_NAME`, `_HANDLER`, …) and
the route's own `environment:`. Those differ between routes that run at the same time in one process, so they
live in an overlay on `os.environ` selected by a context variable: set while a handler's module is imported
and while the handler runs (its thread, or its task for async handlers). Code reading `os.environ[...]` or
`os.getenv(...)` sees its own function's values; threads the handler starts itself see only the process-wide
ones. Subprocesses inherit the process-wide environment only.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from wsgw.config import ApiConfig

_OVERLAY: ContextVar[dict[str, str] | None] = ContextVar("wsgw_function_environment", default=None)
EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"


CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE")


def has_aws_credentials(environ: Mapping[str, str], home: Path) -> bool:
    """Whether botocore's chain could find real credentials, checked without network calls.

    Looks at what the chain reads: environment, shared files (~/.aws/credentials, and ~/.aws/config, which
    may hold SSO or credential_process), container and web-identity (EKS) variables, and whether this is
    an EC2 instance (instance role through IMDS: the DMI board asset tag is the instance id there).
    """
    if any(environ.get(name) for name in CREDENTIAL_VARIABLES):
        return True
    aws = Path(environ["AWS_SHARED_CREDENTIALS_FILE"]) if environ.get("AWS_SHARED_CREDENTIALS_FILE") \
        else home / ".aws" / "credentials"
    config = Path(environ["AWS_CONFIG_FILE"]) if environ.get("AWS_CONFIG_FILE") else home / ".aws" / "config"
    if aws.exists() or config.exists():
        return True
    try:
        return Path("/sys/devices/virtual/dmi/id/board_asset_tag").read_text().strip().startswith("i-")
    except OSError:
        return False


def prepare_environment(api: ApiConfig) -> None:
    """Region, the API's `environment:` and, when no credentials exist at all, dummy ones.

    boto3 refuses to sign without credentials; the @connections API accepts any, so a fresh machine
    with no AWS setup still runs handlers that push with boto3. Real credentials are never replaced.
    """
    install_overlay()
    os.environ.setdefault("AWS_REGION", api.region)
    os.environ.setdefault("AWS_DEFAULT_REGION", api.region)
    for name, value in api.environment.items():
        os.environ[name] = value
    if not has_aws_credentials(os.environ, Path.home()):
        os.environ["AWS_ACCESS_KEY_ID"] = "wsgw-local"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "wsgw-local"


def function_environment(api: ApiConfig, function_name: str, handler: str, code_dir: Path,
                         memory_mb: int, own: Mapping[str, str]) -> dict[str, str]:
    """What Lambda's runtime sets for one function (docs/aws-contract.md lists each), plus its `environment:`."""
    from wsgw.aws.lambda_context import LambdaContext

    stream = LambdaContext(function_name, "", 0).log_stream_name
    module, _, attr = handler.partition(":")
    values = {
        "AWS_REGION": os.environ.get("AWS_REGION", api.region),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", api.region),
        "AWS_EXECUTION_ENV": EXECUTION_ENV,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "_HANDLER": f"{module}.{attr}" if attr else handler,
    }
    values.update(own)
    return values


@contextlib.contextmanager
def function_scope(environment: dict[str, str]) -> Iterator[None]:
    """Make `environment` visible through os.environ in this thread / task until the block ends."""
    token = _OVERLAY.set(environment)
    try:
        yield
    finally:
        _OVERLAY.reset(token)


class _FunctionEnviron(os._Environ):  # type: ignore[type-arg]
    """os.environ with the current function's variables laid over the process's (see the module doc)."""

    def __getitem__(self, key: Any) -> Any:
        overlay = _OVERLAY.get()
        if overlay is not None and key in overlay:
            return overlay[key]
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        overlay = _OVERLAY.get()
        if overlay is not None and key in overlay:
            overlay[key] = value          # the function's own variable, kept for its later invocations
            return
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        overlay = _OVERLAY.get()
        if overlay is not None and key in overlay:
            del overlay[key]
            if self._real_has(key):
                super().__delitem__(key)
            return
        super().__delitem__(key)

    def __iter__(self) -> Iterator[Any]:
        overlay = _OVERLAY.get()
        yield from super().__iter__()
        if overlay is not None:
            for key in list(overlay):
                if not self._real_has(key):
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        overlay = _OVERLAY.get()
        return (overlay is not None and key in overlay) or self._real_has(key)

    def _real_has(self, key: object) -> bool:
        try:
            super().__getitem__(key)
        except KeyError:
            return False
        return True

    def copy(self) -> dict[Any, Any]:
        return dict(self)


def install_overlay() -> None:
    """Give os.environ the per-function overlay (in place, so `from os import environ` sees it too)."""
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _FunctionEnviron
