"""Connects per second through a real `wsgw run` node: no authorizer, a cached REQUEST authorizer, a cached
TOKEN authorizer, a JWT one, and SigV4 on $connect (authorizationType: AWS_IAM, a presigned URL).

    PYTHONPATH=. python -m loadtest.connect_auth --connects 2000 --concurrency 50

Each connect is a raw WebSocket upgrade (the client side is kept as cheap as possible so that the node is
what is measured): send the handshake, read the 101, then drop the socket (the node runs $disconnect). The
REQUEST authorizer is called once (its decision is cached by the token, every connect uses the same token);
the JWT authorizer verifies an ES256 signature on every connect, with keys from a local JWKS file; the TOKEN
authorizer is cached by the token; the AWS_IAM setup verifies the presigned URL's SigV4 signature on every
connect (one URL, valid for 5 minutes, replayed, as a client reconnecting with its URL would).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

AUTH_MODULE = '''
CALLS = 0

async def allow(event, context):
    global CALLS
    CALLS += 1
    return {"principalId": "bench", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]},
        "context": {"user": "bench"}}
'''

ROUTES: dict[str, Any] = {
    "$connect": {"integration": {"type": "mock", "response": ""}},
    "$default": {"integration": {"type": "mock", "response": "ok"}},
}


AKID, SECRET = "AKIDBENCH", "bench-secret-access-key"


def presigned_query(port_placeholder: str) -> str:
    """The query of a presigned `$connect` URL for host 127.0.0.1:<port> (signed per node once it listens)."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"http://127.0.0.1:{port_placeholder}/dev")
    SigV4QueryAuth(Credentials(AKID, SECRET), "execute-api", "us-east-1", expires=300).add_auth(request)
    return str(request.url).split("?", 1)[1]


def configs(folder: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """name → (API definition, the Authorization header to send; `presign` for a presigned URL)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    (folder / "bench_auth.py").write_text(AUTH_MODULE)
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    (folder / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256"}]}))
    token = jwt.encode({"iss": "https://bench/", "aud": "bench", "sub": "bench", "exp": int(time.time()) + 3600},
                       key, algorithm="ES256", headers={"kid": "k1"})
    return {
        "none": ({"routes": ROUTES}, "none"),
        "request (cached)": ({
            "authorizers": {"users": {"type": "request", "handler": "bench_auth:allow", "resultTtlInSeconds": 300,
                                      "identitySource": ["route.request.header.Authorization"]}},
            "routes": {**ROUTES, "$connect": {**ROUTES["$connect"], "authorizer": "users"}},
        }, "bench-token"),
        "token (cached)": ({
            "authorizers": {"bearer": {"type": "token", "handler": "bench_auth:allow", "resultTtlInSeconds": 300,
                                       "identitySource": "$request.header.Authorization",
                                       "identityValidationExpression": "^Bearer [-0-9a-zA-Z._~+/]+=*$"}},
            "routes": {**ROUTES, "$connect": {**ROUTES["$connect"], "authorizer": "bearer"}},
        }, "Bearer bench-token"),
        "sigv4 (AWS_IAM)": ({
            "management": {"auth": "iam", "credentials": [{"accessKeyId": AKID, "secretAccessKey": SECRET}]},
            "routes": {**ROUTES, "$connect": {**ROUTES["$connect"], "authorizationType": "AWS_IAM"}},
        }, "presign"),
        "jwt (ES256)": ({
            "authorizers": {"tokens": {"type": "jwt", "issuer": "https://bench/", "audience": ["bench"],
                                       "jwksUri": str(folder / "jwks.json")}},
            "routes": {**ROUTES, "$connect": {**ROUTES["$connect"], "authorizer": "tokens"}},
        }, f"Bearer {token}"),
    }


class Node:
    """`wsgw run` in its own process on a free port."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "wsgw", "run", "-c", str(config), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"WebSocket:\s+ws://[^:]+:(\d+)/(\S+)", line)
            if found:
                self.port, self.stage = int(found.group(1)), found.group(2)
                return
        raise RuntimeError("the node did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def one_connect(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])
    finally:
        writer.transport.abort()


async def run(port: int, stage: str, authorization: str, total: int, concurrency: int) -> tuple[float, dict[int, int]]:
    key = base64.b64encode(os.urandom(16)).decode()
    target = f"/{stage}"
    if authorization == "presign":
        target, authorization = f"/{stage}?{presigned_query(str(port))}", "none"
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: {authorization}\r\n"
               "\r\n").encode()
    statuses: dict[int, int] = {}
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status = await one_connect(port, request)
            statuses[status] = statuses.get(status, 0) + 1

    for _ in range(min(200, total)):                  # warm up (imports, first authorizer call, JWKS load)
        await one_connect(port, request)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--connects", type=int, default=2000, help="connects per run")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="runs per setup, interleaved (shared machines are noisy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{args.connects} connects per run, {args.concurrency} at a time, {args.rounds} interleaved rounds; "
              "one `wsgw run` node per setup, raw upgrade clients")
        nodes: dict[str, tuple[Node, str]] = {}
        try:
            for name, (raw, authorization) in configs(folder).items():
                config = folder / f"{name.split()[0]}.yaml"
                raw = {"stage": "dev", **raw}
                config.write_text(yaml.safe_dump(raw))
                nodes[name] = (Node(config), authorization)
            rates: dict[str, list[float]] = {name: [] for name in nodes}
            for _ in range(args.rounds):
                for name, (node, authorization) in nodes.items():
                    seconds, statuses = asyncio.run(run(node.port, node.stage, authorization, args.connects,
                                                        args.concurrency))
                    if set(statuses) != {101}:
                        raise SystemExit(f"{name}: unexpected statuses {statuses}")
                    rates[name].append(args.connects / seconds)
        finally:
            for node, _ in nodes.values():
                node.stop()
        for name, values in rates.items():
            runs = ", ".join(f"{v:.0f}" for v in values)
            print(f"  {name:<18} median {statistics.median(values):6.0f} connects/s   (runs: {runs})")


if __name__ == "__main__":
    main()
