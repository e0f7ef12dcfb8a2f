"""AWS's host name for the API reaching the gateway from in-process Python (boto3, urllib3, asyncio), while
every other name and address resolves exactly as before. Only loopback is ever contacted: before anything
connects to the API's name, the test checks the alias is in place."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator

import aiohttp
import boto3
import pytest
from cryptography import x509

from tests.runtimes_fixtures import API_HOST, ConnectionsStandIn, api_certs, connections_stand_in
from wsgw.runtimes import endpoint_alias
from wsgw.runtimes.endpoint_alias import (
    EndpointAlias,
    alias_for,
    execute_api_host,
    format_aliases,
    install,
    parse_aliases,
)
from wsgw.tls.devca import ensure_api_certificates, ensure_dev_certificates

__all__ = ["api_certs", "connections_stand_in"]

NEAR_MISSES = ["amazonaws.com", "execute-api.us-east-1.amazonaws.com", "other1d0.execute-api.us-east-1.amazonaws.com",
               API_HOST.replace("us-east-1", "eu-west-1"), API_HOST + ".example.com", "x" + API_HOST,
               API_HOST.replace(".", "-"), "localhost", "127.0.0.1", ""]


@pytest.fixture
def undo_all() -> Iterator[list[object]]:
    """Undo functions registered by a test run at its end, so no test leaves the hook behind."""
    undos: list[object] = []
    yield undos
    for undo in reversed(undos):
        assert callable(undo)
        undo()
    assert socket.getaddrinfo is ORIGINAL_GETADDRINFO


ORIGINAL_GETADDRINFO = socket.getaddrinfo


def test_execute_api_host_is_awss_name_for_the_api() -> None:
    assert execute_api_host("AbC123", "eu-west-1") == "abc123.execute-api.eu-west-1.amazonaws.com"


def test_aliases_round_trip_through_the_environment_variable() -> None:
    aliases = (EndpointAlias(API_HOST, "127.0.0.1", 8443), EndpointAlias("b.execute-api.x-1.amazonaws.com", "::1", 9))
    text = format_aliases(aliases)
    assert text == f"{API_HOST}=127.0.0.1:8443,b.execute-api.x-1.amazonaws.com=[::1]:9"
    assert parse_aliases(text) == aliases
    assert parse_aliases("") == ()


@pytest.mark.parametrize("bad", ["nohost", f"{API_HOST}=127.0.0.1", f"{API_HOST}=127.0.0.1:x",
                                 f"{API_HOST}=127.0.0.1:0", f"{API_HOST}=127.0.0.1:70000", "bad name=127.0.0.1:1",
                                 "=127.0.0.1:1", f"{API_HOST}=:443", "single=127.0.0.1:1"])
def test_malformed_alias_entries_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_aliases(bad)


def test_the_api_host_resolves_to_the_gateways_address_and_port(undo_all: list[object]) -> None:
    undo_all.append(install([EndpointAlias(API_HOST, "127.0.0.1", 8443)]))
    for name in (API_HOST, API_HOST.upper(), API_HOST + ".", API_HOST.encode()):
        answers = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
        assert {answer[4] for answer in answers} == {("127.0.0.1", 8443)}, name
        assert {answer[0] for answer in answers} == {socket.AF_INET}


def test_every_other_name_and_address_resolves_as_before(undo_all: list[object]) -> None:
    before = {query: socket.getaddrinfo(*query) for query in
              [("localhost", 80), ("127.0.0.2", 443), ("::1", 443, socket.AF_INET6), (None, 8080)]}
    undo_all.append(install([EndpointAlias(API_HOST, "127.0.0.1", 8443)]))
    assert socket.getaddrinfo is not ORIGINAL_GETADDRINFO
    for query, answers in before.items():
        assert socket.getaddrinfo(*query) == answers, query
    assert [alias_for(name) for name in NEAR_MISSES] == [None] * len(NEAR_MISSES)
    assert alias_for(None) is None and alias_for(443) is None


def test_undo_puts_the_original_resolver_back_and_nested_installs_stack() -> None:
    first = install([EndpointAlias(API_HOST, "127.0.0.1", 1111)])
    other = "second.execute-api.us-east-1.amazonaws.com"
    second = install([EndpointAlias(API_HOST, "127.0.0.1", 2222), EndpointAlias(other, "127.0.0.1", 3333)])
    try:
        assert socket.getaddrinfo(API_HOST, 443)[0][4] == ("127.0.0.1", 2222)      # the later install wins
        second()
        second()                                                                    # undoing twice is harmless
        assert socket.getaddrinfo(API_HOST, 443)[0][4] == ("127.0.0.1", 1111)
        assert alias_for(other) is None
    finally:
        first()
    assert socket.getaddrinfo is ORIGINAL_GETADDRINFO
    assert alias_for(API_HOST) is None
    assert endpoint_alias._ORIGINAL is None


async def test_boto3_posts_to_connections_through_the_api_host(undo_all: list[object],
                                                              connections_stand_in: ConnectionsStandIn) -> None:
    undo_all.append(install([connections_stand_in.alias]))
    assert alias_for(API_HOST) == connections_stand_in.alias                # nothing below leaves this machine
    client = boto3.client("apigatewaymanagementapi", endpoint_url=f"https://{API_HOST}/dev", region_name="us-east-1",
                          aws_access_key_id="wsgw-local", aws_secret_access_key="wsgw-local",
                          verify=str(connections_stand_in.certs.ca_cert))
    connections_stand_in.gone.add("stale")
    await asyncio.to_thread(client.post_to_connection, ConnectionId="L0SM9cOFvHcCIhw=", Data=b"from boto3")
    with pytest.raises(client.exceptions.GoneException):
        await asyncio.to_thread(client.post_to_connection, ConnectionId="stale", Data=b"x")
    posted = connections_stand_in.posted[0]
    assert (posted.connection_id, posted.body, posted.host) == ("L0SM9cOFvHcCIhw=", b"from boto3", API_HOST)
    assert posted.server_name == API_HOST and "/us-east-1/execute-api/aws4_request" in posted.authorization


async def test_asyncio_clients_on_the_default_loop_reach_it_too(undo_all: list[object],
                                                              connections_stand_in: ConnectionsStandIn) -> None:
    undo_all.append(install([connections_stand_in.alias]))
    assert alias_for(API_HOST) == connections_stand_in.alias
    ssl_context = ssl.create_default_context(cafile=str(connections_stand_in.certs.ca_cert))
    connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())      # loop.getaddrinfo, as by default
    async with aiohttp.ClientSession(connector=connector) as session, session.post(
            f"https://{API_HOST}/dev/@connections/aio", data=b"aiohttp", ssl=ssl_context) as response:
        assert response.status == 200
    assert connections_stand_in.posted[0].connection_id == "aio"


def test_api_certificates_name_the_api_host_and_keep_the_ca(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("ca")
    plain = ensure_dev_certificates(home)
    with_api = ensure_api_certificates(home, [API_HOST], names=["gw.local"])
    assert with_api.issued_cert and not with_api.created_ca
    assert with_api.ca_cert.read_bytes() == plain.ca_cert.read_bytes()
    cert = x509.load_pem_x509_certificate(with_api.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert {"localhost", "gw.local", API_HOST} <= set(names)
    assert not ensure_api_certificates(home, [API_HOST]).issued_cert       # already covered: reused
