"""/metrics over real HTTP after real traffic, parsed with prometheus_client's own parser: AWS's CloudWatch
names, counts and histogram buckets match what was sent, cardinality stays bounded."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.helpers import open_client, serve
from wsgw.metrics import LATENCY_BUCKETS, Metrics

API: dict[str, Any] = {
    "stage": "dev",
    "apiId": "metricsapi",
    "routes": {
        "$connect": {"handler": "testapp:connect_by_query"},
        "echo": {"handler": "testapp:echo", "routeResponse": True},
        "boom": {"handler": "testapp:fail"},
        "junk": {"handler": "testapp:garbage", "routeResponse": True},
    },
    "http": {"routes": {"GET /items/{id}": {"handler": "restapp:show"},
                        "GET /explode": {"handler": "restapp:explode"}}},
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> tuple[Samples, dict[str, str], str]:
    """Every sample by (name, labels), every family's type, and the raw text."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types, text


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample whose labels include `labels` (the node's api/stage/version are added by the gateway)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else 0.0


async def test_websocket_traffic_is_counted_under_aws_names_with_latency_histograms() -> None:
    async with serve(API) as server:
        base = f"ws://127.0.0.1:{server.port}/dev"
        async with connect(f"{base}?status=200") as ws:
            for i in range(5):
                await ws.send(json.dumps({"action": "echo", "n": i}))
                assert json.loads(await ws.recv())["n"] == i
            await ws.send('{"action": "boom"}')
            assert json.loads(await ws.recv())["message"] == "Internal server error"
            await ws.send('{"action": "junk"}')
            assert json.loads(await ws.recv())["message"] == "Internal server error"
            for i in range(3):                       # no route, no $default: Forbidden, folded into one label
                await ws.send(json.dumps({"action": f"nope-{i}"}))
                assert json.loads(await ws.recv())["message"] == "Forbidden"
        refused = 0
        try:
            async with connect(f"{base}?status=403"):
                pass
        except Exception:
            refused += 1
        assert refused == 1
        samples, types, text = await scrape(server.port)

    dims = {"api": "metricsapi", "stage": "dev"}
    assert types["wsgw_websocket_ConnectCount"] == "counter"
    assert types["wsgw_websocket_IntegrationLatency_seconds"] == "histogram"
    assert value(samples, "wsgw_websocket_ConnectCount_total", route="$connect", **dims) == 2
    # MessageCount counts both directions: 5 echoes in and 5 route responses out
    assert value(samples, "wsgw_websocket_MessageCount_total", route="echo", **dims) == 10
    assert value(samples, "wsgw_websocket_MessageCount_total", route="$unmatched", **dims) == 3
    assert value(samples, "wsgw_websocket_ClientError_total", route="$unmatched", **dims) == 3
    assert value(samples, "wsgw_websocket_ExecutionError_total", route="boom", **dims) == 1
    assert value(samples, "wsgw_websocket_IntegrationError_total", route="junk", **dims) == 1
    assert value(samples, "wsgw_websocket_IntegrationError_total", route="$connect", **dims) == 1   # 403 result
    assert value(samples, "wsgw_connections_refused_total", status="403") == 1
    # one histogram observation per integration call, whatever its outcome
    assert value(samples, "wsgw_websocket_IntegrationLatency_seconds_count", route="echo") == 5
    assert value(samples, "wsgw_websocket_IntegrationLatency_seconds_count", route="$connect") == 2
    buckets = {dict(ls)["le"]: v for (n, ls), v in samples.items()
               if n == "wsgw_websocket_IntegrationLatency_seconds_bucket" and ("route", "echo") in ls}
    assert len(buckets) == len(LATENCY_BUCKETS) + 1 and buckets["+Inf"] == 5
    assert list(buckets.values()) == sorted(buckets.values())          # cumulative
    assert value(samples, "wsgw_websocket_IntegrationLatency_seconds_sum", route="echo") > 0
    assert value(samples, "wsgw_messages_received_total") == 10
    assert value(samples, "wsgw_connections_open") == 0
    # bounded: no connection ids, and the unknown actions were never label values
    assert "nope-" not in text
    assert all(dict(ls).get("version") for (_, ls) in samples if ("api", "metricsapi") in ls)


async def test_rest_requests_are_counted_as_an_http_api_with_unknown_paths_folded() -> None:
    async with serve(API) as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/dev"
        for i in range(4):
            async with session.get(f"{url}/items/{i}") as response:
                assert response.status == 200
        async with session.get(f"{url}/explode") as response:
            assert response.status == 500
        for path in ("/secret-path-1", "/secret-path-2"):
            async with session.get(url + path) as response:
                assert response.status == 404
        samples, types, text = await scrape(server.port)
    assert value(samples, "wsgw_http_Count_total", route="GET /items/{id}") == 4
    assert value(samples, "wsgw_http_Count_total", route="GET /explode") == 1
    assert value(samples, "wsgw_http_5xx_total", route="GET /explode") == 1
    assert value(samples, "wsgw_http_Count_total", route="$unmatched") == 2
    assert value(samples, "wsgw_http_4xx_total", route="$unmatched") == 2
    assert value(samples, "wsgw_http_Latency_seconds_count", route="GET /items/{id}") == 4
    assert value(samples, "wsgw_http_IntegrationLatency_seconds_count", route="GET /items/{id}") == 4
    assert types["wsgw_http_CacheHitCount"] == "counter" and types["wsgw_http_CacheMissCount"] == "counter"
    assert "secret-path" not in text


async def test_pushes_open_connections_and_queue_depth_are_wsgw_own_metrics() -> None:
    async with serve({"routes": {"$default": {"handler": "testapp:ok"}}}) as server, aiohttp.ClientSession() as s:
        ws, cid = await open_client(server)
        url = f"http://127.0.0.1:{server.port}/dev/@connections"
        for _ in range(3):
            async with s.post(f"{url}/{cid}", data=b"hi") as response:
                assert response.status == 200
            assert await ws.recv() == "hi"
        async with s.post(f"{url}/nobody", data=b"hi") as response:
            assert response.status == 410
        samples, _, _ = await scrape(server.port)
        await ws.close()
    assert value(samples, "wsgw_pushes_total", result="delivered") == 3
    assert value(samples, "wsgw_pushes_total", result="gone") == 1
    assert value(samples, "wsgw_websocket_MessageCount_total", route="@connections") == 3
    assert value(samples, "wsgw_connections_open") == 1
    assert value(samples, "wsgw_queue_depth") == 0
    assert ("wsgw_redis_roundtrip_seconds_count", frozenset()) not in samples


def test_two_nodes_in_one_process_keep_separate_registries() -> None:
    a, b = Metrics("one", "dev"), Metrics("two", "dev")
    a.ws_route("echo").messages.inc()
    assert a.value("wsgw_websocket_MessageCount_total", route="echo") == 1
    assert b.value("wsgw_websocket_MessageCount_total", route="echo") == 0


def test_histograms_can_be_switched_off_without_losing_counts() -> None:
    quiet = Metrics("one", "dev", histograms=False)
    route = quiet.ws_route("echo")
    route.integration_latency.observe(0.01)
    route.messages.inc()
    assert quiet.value("wsgw_websocket_IntegrationLatency_seconds_count", route="echo") == 0
    assert quiet.value("wsgw_websocket_MessageCount_total", route="echo") == 1


async def test_counts_read_exactly_n_after_n_messages_across_scrapes() -> None:
    """Counts are tallies folded into prometheus when scraped: each scrape adds exactly what came since."""
    async with serve(API) as server, connect(f"ws://127.0.0.1:{server.port}/dev?status=200") as ws:
        total = 0
        for batch in (120, 80):
            for i in range(batch):
                await ws.send(json.dumps({"action": "echo", "n": i}))
                assert json.loads(await ws.recv())["n"] == i
            total += batch
            samples, _, _ = await scrape(server.port)
            assert value(samples, "wsgw_websocket_MessageCount_total", route="echo") == 2 * total
            assert value(samples, "wsgw_messages_received_total") == total
            assert value(samples, "wsgw_messages_sent_total") == total
            assert value(samples, "wsgw_websocket_IntegrationLatency_seconds_count", route="echo") == total
            buckets = {dict(ls)["le"]: v for (n, ls), v in samples.items()
                       if n == "wsgw_websocket_IntegrationLatency_seconds_bucket" and ("route", "echo") in ls}
            assert buckets["+Inf"] == total and list(buckets.values()) == sorted(buckets.values())


def test_tallied_histograms_and_counters_render_what_prometheus_client_would() -> None:
    """The same observations through a route's tallies and through plain prometheus_client children give
    the same exposition, bucket for bucket and the sum to the last bit (bounds themselves included)."""
    tallied = Metrics("one", "dev")
    plain = CollectorRegistry(auto_describe=False)
    reference = Histogram("wsgw_websocket_IntegrationLatency_seconds", "x", ["route"], buckets=LATENCY_BUCKETS,
                          registry=plain).labels(route="echo")
    counted = Counter("wsgw_websocket_MessageCount", "x", ["route"], registry=plain).labels(route="echo")
    route = tallied.ws_route("echo")
    rng = random.Random(19)
    amounts = [*LATENCY_BUCKETS, 0.0, 1e-9, 31.0, 1e6, *(rng.expovariate(200) for _ in range(5000))]
    for n, amount in enumerate(amounts):
        route.integration_latency.observe(amount)
        reference.observe(amount)
        route.messages.inc()
        counted.inc()
        if n % 1000 == 0:
            tallied.render()                      # folds part way: later folds must add, not repeat
    mine = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(tallied.render().decode())
            if f.name in ("wsgw_websocket_IntegrationLatency_seconds", "wsgw_websocket_MessageCount")
            for s in f.samples if s.labels.get("route") == "echo" and not s.name.endswith("_created")}
    theirs = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(generate_latest(plain)
              .decode()) for s in f.samples if not s.name.endswith("_created")}
    assert mine == theirs
    assert mine[("wsgw_websocket_MessageCount_total", None)] == len(amounts)
    assert mine[("wsgw_websocket_IntegrationLatency_seconds_bucket", "+Inf")] == len(amounts)
