"""The gateway's own cost per routed message or push, in-process: no sockets, no frame parser, no load generator.

`python -m loadtest.path_cost [--route echo|syncecho|push] [--messages N] [--connections C]` drives the benchmark
API (loadtest/apps/bench.yaml) through `Gateway.on_message` / `Gateway.post` with sinks that only count frames,
closed loop like the load generator (each connection's next message after its answer), and prints µs per message.
Under `valgrind --tool=callgrind` the difference between two message counts is the instruction count of one
message — a figure that does not move with the machine's load, used for the before/after of path changes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time
from pathlib import Path

from wsgw.aws.websocket_events import ConnectionInfo
from wsgw.config import load_api
from wsgw.gateway import Connection, Gateway
from wsgw.registry import MemoryRegistry

BENCH_API = Path(__file__).resolve().parent / "apps" / "bench.yaml"


class CountingSink:
    """A socket that takes every frame; wakes the driver when its connection got its answer."""

    __slots__ = ("driver", "frames")

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.frames = 0

    def accept(self, subprotocol: str | None) -> bool:
        return True

    def send(self, data: bytes | str) -> bool:
        self.frames += 1
        self.driver.answered()
        return True

    def send_encoded(self, frame: bytes) -> bool:
        return self.send(frame)

    def close(self, code: int, reason: str) -> None:
        return None

    def abort(self) -> None:
        return None

    def ping(self) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


class Driver:
    """Rounds of one message per connection; a round ends when every connection got its answer."""

    def __init__(self, gateway: Gateway, connections: int) -> None:
        self.gateway = gateway
        self.waiting = 0
        self.round_done: asyncio.Future[None] | None = None
        self.conns: list[Connection] = []
        for i in range(connections):
            info = ConnectionInfo(f"conn{i:06d}=", 1_700_000_000_000, "127.0.0.1", "path-cost", "localhost",
                                  gateway.api.stage, gateway.api.api_id)
            conn = Connection(info, CountingSink(self), gateway.now())
            gateway.local.add(conn)
            self.conns.append(conn)

    def answered(self) -> None:
        self.waiting -= 1
        if self.waiting == 0 and self.round_done is not None:
            self.round_done.set_result(None)

    async def run(self, route: str, messages: int) -> None:
        body = f'{{"action": "{route}", "data": "{"x" * 32}"}}'
        push = b'{"data": "' + b"x" * 32 + b'"}'
        loop = asyncio.get_running_loop()
        posts: set[asyncio.Task[bool]] = set()
        done = 0
        while done < messages:
            self.waiting = len(self.conns)
            self.round_done = loop.create_future()
            for conn in self.conns:
                if route == "push":
                    posts.add(loop.create_task(self.gateway.post(conn.info.connection_id, push)))
                else:                        # as a socket's data_received: a loop callback, not a task
                    loop.call_soon(self.gateway.on_message, conn, body)
            await self.round_done
            await asyncio.gather(*posts)
            posts.clear()
            done += len(self.conns)


async def measure(route: str, messages: int, connections: int, profile: bool = False) -> tuple[float, float]:
    """(wall, CPU of every thread) µs per message."""
    gateway = Gateway(load_api(BENCH_API), MemoryRegistry())
    await gateway.start()
    driver = Driver(gateway, connections)
    gc.freeze()                                      # as `wsgw run` does once started
    await driver.run(route, connections * 20)        # warm up: imports, first calls, caches
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    await driver.run(route, messages)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    gateway.local.connections.clear()
    await gateway.shutdown(1.0)
    return elapsed / messages * 1e6, cpu / messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.path_cost", description=__doc__)
    parser.add_argument("--route", choices=["echo", "syncecho", "push"], default="echo")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--asyncio", action="store_true", help="the stdlib loop instead of uvloop")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of the measured part")
    args = parser.parse_args()
    if not args.asyncio:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    wall, cpu = asyncio.run(measure(args.route, args.messages, args.connections, args.profile))
    print(f"{args.route}: {wall:.2f} µs per message, CPU {cpu:.2f} µs ({args.messages} messages, "
          f"{args.connections} connections)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
