"""`wsgw run`, `wsgw check`: the command line users type."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wsgw.config import ApiConfig, parse_api
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.observe.app_logs import configure as configure_logs
from wsgw.tls import TlsSettings

if TYPE_CHECKING:
    from wsgw.loaders import Loaded


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgw", description="A self-hosted WebSocket API gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start one node")
    run.add_argument("-c", "--config", default="wsgw.yaml",
                     help="API definition: wsgw.yaml, serverless.yml or a SAM template (default: wsgw.yaml)")
    _add_template_options(run)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    run.add_argument("--redis", default=os.environ.get("WSGW_REDIS_URL"),
                     help="redis://HOST:PORT/0 for the Redis registry (default: in-memory; env WSGW_REDIS_URL)")
    run.add_argument("--log-level", default=os.environ.get("WSGW_LOG_LEVEL", "INFO"))
    run.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("WSGW_LOG_FORMAT", "text"))
    run.add_argument("--workers", type=int, default=int(os.environ.get("WSGW_WORKERS", "1")),
                     help="N processes sharing the port with SO_REUSEPORT (needs --redis; env WSGW_WORKERS)")
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)   # set by --workers
    run.add_argument("--tls", nargs="?", const="only", choices=["only", "both"], default=None,
                     help="serve wss:// and https:// ('both' also accepts ws:// and http:// on the same port); "
                          "without --certfile a local development CA is made once (see --ca-dir)")
    run.add_argument("--certfile", type=Path, help="PEM certificate (chain) to serve; implies --tls")
    run.add_argument("--keyfile", type=Path, help="PEM private key of --certfile")
    run.add_argument("--ca-dir", type=Path, default=None,
                     help="where the local development CA lives (default: $WSGW_CA_DIR, $WSGW_HOME/ca or "
                          "~/.local/share/wsgw/ca)")
    check = sub.add_parser("check", help="validate an API definition")
    check.add_argument("-c", "--config", default="wsgw.yaml")
    _add_template_options(check)
    check.add_argument("--print", action="store_true", dest="print_yaml",
                       help="print the API as wsgw.yaml (useful for serverless.yml and SAM templates)")
    return parser


def _add_template_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stage", help="stage to serve (serverless ${opt:stage}; overrides the file's stage)")
    command.add_argument("--region", help="region for serverless ${opt:region} / SAM AWS::Region")
    command.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="SAM parameter override, or serverless ${opt:NAME}; repeatable")


def _load(args: argparse.Namespace) -> tuple[ApiConfig, Loaded]:
    """Read and validate; warnings (what a template asks for that is ignored locally) go to stderr."""
    from wsgw.loaders import LoadFailed, LoadOptions, load_document

    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError.single(f"--param {item}", "must be NAME=VALUE")
        params[name] = value
    try:
        loaded = load_document(args.config, LoadOptions(args.stage, args.region, params))
    except LoadFailed as exc:
        _print_warnings(exc.warnings)
        raise
    _print_warnings(loaded.warnings)
    return parse_api(loaded.raw, loaded.base_dir), loaded


def _print_warnings(warnings: list[ConfigProblem]) -> None:
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    """Exit 0 when the API can be served; else exit 2 with one line per problem naming the key."""
    try:
        api, loaded = _load(args)
        if args.print_yaml:
            from wsgw.loaders.dump import as_wsgw_yaml

            print(as_wsgw_yaml(loaded.raw, loaded.kind, args.config), end="", flush=True)
        _build_everything(api)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.print_yaml:
        return 0
    http_routes = len((api.http or {}).get("routes") or {})
    print(f"{args.config}: ok ({loaded.kind}: {len(api.routes)} routes, {http_routes} HTTP routes, "
          f"{len(api.authorizers)} authorizers{f', {len(loaded.warnings)} warnings' if loaded.warnings else ''})")
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


async def _serve(api: ApiConfig, host: str, port: int, redis_url: str | None, reuse_port: bool = False,
                 tls: TlsSettings | None = None) -> None:
    from wsgw.server.app import GatewayServer

    server = GatewayServer(api, host, port, redis_url=redis_url, reuse_port=reuse_port, tls=tls)
    await server.start()
    # Everything imported and built so far lives as long as the node: move it out of the cyclic GC's view,
    # so full collections stay short (they showed as 10-20 ms latency spikes at p99).
    gc.collect()
    gc.freeze()
    urls = server.urls
    from wsgw.registry.redis_wire import redacted

    registry = f"redis ({redacted(redis_url)})" if redis_url else "memory"
    print(f"wsgw serving stage '{api.stage}' on the {registry} registry", flush=True)
    if tls is not None:
        _print_tls(tls)
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


def _print_tls(tls: TlsSettings) -> None:
    both = " (plain ws:// and http:// are accepted on the same port too)" if tls.mode == "both" else ""
    print(f"  TLS 1.2+ with {tls.certfile}{both}", flush=True)
    if tls.dev_ca is not None:
        print(f"  local CA:     {tls.dev_ca} (trusted by handlers in this process; give it to clients, e.g. "
              f"NODE_EXTRA_CA_CERTS={tls.dev_ca} or ssl.create_default_context(cafile=...))", flush=True)


def _tls_settings(args: argparse.Namespace, api: ApiConfig) -> TlsSettings | None:
    """--tls/--certfile/--keyfile win over the config's `tls:` mapping (paths there are relative to the file)."""
    from wsgw.tls.setup import build_tls

    conf = api.tls
    certfile = args.certfile or (api.base_dir / conf["certfile"] if conf.get("certfile") else None)
    keyfile = args.keyfile or (api.base_dir / conf["keyfile"] if conf.get("keyfile") else None)
    mode = args.tls or conf.get("mode") or ("only" if certfile or conf else None)
    if mode == "off" and certfile is not None:
        raise ConfigError.single("tls.mode", "'off' but a certificate was given (--certfile or tls.certfile); "
                                 "remove one of them")
    if mode is None or mode == "off":
        return None
    return build_tls(str(mode), certfile, keyfile, args.ca_dir, args.host)


def _child_args(args: argparse.Namespace) -> list[str]:
    """What each --workers process is started with: the same API and TLS options. Not the Redis URL: it may
    hold a password, and a command line is visible to every user (ps); workers get it as WSGW_REDIS_URL."""
    child = ["-c", args.config, "--log-level", args.log_level, "--log-format", args.log_format]
    for flag, value in (("--stage", args.stage), ("--region", args.region), ("--tls", args.tls),
                        ("--certfile", args.certfile), ("--keyfile", args.keyfile), ("--ca-dir", args.ca_dir)):
        if value is not None:
            child += [flag, str(value)]
    for param in args.param:
        child += ["--param", param]
    return child


def _install_loop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "check":
        return check(args)
    configure_logs(args.log_level, getattr(args, "log_format", "text"))
    try:
        api, _ = _load(args)
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

        return supervise(args.workers, args.host, args.port, _child_args(args), env={"WSGW_REDIS_URL": args.redis})
    sys.path.insert(0, str(api.base_dir))
    _install_loop()
    try:
        tls = _tls_settings(args, api)
        asyncio.run(_serve(api, args.host, args.port, args.redis, args.reuse_port, tls))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
