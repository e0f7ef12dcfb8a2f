"""TLS on the gateway's port: real handshakes against the local development CA, wss, https and boto3."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import stat
from pathlib import Path
from typing import Any

import certifi
import pytest
from websockets.asyncio.client import connect

from tests.helpers import APPS, ROOT, GatewayProcess, api_from, serve, wait_for, write_config
from wsgw.errors import ConfigError
from wsgw.tls import TlsSettings
from wsgw.tls.devca import ensure_dev_certificates
from wsgw.tls.setup import build_tls
from wsgw.tls.trust import BUNDLE_NAME

API: dict[str, Any] = {
    "routes": {
        "$default": {"handler": "testapp:echo", "routeResponse": True},
        "postback": {"handler": "awsstyle:post_back", "routeResponse": True},
        "fetch": {"handler": "awsstyle:fetch", "routeResponse": True},
    },
}


def client_context(cafile: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile) if cafile else certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


def handshake(port: int, context: ssl.SSLContext, host: str = "localhost") -> tuple[str | None, str | None]:
    """Open a TLS connection; return (TLS version, ALPN protocol)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.version(), tls.selected_alpn_protocol()


def https_get(port: int, path: str, context: ssl.SSLContext, host: str = "localhost") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_dev_ca_is_made_once_with_owner_only_private_keys(tmp_path: Path) -> None:
    first = ensure_dev_certificates(tmp_path / "ca")
    second = ensure_dev_certificates(tmp_path / "ca")
    assert first.created_ca and first.issued_cert
    assert not second.created_ca and not second.issued_cert
    assert first.ca_cert.read_bytes() == second.ca_cert.read_bytes()
    for key in (first.ca_key, first.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_server_certificate_is_reissued_for_a_new_name_under_the_same_ca(tmp_path: Path) -> None:
    first = ensure_dev_certificates(tmp_path)
    ca = first.ca_cert.read_bytes()
    again = ensure_dev_certificates(tmp_path, ["gateway.test"])
    assert again.issued_cert and not again.created_ca
    assert again.ca_cert.read_bytes() == ca
    assert not ensure_dev_certificates(tmp_path, ["gateway.test"]).issued_cert


def test_ca_directory_comes_from_wsgw_ca_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgw.tls.devca import ca_directory

    monkeypatch.setenv("WSGW_CA_DIR", str(tmp_path / "x"))
    assert ca_directory() == tmp_path / "x"
    monkeypatch.delenv("WSGW_CA_DIR")
    monkeypatch.setenv("WSGW_HOME", str(tmp_path / "home"))
    assert ca_directory() == tmp_path / "home" / "ca"


async def test_client_trusting_the_dev_ca_gets_tls12_or_newer_with_http11_alpn(dev_certs: Any) -> None:
    tls = build_tls("only", ca_dir=dev_certs.directory)
    async with serve(API, tls=tls) as server:
        version, alpn = await asyncio.to_thread(handshake, server.port, client_context(dev_certs.ca_cert))
        assert version in ("TLSv1.2", "TLSv1.3")
        assert alpn == "http/1.1"
        for host in ("127.0.0.1", "::1"):
            ip_context = client_context(dev_certs.ca_cert)
            assert (await asyncio.to_thread(handshake, server.port, ip_context, host))[0] is not None
        body = await asyncio.to_thread(https_get, server.port, "/health", client_context(dev_certs.ca_cert))
        assert body.startswith(b"HTTP/1.1 200")


async def test_client_trusting_only_default_roots_refuses_the_dev_certificate(dev_certs: Any) -> None:
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(handshake, server.port, client_context(None))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_1_clients_are_refused(dev_certs: Any) -> None:
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(dev_certs.ca_cert))
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(handshake, server.port, old)


async def test_plain_http_to_a_tls_only_port_gets_no_answer(dev_certs: Any) -> None:
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
        assert not answer.startswith(b"HTTP/1.1 200")


async def test_handler_posts_back_with_boto3_over_https_to_the_domain_name(dev_certs: Any) -> None:
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        url = f"wss://localhost:{server.port}/dev"
        async with connect(url, ssl=client_context(dev_certs.ca_cert)) as ws:
            await ws.send(json.dumps({"action": "postback"}))
            first, second = await ws.recv(), await ws.recv()
            assert first == "pushed over https"
            reply = json.loads(second)
            assert reply == {"sourceIp": "127.0.0.1", "domainName": f"localhost:{server.port}"}


async def test_handler_https_calls_elsewhere_still_verify(dev_certs: Any, tmp_path: Path) -> None:
    """The in-process bundle adds one CA; a server under a different (untrusted) CA is still refused."""
    made = build_tls("only", ca_dir=tmp_path / "other-ca")
    stranger = TlsSettings(made.context, "only", made.certfile)   # served, but nobody was told to trust it
    roots = Path(os.environ.get("AWS_CA_BUNDLE") or certifi.where())   # what botocore would use anyway
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server, \
            serve({"routes": {"$default": {"handler": "testapp:echo"}}}, tls=stranger) as other:
        bundle = Path(server.gateway.resources.environment["AWS_CA_BUNDLE"])
        assert bundle.name == BUNDLE_NAME
        content = await asyncio.to_thread(bundle.read_bytes)
        assert (await asyncio.to_thread(roots.read_bytes)).strip() in content
        assert (await asyncio.to_thread(dev_certs.ca_cert.read_bytes)) in content
        async with connect(f"wss://localhost:{server.port}/dev", ssl=client_context(dev_certs.ca_cert)) as ws:
            await ws.send(json.dumps({"action": "fetch", "url": f"https://localhost:{server.port}/health"}))
            assert await ws.recv() == "verified"
            await ws.send(json.dumps({"action": "fetch", "url": f"https://localhost:{other.port}/health"}))
            assert (await ws.recv()).startswith("refused: ")


async def test_a_tls_node_gives_its_trust_variables_to_handlers_only(dev_certs: Any) -> None:
    before = dict(os.environ)
    async with serve(API, tls=build_tls("only", ca_dir=dev_certs.directory)) as server:
        seen = server.gateway.resources.environment
        assert seen["WSGW_SCHEME"] == "https"
        assert Path(seen["AWS_CA_BUNDLE"]).name == BUNDLE_NAME == Path(seen["REQUESTS_CA_BUNDLE"]).name
        assert dict(os.environ) == before
    assert dict(os.environ) == before


async def test_both_mode_serves_tls_and_plaintext_on_one_port(dev_certs: Any) -> None:
    async with serve(API, tls=build_tls("both", ca_dir=dev_certs.directory)) as server:
        assert server.urls.websocket.startswith("wss://")
        async with connect(f"ws://127.0.0.1:{server.port}/dev") as plain, \
                connect(f"wss://localhost:{server.port}/dev", ssl=client_context(dev_certs.ca_cert)) as secure:
            await plain.send("hello plain")
            await secure.send("hello tls")
            assert await plain.recv() == "hello plain"
            assert await secure.recv() == "hello tls"
            # a handler on the plaintext connection still reaches https://{domainName}/{stage}
            await plain.send(json.dumps({"action": "postback"}))
            assert await plain.recv() == "pushed over https"
            assert json.loads(await plain.recv())["sourceIp"] == "127.0.0.1"
        await wait_for(lambda: not server.gateway.connections)


async def test_both_mode_drops_a_socket_that_never_speaks(dev_certs: Any) -> None:
    api = api_from({**API, "limits": {"handshakeTimeoutSeconds": 0.2}})
    async with serve(api, tls=build_tls("both", ca_dir=dev_certs.directory)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert server.dual is not None
        await wait_for(lambda: not server.dual.waiting)


def test_unreadable_certificate_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(ConfigError) as caught:
        build_tls("only", tmp_path / "cert.pem", tmp_path / "key.pem")
    assert caught.value.problems[0].key == "tls.certfile"
    with pytest.raises(ConfigError) as caught:
        build_tls("only", tmp_path / "cert.pem", None)
    assert caught.value.problems[0].key == "tls.keyfile"


def test_real_certificate_files_are_served_as_given(dev_certs: Any) -> None:
    settings = build_tls("only", dev_certs.cert, dev_certs.key)
    assert settings.dev_ca is None and settings.certfile == dev_certs.cert


@pytest.mark.parametrize("where", ["flags", "config"])
def test_wsgw_run_serves_a_given_certificate_from_flags_or_the_config(dev_certs: Any, tmp_path: Path,
                                                                     where: str) -> None:
    import shutil

    shutil.copy(dev_certs.cert, tmp_path / "site.pem")
    shutil.copy(dev_certs.key, tmp_path / "site-key.pem")
    raw: dict[str, Any] = {"routes": {"$default": {"handler": "testapp:echo", "routeResponse": True}}}
    extra: tuple[str, ...] = ()
    if where == "config":                            # paths in the config are relative to the file
        raw["tls"] = {"certfile": "site.pem", "keyfile": "site-key.pem"}
    else:
        extra = ("--certfile", str(tmp_path / "site.pem"), "--keyfile", str(tmp_path / "site-key.pem"))
    config = write_config(tmp_path / "wsgw.yaml", raw)
    (tmp_path / "testapp.py").write_text((APPS / "testapp.py").read_text())
    with GatewayProcess(config, *extra, env={"WSGW_CA_DIR": str(tmp_path / "unused-ca")}) as node:
        assert node.ws_url.startswith("wss://")
        assert not (tmp_path / "unused-ca").exists()          # no dev CA is made for a given certificate

        async def talk() -> str:
            async with connect(node.ws_url.replace("127.0.0.1", "localhost"),
                               ssl=client_context(dev_certs.ca_cert)) as ws:
                await ws.send("given cert")
                return str(await ws.recv())

        assert asyncio.run(talk()) == "given cert"


def test_tls_off_with_a_certificate_is_a_config_error(tmp_path: Path, dev_certs: Any) -> None:
    import subprocess
    import sys

    config = write_config(tmp_path / "wsgw.yaml", {"tls": {"mode": "off"}, "routes": {}})
    result = subprocess.run([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0",
                             "--certfile", str(dev_certs.cert), "--keyfile", str(dev_certs.key)],
                            capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert result.returncode == 2
    assert "tls.mode" in result.stderr


def test_wsgw_run_tls_prints_wss_urls_and_the_ca_and_serves_wss(tmp_path: Path) -> None:
    config = write_config(tmp_path / "wsgw.yaml", {"routes": {"$default": {"handler": "testapp:echo",
                                                                           "routeResponse": True}}})
    (tmp_path / "testapp.py").write_text((APPS / "testapp.py").read_text())
    ca_dir = tmp_path / "ca"
    with GatewayProcess(config, "--tls", env={"WSGW_CA_DIR": str(ca_dir)}) as node:
        assert node.ws_url.startswith("wss://")
        output = "".join(node.output)
        assert str(ca_dir / "ca.pem") in output

        async def talk() -> str:
            async with connect(node.ws_url.replace("127.0.0.1", "localhost"),
                               ssl=client_context(ca_dir / "ca.pem")) as ws:
                await ws.send("over wss")
                return str(await ws.recv())

        assert asyncio.run(talk()) == "over wss"
