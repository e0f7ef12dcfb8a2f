"""`wsgw run --workers N`: N node processes share one port (SO_REUSEPORT) on the Redis registry.

The kernel spreads new TCP connections over the workers; each worker is a full node with its own id, and a
push arriving at any of them reaches a socket held by another through Redis. This supervisor only starts the
workers, restarts one that crashes, and forwards SIGTERM/SIGINT so every worker closes its sockets cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

RESTART_PAUSE = 1.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT: fixes the port for `--port 0` and holds it for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


MAX_RESTARTS = 10          # a worker that fails this often (port taken, broken config) stops the node


def supervise(count: int, host: str, port: int, child_args: list[str], env: dict[str, str] | None = None) -> int:
    """Run `count` workers of `wsgw run <child_args> --port P --reuse-port` until a signal; → exit status.
    `env` is added to the workers' environment (secrets such as the Redis URL go there, not on argv)."""
    reserved = reserve_port(host, port)
    port = int(reserved.getsockname()[1])
    # --workers 1: a worker must never supervise in turn (WSGW_WORKERS in the environment would make it)
    command = [sys.executable, "-m", "wsgw", "run", *child_args, "--host", host, "--port", str(port), "--reuse-port",
               "--workers", "1"]
    print(f"wsgw: {count} workers sharing {host}:{port} (SO_REUSEPORT) on the Redis registry", flush=True)
    child_env = {**os.environ, **(env or {})}
    workers = [subprocess.Popen(command, env=child_env) for _ in range(count)]
    stopping: list[int] = []

    def forward(sig: int, _frame: FrameType | None) -> None:
        stopping.append(sig)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(sig)

    def reload(_sig: int, _frame: FrameType | None) -> None:
        """SIGHUP to the supervisor reloads every worker (each re-reads the files and logs the outcome)."""
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reload)
    restarts = [0] * count
    try:
        while not stopping:
            for index, worker in enumerate(workers):
                status = worker.poll()
                if status is None or stopping:
                    continue
                restarts[index] += 1
                if restarts[index] > MAX_RESTARTS:
                    print(f"wsgw: worker {worker.pid} exited with {status} {MAX_RESTARTS} times; stopping", flush=True)
                    forward(signal.SIGTERM, None)
                    break
                print(f"wsgw: worker {worker.pid} exited with {status}; restarting it", flush=True)
                time.sleep(RESTART_PAUSE * restarts[index])          # back off a worker that keeps failing
                if not stopping:                 # a signal during the pause: start nothing it would miss
                    workers[index] = subprocess.Popen(command, env=child_env)
            time.sleep(0.2)
        statuses = [worker.wait() for worker in workers]
    finally:
        reserved.close()
    return max((abs(s) for s in statuses if s not in (0, -signal.SIGTERM, -signal.SIGINT)), default=0)
