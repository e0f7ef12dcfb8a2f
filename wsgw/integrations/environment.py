"""The process environment in-process handlers see, as the Lambda runtime would set it up."""

from __future__ import annotations

import os
from pathlib import Path

from wsgw.config import ApiConfig


def prepare_environment(api: ApiConfig) -> None:
    """Region, the API's `environment:` and, when no credentials exist at all, dummy ones.

    boto3 refuses to sign without credentials; the @connections API accepts any, so a fresh machine
    with no AWS setup still runs handlers that push with boto3. Real credentials are never replaced.
    """
    os.environ.setdefault("AWS_REGION", api.region)
    os.environ.setdefault("AWS_DEFAULT_REGION", api.region)
    for name, value in api.environment.items():
        os.environ[name] = value
    has_credentials = (
        "AWS_ACCESS_KEY_ID" in os.environ
        or "AWS_PROFILE" in os.environ
        or (Path.home() / ".aws" / "credentials").exists()
        or "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in os.environ
    )
    if not has_credentials:
        os.environ["AWS_ACCESS_KEY_ID"] = "wsgw-local"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "wsgw-local"
