"""REST requests/s for a cache hit against a cache miss, in the same run (the stage response cache).

Starts a `wsgw run` node (uvloop, memory cache store) whose three GET routes call one async handler doing a
small fixed amount of work (a sum over 3,000 squares, ~0.2 ms): `/dev/hit` (cached, always the same key: every
request after the first is a hit), `/dev/miss?n=…` (cached, a new key every request: lookup, integration call
and store each time) and `/dev/plain` (no cache: the reference). A raw keep-alive HTTP/1.1 client in its own
process drives each target for SECONDS, in turn, ROUNDS times, and checks every answer (status 200 and the
X-Wsgw-Cache header the target must show). Usage:

    PYTHONPATH=. python -m loadtest.rest_cache [--seconds 3] [--connections 32] [--rounds 3]

Prints each target's median req/s over the rounds with the spread (min..max) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtest.rest_rate import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
stage: dev
routes: {}
caching: {cacheClusterEnabled: true, cacheTtlInSeconds: 3600, store: memory, maxBytes: 268435456}
http:
  routes:
    "GET /hit":   {handler: bench_cache:work}
    "GET /miss":  {handler: bench_cache:work, caching: {cacheKeyParameters: [method.request.querystring.n]}}
    "GET /plain": {handler: bench_cache:work, caching: {cachingEnabled: false}}
"""

HANDLER = """
async def work(event, context):
    total = sum(i * i for i in range(3000))
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"total": %d}' % total}
"""

#: target name → (path, the X-Wsgw-Cache value every answer must carry, or None for none)
TARGETS = {"hit": ("/dev/hit", b"hit"), "miss": ("/dev/miss", b"miss"), "plain": ("/dev/plain", None)}


@dataclass
class Figures:
    target: str
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


async def _drive(port: int, target: str, seconds: float, connections: int) -> tuple[int, str]:
    """Requests answered in `seconds` over `connections` keep-alive sockets; ("", problem) on a bad answer."""
    path, expected = TARGETS[target]
    done = 0
    problem = ""
    stop = time.monotonic() + seconds

    async def one(conn: int) -> None:
        nonlocal done, problem
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        try:
            while time.monotonic() < stop and not problem:
                query = f"?n={os.getpid()}-{conn}-{i}" if target == "miss" else ""
                writer.write(f"GET {path}{query} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                seen = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    low = name.strip().lower()
                    if low == b"content-length":
                        length = int(value)
                    elif low == b"x-wsgw-cache":
                        seen = value.strip()
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200") or (seen != expected and not (target == "hit" and i == 0)):
                    problem = f"{target}: unexpected answer {head[:200]!r}"
                done += 1
                i += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(c) for c in range(connections)))
    return done, problem


def _client(port: int, target: str, seconds: float, connections: int,
            out: multiprocessing.Queue[tuple[float, str]]) -> None:
    try:
        import uvloop
        started = time.monotonic()
        done, problem = uvloop.run(_drive(port, target, seconds, connections))
        out.put((done / (time.monotonic() - started), problem))
    except Exception as exc:    # reported by the parent
        out.put((0.0, f"{target}: {exc!r}"))


Client = Callable[[int, str, float, int, "multiprocessing.Queue[tuple[float, str]]"], None]


def drive(port: int, target: str, seconds: float, connections: int, client: Client = _client) -> float:
    """One measurement in a client process of its own (the node keeps its own core); `client` puts (rate,
    problem) on the queue it is given."""
    out: multiprocessing.Queue[tuple[float, str]] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=client, args=(port, target, seconds, connections, out))
    proc.start()
    rate, problem = out.get(timeout=seconds + 60)
    proc.join(timeout=30)
    if problem:
        raise RuntimeError(problem)
    return float(rate)


def run(seconds: float = 3.0, connections: int = 32, rounds: int = 3) -> tuple[list[Figures], tuple[float, ...]]:
    """Every target, ROUNDS times in turn; (figures, the load average when done)."""
    return measure(CONFIG, list(TARGETS), _client, seconds, connections, rounds)


def measure(config: str, targets: list[str], client: Client, seconds: float, connections: int,
            rounds: int) -> tuple[list[Figures], tuple[float, ...]]:
    """A `wsgw run` node on `config` (the HANDLER module beside it); every target driven by `client`, ROUNDS
    times in turn; (figures, the load average when done)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "wsgw.yaml").write_text(config)
        (folder / "bench_cache.py").write_text(HANDLER)
        port = free_port()
        node = subprocess.Popen([sys.executable, "-m", "wsgw", "run", "-c", str(folder / "wsgw.yaml"), "--port",
                                 str(port), "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}, text=True)
        try:
            wait_listening(port)
            figures = {name: Figures(name, []) for name in targets}
            for name in targets:
                drive(port, name, 1.0, connections, client)                  # warm up
            for _ in range(rounds):
                for name in targets:
                    figures[name].rates.append(drive(port, name, seconds, connections, client))
            return list(figures.values()), os.getloadavg()
        finally:
            node.terminate()
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.kill()


def main_for(doc: str | None, run: Callable[[float, int, int], tuple[list[Figures], tuple[float, ...]]],
             what: str, unit: str) -> None:
    """The command line of a hit/miss/plain measurement (this one, loadtest/ws_cache.py): run it, print figures."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures, load = run(args.seconds, args.connections, args.rounds)
    print(f"{args.connections} {what}, {args.seconds:g} s per target, {args.rounds} rounds; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    by_name = {f.target: f for f in figures}
    for f in figures:
        print(f"  {f.target:6s} {f.median:9.0f} {unit}  ({min(f.rates):.0f}..{max(f.rates):.0f})")
    hit, miss, plain = (by_name[name].median for name in ("hit", "miss", "plain"))
    print(f"  hit ÷ miss: {hit / miss:.2f}   miss ÷ plain (the cache's own cost on a miss): {miss / plain:.2f}   "
          f"hit ÷ plain: {hit / plain:.2f}")


def main() -> None:
    main_for(__doc__, run, "keep-alive connections", "req/s")


if __name__ == "__main__":
    main()
