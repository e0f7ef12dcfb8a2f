"""`static`: serve files below `root` on a REST route (`GET /{proxy+}`), e.g. a web client next to its API.

The file is `pathParameters.proxy` (else the path below the stage); '' or a folder serves `index.html`.
Safe on its own, whatever the router already refused: a '.'/'..'/hidden segment, a NUL byte, a backslash or
anything that resolves (symlinks included) outside the resolved root answers 404, never a file.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.config.integrations import StaticOptions
from wsgw.errors import ConfigError
from wsgw.integrations.base import Integration, Resources

MAX_FILE_BYTES = 10 * 1024 * 1024
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
NOT_FOUND = {"statusCode": 404, "headers": {"content-type": "application/json"}, "body": '{"message":"Not Found"}'}


class StaticIntegration(Integration):
    type_name = "static"

    def __init__(self, spec: IntegrationSpec, function_name: str, root: Path, cache_seconds: int) -> None:
        super().__init__(spec, function_name)
        self.root = root
        self.cache_seconds = cache_seconds

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> StaticIntegration:
        options = spec.options
        assert isinstance(options, StaticOptions)
        folder = (api.base_dir / options.root).resolve()
        if not folder.is_dir():        # the machine's side: the config layer checked the option's form
            raise ConfigError.single(f"{spec.key}.root", f"'{folder}' is not a folder")
        cache = options.cache_seconds
        return cls(spec, function_name, folder, cache)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        return await asyncio.to_thread(self._answer, _requested(event))

    def _answer(self, requested: str) -> dict[str, Any]:
        target = self.resolve(requested)
        if target is None:
            return dict(NOT_FOUND)
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            return dict(NOT_FOUND)
        data = target.read_bytes()
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind == "text/javascript":
            kind = "application/javascript"
        headers = {"content-type": kind + ("; charset=utf-8" if kind.startswith(TEXT_TYPES) else ""),
                   "cache-control": f"max-age={self.cache_seconds}" if self.cache_seconds else "no-cache",
                   "x-content-type-options": "nosniff"}
        if kind.startswith(TEXT_TYPES):
            return {"statusCode": 200, "headers": headers, "body": data.decode("utf-8", "replace")}
        return {"statusCode": 200, "headers": headers, "body": base64.b64encode(data).decode(),
                "isBase64Encoded": True}

    def resolve(self, requested: str) -> Path | None:
        """The file under root that `requested` names, or None (traversal, hidden, missing, outside root)."""
        if "\x00" in requested or "\\" in requested:
            return None
        parts = [p for p in requested.split("/") if p]
        if any(p in (".", "..") or p.startswith(".") for p in parts):
            return None
        candidate = self.root.joinpath(*parts) if parts else self.root
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real.is_dir():
            real = (real / "index.html").resolve()
        if os.path.commonpath([real, self.root]) != str(self.root) or not real.is_file():
            return None
        return real


def _requested(event: dict[str, Any]) -> str:
    proxy = (event.get("pathParameters") or {}).get("proxy")
    if isinstance(proxy, str):
        return proxy
    raw = str(event.get("rawPath") or "/")
    stage = str((event.get("requestContext") or {}).get("stage") or "")
    if stage and raw.startswith(f"/{stage}/"):
        raw = raw[len(stage) + 1:]
    return unquote(raw)
