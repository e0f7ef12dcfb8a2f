"""The process environment in-process handlers see, as the Lambda runtime would set it up.

Nothing here writes the process's environment: a gateway must not change what other code, or another gateway
in the same process, reads from `os.environ`. Every variable a handler is given lives in an overlay on
`os.environ` selected by a context variable, set while a handler's module is imported and while the handler
runs (its thread, or its task for async handlers):
- per node (`node_environment`): the region, the API's `environment:`, dummy credentials when none exist,
  and what the server adds (WSGW_SCHEME, the local CA's trust bundle);
- per function (`function_environment`): the variables the Lambda runtime sets (`AWS_LAMBDA_FUNCTION_NAME`,
  `_HANDLER`, …) and the route's own `environment:`.
Code reading `os.environ[...]` or `os.getenv(...)` sees its own function's values; threads the handler starts
itself, and subprocesses, see the process's environment only.
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

environment_overlay: ContextVar[dict[str, str] | None] = ContextVar("wsgw_function_environment", default=None)
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


LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "wsgw-local", "AWS_SECRET_ACCESS_KEY": "wsgw-local"}


def node_environment(api: ApiConfig, environ: Mapping[str, str], home: Path,
                     extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every function of one node sees over the process environment (pure: `environ` is only read).

    The region (the shell's when set, else the API's), the API's `environment:` and, when no credentials
    exist at all, dummy ones: boto3 refuses to sign without credentials, the @connections API accepts any,
    so a fresh machine still runs handlers that push with boto3. Real credentials are never replaced.
    """
    values = {"AWS_REGION": environ.get("AWS_REGION") or api.region,
              "AWS_DEFAULT_REGION": environ.get("AWS_DEFAULT_REGION") or api.region}
    values.update(api.environment)
    if not has_aws_credentials({**environ, **values}, home):
        values.update(LOCAL_CREDENTIALS)
    values.update(extra or {})
    return values


def function_environment(node: Mapping[str, str], function_name: str, handler: str, code_dir: Path,
                         memory_mb: int, own: Mapping[str, str]) -> dict[str, str]:
    """The node's variables, what Lambda's runtime sets for one function (docs/aws-contract.md lists each),
    and the function's own `environment:`. The overlay that shows them to the function is installed here."""
    install_overlay()
    from wsgw.aws.lambda_context import LambdaContext

    stream = LambdaContext(function_name, "", 0).log_stream_name
    module, _, attr = handler.partition(":")
    values = {
        **node,
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
    token = environment_overlay.set(environment)
    try:
        yield
    finally:
        environment_overlay.reset(token)


class _FunctionEnviron(os._Environ):  # type: ignore[type-arg]
    """os.environ with the current function's variables laid over the process's (see the module doc)."""

    def __getitem__(self, key: Any) -> Any:
        overlay = environment_overlay.get()
        if overlay is not None and key in overlay:
            return overlay[key]
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        overlay = environment_overlay.get()
        if overlay is not None and key in overlay:
            overlay[key] = value          # the function's own variable, kept for its later invocations
            return
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        overlay = environment_overlay.get()
        if overlay is not None and key in overlay:
            del overlay[key]
            if self._real_has(key):
                super().__delitem__(key)
            return
        super().__delitem__(key)

    def __iter__(self) -> Iterator[Any]:
        overlay = environment_overlay.get()
        yield from super().__iter__()
        if overlay is not None:
            for key in list(overlay):
                if not self._real_has(key):
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        overlay = environment_overlay.get()
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
    """Give os.environ the per-function overlay (in place, so `from os import environ` sees it too).

    Changes no value: outside a function's scope the overlay reads and writes the process's environment."""
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _FunctionEnviron
