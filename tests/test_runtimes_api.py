"""The Runtime API server on its own, driven by a plain HTTP client: the contract and its answers to bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from wsgw.runtimes.invocation import MAX_PAYLOAD_BYTES, FunctionError, Invocation
from wsgw.runtimes.runtime_api import Endpoint, RuntimeApi

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


@pytest.fixture
async def api() -> AsyncIterator[RuntimeApi]:
    server = RuntimeApi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(endpoint: Endpoint, path: str) -> str:
    return f"http://{endpoint.address}/2018-06-01/runtime{path}"


def invocation(payload: bytes = b'{"k": 1}', **kw: str) -> Invocation:
    return Invocation(payload, int(time.time() * 1000) + 3000, ARN, **kw)  # type: ignore[arg-type]


async def take(http: aiohttp.ClientSession, endpoint: Endpoint) -> tuple[str, dict[str, str], bytes]:
    async with http.get(url(endpoint, "/invocation/next")) as response:
        assert response.status == 200
        return response.headers["Lambda-Runtime-Aws-Request-Id"], dict(response.headers), await response.read()


async def test_next_hands_out_the_event_with_lambdas_headers(api: RuntimeApi, http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    inv = invocation(request_id="r-1", client_context='{"c": 1}', cognito_identity='{"id": "x"}')
    endpoint.submit(inv)
    request_id, headers, body = await take(http, endpoint)
    assert (request_id, body) == ("r-1", b'{"k": 1}')
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == ARN
    assert headers["Lambda-Runtime-Deadline-Ms"] == str(inv.deadline_ms)
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert headers["Lambda-Runtime-Client-Context"] == '{"c": 1}'
    assert headers["Lambda-Runtime-Cognito-Identity"] == '{"id": "x"}'
    async with http.post(url(endpoint, "/invocation/r-1/response"), data=b'"done"') as response:
        assert response.status == 202
        assert await response.json() == {"status": "OK"}
    assert await inv.result == b'"done"'


async def test_next_long_polls_until_an_invocation_arrives(api: RuntimeApi, http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    waiting = asyncio.create_task(take(http, endpoint))
    await asyncio.wait_for(endpoint.ready.wait(), 5)
    assert not waiting.done()
    endpoint.submit(invocation(request_id="late"))
    assert (await asyncio.wait_for(waiting, 5))[0] == "late"


async def test_unknown_or_answered_request_ids_get_400(api: RuntimeApi, http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    for path in ("/invocation/nobody/response", "/invocation/nobody/error"):
        async with http.post(url(endpoint, path), data=b"{}") as response:
            assert response.status == 400
            assert await response.json() == {"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}
    inv = invocation(request_id="once")
    endpoint.submit(inv)
    await take(http, endpoint)
    async with http.post(url(endpoint, "/invocation/once/response"), data=b"1") as response:
        assert response.status == 202
    async with http.post(url(endpoint, "/invocation/once/response"), data=b"2") as response:
        assert response.status == 400
    assert await inv.result == b"1"


async def test_another_environments_request_id_is_refused(api: RuntimeApi, http: aiohttp.ClientSession) -> None:
    mine, other = await api.open_endpoint(), await api.open_endpoint()
    mine.submit(invocation(request_id="mine"))
    await take(http, mine)
    async with http.post(url(other, "/invocation/mine/response"), data=b"1") as response:
        assert response.status == 400


async def test_oversized_response_gets_413_and_the_invocation_an_aws_error(api: RuntimeApi,
                                                                           http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    inv = invocation(request_id="big")
    endpoint.submit(inv)
    await take(http, endpoint)
    async with http.post(url(endpoint, "/invocation/big/response"), data=b"x" * (MAX_PAYLOAD_BYTES + 1)) as response:
        assert response.status == 413
        assert await response.json() == {
            "errorType": "RequestEntityTooLarge",
            "errorMessage": f"Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."}
    with pytest.raises(FunctionError) as caught:
        await inv.result
    assert caught.value.error_type == "Function.ResponseSizeTooLarge"


async def test_oversized_chunked_response_is_cut_off_too(http: aiohttp.ClientSession) -> None:
    api = RuntimeApi(max_payload=1024)
    try:
        endpoint = await api.open_endpoint()
        inv = invocation(request_id="chunked")
        endpoint.submit(inv)
        await take(http, endpoint)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"y" * 512

        async with http.post(url(endpoint, "/invocation/chunked/response"), data=chunks()) as response:
            assert response.status == 413
        with pytest.raises(FunctionError):
            await inv.result
    finally:
        await api.close()


async def test_error_body_that_is_not_json_falls_back_to_the_header(api: RuntimeApi,
                                                                    http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    inv = invocation(request_id="e")
    endpoint.submit(inv)
    await take(http, endpoint)
    async with http.post(url(endpoint, "/invocation/e/error"), data=b"not json{",
                         headers={"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"}) as response:
        assert response.status == 202
    with pytest.raises(FunctionError) as caught:
        await inv.result
    assert (caught.value.error_type, caught.value.error_message) == ("Runtime.Custom", "not json{")


async def test_init_error_is_recorded_once_and_refused_after_init(api: RuntimeApi,
                                                                  http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    body = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "no module"}'
    async with http.post(url(endpoint, "/init/error"), data=body) as response:
        assert response.status == 202
    assert endpoint.init_error is not None
    assert endpoint.init_error.payload() == {"errorType": "Runtime.ImportModuleError", "errorMessage": "no module"}
    async with http.post(url(endpoint, "/init/error"), data=body) as response:
        assert response.status == 403
        assert (await response.json())["errorType"] == "InvalidStateTransition"


async def test_unknown_paths_and_methods_are_refused(api: RuntimeApi, http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    async with http.get(url(endpoint, "/nothing")) as response:
        assert response.status == 404
    async with http.post(url(endpoint, "/invocation/next")) as response:
        assert response.status == 405
    async with http.get(f"http://{endpoint.address}/2019-01-01/runtime/invocation/next") as response:
        assert response.status == 404


async def test_malformed_http_gets_400_and_the_server_keeps_serving(api: RuntimeApi,
                                                                    http: aiohttp.ClientSession) -> None:
    endpoint = await api.open_endpoint()
    reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
    writer.write(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    endpoint.submit(invocation(request_id="after"))
    assert (await take(http, endpoint))[0] == "after"


async def test_closed_endpoint_stops_listening(api: RuntimeApi) -> None:
    endpoint = await api.open_endpoint()
    await endpoint.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", endpoint.port)
