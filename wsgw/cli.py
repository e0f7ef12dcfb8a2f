"""`wsgw run`, `wsgw check`: the command line users type."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from wsgw.config import ApiConfig, load_api
from wsgw.errors import ConfigError, ConfigProblem


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgw", description="A self-hosted WebSocket API gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start one node")
    run.add_argument("-c", "--config", default="wsgw.yaml", help="API definition (default: wsgw.yaml)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    run.add_argument("--redis", default=os.environ.get("WSGW_REDIS_URL"),
                     help="redis://HOST:PORT/0 for the Redis registry (default: in-memory; env WSGW_REDIS_URL)")
    run.add_argument("--log-level", default=os.environ.get("WSGW_LOG_LEVEL", "INFO"))
    run.add_argument("--workers", type=int, default=int(os.environ.get("WSGW_WORKERS", "1")),
                     help="N processes sharing the port with SO_REUSEPORT (needs --redis; env WSGW_WORKERS)")
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)   # set by --workers
    check = sub.add_parser("check", help="validate an API definition")
    check.add_argument("-c", "--config", default="wsgw.yaml")
    return parser


def check(config: str) -> int:
    """Exit 0 when the API can be served; else exit 2 with one line per problem naming the key."""
    try:
        api = load_api(config)
        _build_everything(api)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    http_routes = len((api.http or {}).get("routes") or {})
    print(f"{config}: ok ({len(api.routes)} routes, {http_routes} HTTP routes, {len(api.authorizers)} authorizers)")
    return 0


def _build_everything(api: ApiConfig) -> None:
    """Import every handler and build every integration and authorizer, as `run` would."""
    from wsgw.authorizers import build_authorizers
    from wsgw.gateway.routes import RouteTable
    from wsgw.integrations import Resources
    from wsgw.throttle import build_throttler

    resources = Resources()
    problems: list[ConfigProblem] = []
    try:
        for build in (lambda: RouteTable(api, resources), lambda: build_authorizers(api, resources),
                      lambda: build_http_routes(api, resources), lambda: build_throttler(api, lambda: 0.0)):
            try:
                build()
            except ConfigError as exc:
                problems.extend(exc.problems)
    finally:
        resources.executor.shutdown(wait=False)
    if problems:
        raise ConfigError(problems)


def build_http_routes(api: ApiConfig, resources: object) -> int:
    """Validate `http:` and build every REST route's integration; returns how many routes there are."""
    from wsgw.gateway.routes import function_name_for
    from wsgw.http_config import parse_http
    from wsgw.integrations import Resources, build_integration

    assert isinstance(resources, Resources)
    spec = parse_http(api)
    problems: list[ConfigProblem] = []
    for route in spec.routes:
        try:
            build_integration(route.integration, api, resources, function_name_for(api, route.key))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return len(spec.routes)


async def _serve(api: ApiConfig, host: str, port: int, redis_url: str | None, reuse_port: bool = False) -> None:
    from wsgw.server.app import GatewayServer

    server = GatewayServer(api, host, port, redis_url=redis_url, reuse_port=reuse_port)
    await server.start()
    # Everything imported and built so far lives as long as the node: move it out of the cyclic GC's view,
    # so full collections stay short (they showed as 10-20 ms latency spikes at p99).
    gc.collect()
    gc.freeze()
    urls = server.urls
    registry = f"redis ({redis_url})" if redis_url else "memory"
    print(f"wsgw serving stage '{api.stage}' on the {registry} registry", flush=True)
    print(f"  WebSocket:    {urls.websocket}", flush=True)
    print(f"  @connections: {urls.connections}/{{connectionId}}", flush=True)
    print(f"  health:       {urls.health}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("wsgw stopping: closing connections", flush=True)
    await server.stop()


def _registry_problem(redis_url: str | None, workers: int) -> str | None:
    """Check --redis and --workers before anything starts; the message names the flag and the fix."""
    from wsgw.registry import open_registry

    if workers < 1:
        return "--workers: must be 1 or more"
    if workers > 1 and not redis_url:
        return "--workers: several processes need the Redis registry; add --redis redis://HOST:PORT/0"
    try:
        open_registry(redis_url)
    except ValueError as exc:
        return str(exc)
    return None


def _install_loop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "check":
        return check(args.config)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api = load_api(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    registry_problem = _registry_problem(args.redis, args.workers)
    if registry_problem:
        print(registry_problem, file=sys.stderr)
        return 2
    if args.workers > 1:
        from wsgw.workers import supervise

        return supervise(args.workers, args.host, args.port,
                         ["-c", args.config, "--redis", args.redis, "--log-level", args.log_level])
    sys.path.insert(0, str(Path(args.config).resolve().parent))
    _install_loop()
    try:
        asyncio.run(_serve(api, args.host, args.port, args.redis, args.reuse_port))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
