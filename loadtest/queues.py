"""Messages into each queue system and pushes back through each, against POST @connections and RedisPusher.

Starts its own redis-server and nats-server (JetStream) on free ports, uses the RabbitMQ at AMQP_URL (unique queue
names, deleted at the end) and one `wsgw run` node (Redis registry) as a separate process. Then:

- **in**: CONNECTIONS WebSocket clients do send -> route response round trips for SECONDS per route: `redis_stream`
  (XADD), `nats` (publish + flush), `nats` with `jetstream: true` (PubAck), `amqp` (publisher confirm), AWS SQS
  through `AWS_PROXY` `SQS-SendMessage` on a moto server of its own (signed, the service's answer);
- **out**: PUSHES frames spread over the CONNECTIONS sockets, sent by one worker through each way: POST
  @connections (aiohttp, 32 in flight), `AsyncRedisPusher` (32 in flight), and the node's consumers of a Redis
  stream (XADD pipelined), a NATS subject (publish), a JetStream stream read by the durable consumer (publish)
  and a RabbitMQ queue (publish); the clock stops when the
  sockets have received every frame.

Usage: PYTHONPATH=. python loadtest/queues.py [--seconds 5] [--connections 50] [--pushes 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from loadtest.integration_rate import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
HANDLER = """
def whoami(event, context):
    return {"statusCode": 200, "body": event["requestContext"]["connectionId"]}
"""


async def round_trips(url: str, action: str, connections: int, seconds: float, expect: str = '"queued"') -> float:
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None) for _ in range(connections)]
    count = 0
    stop = 0.0

    async def client(ws: Any) -> None:
        nonlocal count
        message = json.dumps({"action": action, "payload": "x" * 64})
        while time.perf_counter() < stop:
            await ws.send(message)
            answer = await ws.recv()
            if expect not in answer:
                raise SystemExit(f"{action}: {answer}")
            count += 1

    stop = time.perf_counter() + 0.5           # warm-up
    await asyncio.gather(*(client(ws) for ws in sockets))
    count = 0
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(client(ws) for ws in sockets))
    elapsed = time.perf_counter() - started
    for ws in sockets:
        await ws.close()
    return count / elapsed


async def pushes_per_second(url: str, connections: int, pushes: int,
                            send: Callable[[list[str], int], Awaitable[None]]) -> float:
    """Open sockets, learn their ids, let `send(ids, pushes)` push; time until every frame arrived."""
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None, max_queue=None) for _ in range(connections)]
    ids = []
    for ws in sockets:
        await ws.send(json.dumps({"action": "whoami"}))
        ids.append(str(await ws.recv()))
    per = pushes // connections
    done = asyncio.Event()
    received = 0

    async def reader(ws: Any) -> None:
        nonlocal received
        for _ in range(per):
            await ws.recv()
            received += 1
        if received >= per * connections:
            done.set()

    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    started = time.perf_counter()
    await send(ids, per)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return per * connections / elapsed


async def bounded(jobs: list[Callable[[], Awaitable[object]]], in_flight: int) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def measure(url: str, http_base: str, redis_url: str, nats_url: str, names: dict[str, str],
                  seconds: float, connections: int, pushes: int) -> dict[str, float]:
    import aio_pika
    import aiohttp
    import nats
    import orjson
    import redis.asyncio as aioredis

    from wsgw.client import AsyncRedisPusher

    results: dict[str, float] = {}
    for action in ("redis_stream", "nats", "nats_jetstream", "amqp", "sqs"):
        rate = await round_trips(url, action, connections, seconds, "MessageId" if action == "sqs" else '"queued"')
        results[f"in {action}"] = rate
        print(f"in  {action:>15}: {rate:8.0f} messages/s confirmed ({connections} connections)", flush=True)

    async with aiohttp.ClientSession() as http:
        async def post_one(connection_id: str, i: int) -> None:
            async with http.post(f"{http_base}/@connections/{connection_id}", data=f"p{i}") as response:
                assert response.status == 200, response.status

        async def via_post(ids: list[str], per: int) -> None:
            await bounded([partial(post_one, c, i) for i in range(per) for c in ids], 32)

        results["out POST @connections"] = await pushes_per_second(url, connections, pushes, via_post)

    pusher = AsyncRedisPusher(redis_url)

    async def via_pusher(ids: list[str], per: int) -> None:
        await bounded([partial(pusher.post, c, f"p{i}") for i in range(per) for c in ids], 32)

    results["out RedisPusher"] = await pushes_per_second(url, connections, pushes, via_pusher)
    await pusher.close()

    client = aioredis.Redis.from_url(redis_url)

    async def via_stream(ids: list[str], per: int) -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(per):
            for c in ids:
                pipe.xadd(names["stream"], {"connectionId": c, "data": f"p{i}"})
            if len(pipe) >= 500:
                await pipe.execute()
        await pipe.execute()

    results["out redis_stream consumer"] = await pushes_per_second(url, connections, pushes, via_stream)
    await client.aclose()

    nc = await nats.connect(nats_url)

    async def via_nats(ids: list[str], per: int) -> None:
        for i in range(per):
            for c in ids:
                await nc.publish(names["subject"], orjson.dumps({"connectionId": c, "data": f"p{i}"}))
        await nc.flush()

    results["out nats consumer"] = await pushes_per_second(url, connections, pushes, via_nats)

    async def via_jetstream(ids: list[str], per: int) -> None:      # the stream stores plain publishes too
        for i in range(per):
            for c in ids:
                await nc.publish(names["js_subject"], orjson.dumps({"connectionId": c, "data": f"p{i}"}))
        await nc.flush()

    results["out nats jetstream consumer"] = await pushes_per_second(url, connections, pushes, via_jetstream)
    await nc.close()

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=False)

    async def via_amqp(ids: list[str], per: int) -> None:
        for i in range(per):
            for c in ids:
                await channel.default_exchange.publish(
                    aio_pika.Message(orjson.dumps({"connectionId": c, "data": f"p{i}"})), names["queue"])

    results["out amqp consumer"] = await pushes_per_second(url, connections, pushes, via_amqp)
    for key in ("queue", "in_queue"):
        await channel.queue_delete(names[key])
    await connection.close()
    for name, rate in results.items():
        if name.startswith("out"):
            print(f"out {name[4:]:>24}: {rate:8.0f} pushes/s delivered ({connections} sockets)", flush=True)
    return results


def main(seconds: float, connections: int, pushes: int) -> dict[str, float]:
    redis_port, nats_port = free_port(), free_port()
    tag = uuid.uuid4().hex[:8]
    names = {"stream": f"push-{tag}", "subject": f"push.{tag}", "queue": f"wsgw-push-{tag}",
             "in_queue": f"wsgw-in-{tag}", "in_subject": f"in.{tag}", "js_subject": f"jspush.{tag}",
             "sqs_queue": f"wsgw-in-{tag}"}
    moto_port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        nats_proc = subprocess.Popen([shutil.which("nats-server") or "/usr/sbin/nats-server", "-a", "127.0.0.1",
                                      "-p", str(nats_port), "-js", "-sd", folder], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        moto_proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis_url, nats_url = f"redis://127.0.0.1:{redis_port}/0", f"nats://127.0.0.1:{nats_port}"
        moto_url = f"http://127.0.0.1:{moto_port}"
        node = None
        try:
            asyncio.run(_prepare(redis_port, nats_port, nats_url, names))
            asyncio.run(wait_port(moto_port))
            queue_url = _sqs_queue(moto_url, names["sqs_queue"])
            Path(folder, "queue_handlers.py").write_text(HANDLER)

            def route(integration: dict[str, Any]) -> dict[str, Any]:
                return {"integration": integration, "routeResponse": True}

            config = Path(folder, "wsgw.yaml")
            config.write_text(json.dumps({
                "routes": {
                    "whoami": {"handler": "queue_handlers:whoami", "routeResponse": True},
                    "redis_stream": route({"type": "redis_stream", "stream": f"in-{tag}", "maxLen": 10000}),
                    "nats": route({"type": "nats", "subject": names["in_subject"], "url": nats_url}),
                    "nats_jetstream": route({"type": "nats", "subject": names["in_subject"], "url": nats_url,
                                             "jetstream": True}),
                    "amqp": route({"type": "amqp", "routingKey": names["in_queue"], "url": AMQP_URL}),
                    "sqs": route({"type": "AWS_PROXY", "integrationSubtype": "SQS-SendMessage",
                                  "endpointUrl": moto_url, "region": "us-east-1",
                                  "credentials": {"accessKeyId": "test", "secretAccessKey": "test"},
                                  "requestParameters": {"QueueUrl": queue_url, "MessageBody": "$request.body"}}),
                },
                "consumers": [
                    {"type": "redis_stream", "stream": names["stream"]},
                    {"type": "nats", "subject": names["subject"], "url": nats_url},
                    {"type": "amqp", "queue": names["queue"], "url": AMQP_URL, "prefetch": 256},
                    {"type": "nats", "subject": names["js_subject"], "url": nats_url, "jetstream": True,
                     "durable": f"push{tag}", "prefetch": 256},
                ],
            }))
            node = subprocess.Popen([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0",
                                     "--redis", redis_url, "--log-level", "WARNING"], stdout=subprocess.PIPE,
                                    text=True, cwd=str(ROOT))
            assert node.stdout is not None
            url = ""
            for line in node.stdout:
                match = re.search(r"WebSocket:\s+(ws://\S+)", line)
                if match:
                    url = match.group(1)
                    break
            if not url:
                raise SystemExit("the node did not start")
            http_base = url.replace("ws://", "http://")
            return asyncio.run(measure(url, http_base, redis_url, nats_url, names, seconds, connections, pushes))
        finally:
            for proc in (node, nats_proc, redis_proc, moto_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)


async def _prepare(redis_port: int, nats_port: int, nats_url: str, names: dict[str, str]) -> None:
    import aio_pika
    import nats

    await wait_port(redis_port)
    await wait_port(nats_port)
    nc = await nats.connect(nats_url)
    await nc.jetstream().add_stream(name="IN", subjects=[names["in_subject"]], max_msgs=100_000)
    await nc.jetstream().add_stream(name="PUSH", subjects=[names["js_subject"]])
    await nc.close()
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.declare_queue(names["in_queue"], arguments={"x-max-length": 100_000})
    await connection.close()


def _sqs_queue(moto_url: str, name: str) -> str:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test")
    return str(sqs.create_queue(QueueName=name)["QueueUrl"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pushes", type=int, default=20_000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    figures = main(args.seconds, args.connections, args.pushes)
    print(json.dumps({"load average (1, 5, 15 min) at the end": [round(x, 2) for x in os.getloadavg()],
                      **{k: round(v) for k, v in figures.items()}}))
