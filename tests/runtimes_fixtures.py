"""Shared pieces for the runtime tests: a Runtime API per test, functions built from code written to tmp_path."""

from __future__ import annotations

import shutil
import ssl
import stat
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import live_processes
from wsgw.runtimes.endpoint_alias import EndpointAlias, execute_api_host
from wsgw.runtimes.environments import RUNTIME_DIR, FunctionEnvironments, FunctionSpec
from wsgw.runtimes.runtime_api import RuntimeApi
from wsgw.tls.devca import DevCertificates, ensure_api_certificates

NODE_RUNTIME_DIR = RUNTIME_DIR / "node"

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
    return [child for child, fields in live_processes() if int(fields[1]) == pid]


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


# -- AWS's own endpoint for the API, served by a stand-in for the gateway's @connections ------------------------

API_HOST = execute_api_host("r4nd0m1d0", "us-east-1")
SDK_MISSING = ("Node handlers here import the AWS SDK for JavaScript v3 from wsgw/runtimes/node/node_modules: "
               "run `make node-runtime` (npm ci; needs the Debian package `npm`)")


def require_node_sdk() -> None:
    """Fail (never skip) when `make node-runtime` has not run, naming the command."""
    require_node()
    if not (NODE_RUNTIME_DIR / "node_modules" / "@aws-sdk" / "client-apigatewaymanagementapi").is_dir():
        pytest.fail(SDK_MISSING)


@dataclass
class Posted:
    method: str
    connection_id: str
    stage: str
    host: str
    authorization: str
    body: bytes
    server_name: str | None


@dataclass
class ConnectionsStandIn:
    """A TLS server answering `POST /{stage}/@connections/{id}` as the gateway does: 200, or 410 for `gone` ids."""

    certs: DevCertificates
    port: int = 0
    posted: list[Posted] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)

    @property
    def alias(self) -> EndpointAlias:
        return EndpointAlias(API_HOST, "127.0.0.1", self.port)

    @property
    def reach(self) -> dict[str, Any]:
        """FunctionSpec settings that make API_HOST reach this server: the alias and the CA to trust."""
        return {"endpoint_aliases": (self.alias,), "local_ca": self.certs.ca_cert}


@pytest.fixture(scope="session")
def api_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    """A local CA whose server certificate names localhost and API_HOST (made once per session)."""
    return ensure_api_certificates(tmp_path_factory.mktemp("wsgw-api-ca"), [API_HOST])


@pytest.fixture
async def connections_stand_in(api_certs: DevCertificates) -> AsyncIterator[ConnectionsStandIn]:
    stand_in = ConnectionsStandIn(api_certs)
    names: dict[int, str | None] = {}

    def remember_sni(ssl_object: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names[id(ssl_object)] = name

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(api_certs.cert, api_certs.key)
    context.sni_callback = remember_sni

    async def post(request: web.Request) -> web.Response:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        connection_id = request.match_info["connection_id"]
        stand_in.posted.append(Posted(request.method, connection_id, request.match_info["stage"],
                                      request.headers.get("Host", ""), request.headers.get("Authorization", ""),
                                      await request.read(), names.get(id(ssl_object))))
        if connection_id in stand_in.gone:
            return web.Response(status=410, headers={"x-amzn-ErrorType": "GoneException"})   # as the gateway
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{stage}/@connections/{connection_id}", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    stand_in.port = runner.addresses[0][1]
    yield stand_in
    await runner.cleanup()
