"""Shared pieces for the runtime tests: a Runtime API per test, functions built from code written to tmp_path."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from wsgw.runtimes.environments import FunctionEnvironments, FunctionSpec
from wsgw.runtimes.runtime_api import RuntimeApi

NODE_MISSING = "these tests run real Node.js processes: install the Debian package `nodejs` (apt-get install nodejs)"

MakeFunction = Callable[..., Coroutine[Any, Any, FunctionEnvironments]]


def require_node() -> None:
    """Fail (never skip) when node is missing, naming the package to install."""
    if shutil.which("node") is None:
        pytest.fail(NODE_MISSING)


def write_code(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        if name == "bootstrap":
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


PYTHON_BOOTSTRAP_HEAD = f"#!{sys.executable}\n"


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
async def runtime_api() -> AsyncIterator[RuntimeApi]:
    api = RuntimeApi()
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def make_function(runtime_api: RuntimeApi, tmp_path: Path) -> AsyncIterator[MakeFunction]:
    made: list[FunctionEnvironments] = []

    async def make(files: dict[str, str], *, runtime: str = "nodejs20.x", handler: str = "app.handler",
                   name: str = "fn", **settings: Any) -> FunctionEnvironments:
        if runtime.startswith("nodejs"):
            require_node()
        code = write_code(tmp_path / f"{name}-{len(made)}", files)
        spec = FunctionSpec(name=name, runtime=runtime, handler=handler, code_dir=code, **settings)
        fn = FunctionEnvironments(spec, runtime_api)
        made.append(fn)
        return fn

    yield make
    for fn in made:
        await fn.close()
