"""@connections POSTs per second through a real `wsgw run` node, with `management.auth: iam` (every POST's SigV4
signature verified) against without (allowFrom only).

    PYTHONPATH=. python -m loadtest.management_sigv4 --posts 5000 --concurrency 32

One WebSocket client is connected and drains its frames; the poster sends POST /dev/@connections/{id} with
keep-alive connections. The signed headers are made once (botocore) and replayed within the 5 minutes a
signature is valid, so the poster's own signing is not what is measured: the node's verification is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from websockets.asyncio.client import connect

from loadtest.connect_auth import ROOT, Node

AKID, SECRET, REGION = "AKIDBENCH", "bench-secret-access-key", "us-east-1"
WHOAMI = '''
def whoami(event, context):
    return {"statusCode": 200, "body": event["requestContext"]["connectionId"]}
'''
BODY = b'{"bench": "a push of a few dozen bytes, signed or not"}'


def config(iam: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {"stage": "dev", "routes": {
        "$default": {"handler": "bench_whoami:whoami", "routeResponse": True}}}
    if iam:
        raw["management"] = {"auth": "iam", "credentials": [{"accessKeyId": AKID, "secretAccessKey": SECRET}]}
    return raw


def signed_headers(url: str) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=BODY)
    SigV4Auth(Credentials(AKID, SECRET), "execute-api", REGION).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


async def run(node: Node, iam: bool, total: int, concurrency: int) -> float:
    async with connect(f"ws://127.0.0.1:{node.port}/dev", max_queue=None) as ws:
        await ws.send("who")
        conn_id = str(await ws.recv())
        url = f"http://127.0.0.1:{node.port}/dev/@connections/{conn_id}"
        headers = signed_headers(url) if iam else {}
        received = 0

        async def drain() -> None:
            nonlocal received
            async for _ in ws:
                received += 1

        drainer = asyncio.create_task(drain())
        remaining = total
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def poster() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with session.post(url, data=BODY, headers=headers) as response:
                        if response.status != 200:
                            raise SystemExit(f"POST answered {response.status}: {await response.text()}")
                        await response.read()

            for _ in range(200):                  # warm up
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
            remaining = total
            started = time.perf_counter()
            await asyncio.gather(*(poster() for _ in range(concurrency)))
            seconds = time.perf_counter() - started
        drainer.cancel()
        return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench_whoami.py").write_text(WHOAMI)
        nodes: dict[str, tuple[Node, bool]] = {}
        try:
            for name, iam in (("allowFrom only", False), ("SigV4 (auth: iam)", True)):
                path = folder / f"{'iam' if iam else 'none'}.yaml"
                path.write_text(yaml.safe_dump(config(iam)))
                nodes[name] = (Node(path), iam)
            rates: dict[str, list[float]] = {name: [] for name in nodes}
            for _ in range(args.rounds):
                for name, (node, iam) in nodes.items():
                    rates[name].append(asyncio.run(run(node, iam, args.posts, args.concurrency)))
        finally:
            for node, _ in nodes.values():
                node.stop()
    print(f"{args.posts} POST /@connections per run, {args.concurrency} at a time, {args.rounds} interleaved rounds")
    for name, values in rates.items():
        print(f"  {name:<20} median {statistics.median(values):6.0f} POSTs/s   (runs: "
              + ", ".join(f"{v:.0f}" for v in values) + ")")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
