"""`wsgw run`, `wsgw check`: the command line users type."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from wsgw.config import ApiConfig, TlsConfig, parse_api
from wsgw.config.node import NodeConfig
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.server.node import build_node
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
        build_node(api, NodeConfig()).discard()      # exactly what `run` builds, without listening
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.print_yaml:
        return 0
    http_routes = len(api.http.routes) if api.http is not None else 0
    print(f"{args.config}: ok ({loaded.kind}: {len(api.routes)} routes, {http_routes} HTTP routes, "
          f"{len(api.authorizers)} authorizers{f', {len(loaded.warnings)} warnings' if loaded.warnings else ''})")
    return 0


async def _serve(api: ApiConfig, config: NodeConfig) -> None:
    from wsgw.server.app import GatewayServer

    server = GatewayServer(build_node(api, config))
    await server.start()
    # Everything imported and built so far lives as long as the node: move it out of the cyclic GC's view,
    # so full collections stay short (they showed as 10-20 ms latency spikes at p99).
    gc.collect()
    gc.freeze()
    urls = server.urls
    from wsgw.registry.redis_wire import redacted

    redis_url, tls = config.redis_url, config.tls
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


def _node_config(args: argparse.Namespace, api: ApiConfig) -> NodeConfig:
    """The node's settings from the command line (and the config's `tls:`), checked before anything starts."""
    from wsgw.registry import open_registry

    config = NodeConfig(host=args.host, port=args.port, redis_url=args.redis, workers=args.workers,
                        reuse_port=args.reuse_port)
    try:
        open_registry(config.redis_url)
    except ValueError as exc:
        raise ConfigError.single("--redis", str(exc).removeprefix("--redis: ")) from None
    if config.workers > 1:
        return config            # each worker makes its own TLS settings (same files, same local CA)
    return replace(config, tls=_tls_settings(args, api))


def _print_tls(tls: TlsSettings) -> None:
    both = " (plain ws:// and http:// are accepted on the same port too)" if tls.mode == "both" else ""
    print(f"  TLS 1.2+ with {tls.certfile}{both}", flush=True)
    if tls.dev_ca is not None:
        print(f"  local CA:     {tls.dev_ca} (trusted by handlers in this process; give it to clients, e.g. "
              f"NODE_EXTRA_CA_CERTS={tls.dev_ca} or ssl.create_default_context(cafile=...))", flush=True)


def _tls_settings(args: argparse.Namespace, api: ApiConfig) -> TlsSettings | None:
    """--tls/--certfile/--keyfile win over the config's `tls:` mapping (paths there are relative to the file)."""
    from wsgw.tls.setup import build_tls

    conf = api.tls or TlsConfig()
    certfile = args.certfile or conf.certfile
    keyfile = args.keyfile or conf.keyfile
    mode = args.tls or conf.mode or ("only" if certfile or api.tls is not None else None)
    if mode == "off" and certfile is not None:
        raise ConfigError.single("tls.mode", "'off' but a certificate was given (--certfile or tls.certfile); "
                                 "remove one of them")
    if mode is None or mode == "off":
        return None
    return build_tls(str(mode), certfile, keyfile, args.ca_dir, args.host)


def _child_args(args: argparse.Namespace) -> list[str]:
    """What each --workers process is started with: the same API and TLS options. Not the Redis URL: it may
    hold a password, and a command line is visible to every user (ps); workers get it as WSGW_REDIS_URL."""
    child = ["-c", args.config, "--log-level", args.log_level]
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
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api, _ = _load(args)
        config = _node_config(args, api)
        if config.workers > 1:
            from wsgw.workers import supervise

            return supervise(config.workers, config.host, config.port, _child_args(args),
                             env={"WSGW_REDIS_URL": args.redis})
        sys.path.insert(0, str(api.base_dir))
        _install_loop()
        asyncio.run(_serve(api, config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
