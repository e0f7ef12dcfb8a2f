"""Versions of one chat API written into a temporary folder: each version its own folder with the same
`stagehandlers/chat.py` (so that same-named modules must stay apart), logging every call to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HANDLER = '''
import json
import os

VERSION = {version!r}


def _log(kind, event):
    ctx = event["requestContext"]
    with open(os.environ["STAGE_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({{"version": VERSION, "kind": kind, "id": ctx["connectionId"],
                               "stage": ctx["stage"], "api": os.environ.get("API_NAME")}}) + "\\n")


def on_connect(event, context):
    _log("connect", event)
    return {{"statusCode": 200}}


def on_default(event, context):
    _log("message", event)
    return {{"statusCode": 200, "body": json.dumps({{
        "version": VERSION, "stage": event["requestContext"]["stage"], "vars": event.get("stageVariables"),
        "api": os.environ.get("API_NAME"), "body": event.get("body")}})}}


def on_new(event, context):
    return {{"statusCode": 200, "body": json.dumps({{"version": VERSION, "route": "new"}})}}


def on_disconnect(event, context):
    _log("disconnect", event)
    return {{"statusCode": 200}}


def on_get(event, context):
    return {{"statusCode": 200, "body": json.dumps({{"version": VERSION, "stage": event["requestContext"]["stage"],
                                                  "vars": event.get("stageVariables")}})}}
'''


def write_version(root: Path, version: str, log: Path, api_name: str = "chat", new_route: bool = False,
                  **extra: Any) -> str:
    """`root/<version>/api.yaml` and its handlers; returns the path relative to root."""
    folder = root / version
    (folder / "stagehandlers").mkdir(parents=True, exist_ok=True)
    (folder / "stagehandlers" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "stagehandlers" / "chat.py").write_text(HANDLER.format(version=version), encoding="utf-8")
    routes: dict[str, Any] = {
        "$connect": {"handler": "stagehandlers.chat:on_connect"},
        "$default": {"handler": "stagehandlers.chat:on_default", "routeResponse": True},
        "$disconnect": {"handler": "stagehandlers.chat:on_disconnect"},
    }
    if new_route:
        routes["new"] = {"handler": "stagehandlers.chat:on_new", "routeResponse": True}
    raw = {"environment": {"STAGE_LOG": str(log), "API_NAME": api_name}, "routes": routes,
           "http": {"routes": {"GET /info": {"handler": "stagehandlers.chat:on_get"}}}, **extra}
    (folder / "api.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return f"{version}/api.yaml"


def write_site(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def read_log(log: Path) -> list[dict[str, str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
