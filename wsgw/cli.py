"""`wsgw run`, `wsgw check`: the command line users type."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from wsgw.config import TlsConfig
from wsgw.config.node import DEFAULT_WS_ENGINE, WS_ENGINES, NodeConfig
from wsgw.config.site import SiteConfig, load_site
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.observe.app_logs import configure as configure_logs
from wsgw.server.site import Site, site_host_names
from wsgw.tls import TlsSettings

if TYPE_CHECKING:
    from wsgw.loaders import Loaded

log = logging.getLogger("wsgw")


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
    run.add_argument("--planned-connections", type=int,
                     default=int(os.environ.get("WSGW_PLANNED_CONNECTIONS", "100000")),
                     help="connections this node is sized for: the file-descriptor limit is raised for them at "
                          "start, and a limit the OS keeps lower is logged and shown on /health")
    run.add_argument("--ws-engine", choices=WS_ENGINES, default=os.environ.get("WSGW_WS_ENGINE", DEFAULT_WS_ENGINE),
                     help="who parses and writes WebSocket frames after the handshake: picows (C, the default) or "
                          "websockets (pure Python, the reference; less memory per idle connection); same limits "
                          "and close codes (env WSGW_WS_ENGINE)")
    run.add_argument("--tls", nargs="?", const="only", choices=["only", "both"], default=None,
                     help="serve wss:// and https:// ('both' also accepts ws:// and http:// on the same port); "
                          "without --certfile a local development CA is made once (see --ca-dir)")
    run.add_argument("--certfile", type=Path, help="PEM certificate (chain) to serve; implies --tls")
    run.add_argument("--keyfile", type=Path, help="PEM private key of --certfile")
    run.add_argument("--ca-dir", type=Path, default=None,
                     help="where the local development CA lives (default: $WSGW_CA_DIR, $WSGW_HOME/ca or "
                          "~/.local/share/wsgw/ca)")
    run.add_argument("--pid-file", type=Path, default=None,
                     help="write the node's process id here, for `wsgw reload --pid-file`")
    reload = sub.add_parser("reload", help="re-read the running node's files: new connections get the new "
                            "definition, open ones keep theirs; a bad file is refused and the node keeps serving")
    reload.add_argument("--url", default=None,
                        help="the node's address, e.g. http://127.0.0.1:8080 (POST /@reload; prints the refusal "
                             "reasons); the default when no --pid-file is given")
    reload.add_argument("--pid-file", type=Path, default=None, help="send SIGHUP to the process id in this file")
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


def _load(args: argparse.Namespace) -> tuple[SiteConfig, Loaded]:
    """Read and validate every API, version and stage; warnings (what a template asks for that is ignored
    locally) go to stderr."""
    from wsgw.loaders import LoadFailed, LoadOptions, load_document

    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError.single(f"--param {item}", "must be NAME=VALUE")
        params[name] = value
    options = LoadOptions(args.stage, args.region, params)
    try:
        loaded = load_document(args.config, options)
        site, warnings = load_site(args.config, options)
    except LoadFailed as exc:
        _print_warnings(exc.warnings)
        raise
    _print_warnings(warnings)
    return site, loaded


def _print_warnings(warnings: list[ConfigProblem]) -> None:
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    """Exit 0 when every API, version and stage can be served; else exit 2 with one line per problem naming
    the key. Says which stage serves which version."""
    try:
        site, loaded = _load(args)
        if args.print_yaml:
            from wsgw.loaders.dump import as_wsgw_yaml

            print(as_wsgw_yaml(loaded.raw, loaded.kind, args.config), end="", flush=True)
        _discard(Site(site, NodeConfig()))       # exactly what `run` builds, without listening
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.print_yaml:
        return 0
    api = site.first()
    stages = [s for a in site.apis.values() for s in a.stages.values()]
    if len(stages) == 1 and stages[0].canary is None and len(site.apis) == 1 \
            and next(iter(site.apis.values())).versions.get("default") == "(inline)":
        http_routes = len(api.http.routes) if api.http is not None else 0
        print(f"{args.config}: ok ({loaded.kind}: {len(api.routes)} routes, {http_routes} HTTP routes, "
              f"{len(api.authorizers)} authorizers{f', {len(loaded.warnings)} warnings' if loaded.warnings else ''})")
        return 0
    versions = sum(len(a.versions) for a in site.apis.values())
    print(f"{args.config}: ok ({len(site.apis)} API{'s' if len(site.apis) > 1 else ''}, {versions} "
          f"version{'s' if versions > 1 else ''}, {len(stages)} stages)")
    for line in site.describe():
        print(f"  {line}")
    return 0


def _discard(site: Site) -> None:
    for deployment in site.routing.deployments:
        deployment.node.discard()


async def _serve(args: argparse.Namespace, site_config: SiteConfig, config: NodeConfig) -> None:
    from wsgw.server.app import GatewayServer

    server = GatewayServer(Site(site_config, config))
    await server.start()
    # Everything imported and built so far lives as long as the node: move it out of the cyclic GC's view,
    # so full collections stay short (they showed as 10-20 ms latency spikes at p99).
    gc.collect()
    gc.freeze()
    urls = server.urls
    from wsgw.registry.redis_wire import redacted

    redis_url, tls = config.redis_url, config.tls
    registry = f"redis ({redacted(redis_url)})" if redis_url else "memory"
    if server.site.single:
        print(f"wsgw serving stage '{server.api.stage}' on the {registry} registry", flush=True)
    else:
        print(f"wsgw serving on the {registry} registry:", flush=True)
        for line in site_config.describe():
            print(f"  {line}", flush=True)
        for name, port in server.ports.items():
            print(f"  API {name} on port {port}", flush=True)
    if tls is not None:
        _print_tls(tls)
    print(f"  WebSocket:    {urls.websocket}", flush=True)
    print(f"  @connections: {urls.connections}/{{connectionId}}", flush=True)
    print(f"  health:       {urls.health}", flush=True)
    lock = asyncio.Lock()

    async def reload() -> list[str]:
        """Re-read the files; refused (logged with check's messages) or applied to new connections at once."""
        async with lock:
            try:
                fresh, _ = _load(args)
                lines = await server.reload(fresh)
            except ConfigError as exc:
                log.error("reload refused; still serving the previous definition:\n%s",
                          "\n".join(f"  {p}" for p in exc.problems))
                raise
            log.info("reloaded:\n%s", "\n".join(f"  {line}" for line in lines))
            return lines

    async def reload_quietly() -> None:
        with contextlib.suppress(ConfigError):
            await reload()

    server.site.reloader = reload
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload_quietly())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if args.pid_file is not None:
        args.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        await stop.wait()
    finally:
        if args.pid_file is not None:
            with contextlib.suppress(OSError):
                args.pid_file.unlink()
    print("wsgw stopping: closing connections", flush=True)
    await server.stop()


def reload_node(args: argparse.Namespace) -> int:
    """`wsgw reload`: SIGHUP to the pid in --pid-file, or POST /@reload to --url (which answers with the problems)."""
    if args.pid_file is not None and args.url is None:
        try:
            pid = int(args.pid_file.read_text(encoding="utf-8").strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            print(f"{args.pid_file}: cannot signal the node ({exc})", file=sys.stderr)
            return 1
        print(f"sent SIGHUP to {pid}; the node logs whether the new files were applied or refused")
        return 0
    import urllib.error
    import urllib.request

    url = (args.url or "http://127.0.0.1:8080").rstrip("/") + "/@reload"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=60) as reply:
            answer = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            problems = json.loads(body).get("problems") or [body.decode(errors="replace")]
        except ValueError:
            problems = [body.decode(errors="replace")]
        print("reload refused; the node keeps serving the previous definition:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print("reloaded:")
    for line in answer.get("stages", []):
        print(f"  {line}")
    return 0


def _node_config(args: argparse.Namespace, site: SiteConfig) -> NodeConfig:
    """The node's settings from the command line (and the config's `tls:`), checked before anything starts."""
    from wsgw.registry import open_registry

    config = NodeConfig(host=args.host, port=args.port, redis_url=args.redis, workers=args.workers,
                        reuse_port=args.reuse_port, ws_engine=args.ws_engine,
                        planned_connections=args.planned_connections)
    try:
        open_registry(config.redis_url)
    except ValueError as exc:
        raise ConfigError.single("--redis", str(exc).removeprefix("--redis: ")) from None
    if config.workers > 1:
        return config            # each worker makes its own TLS settings (same files, same local CA)
    return replace(config, tls=_tls_settings(args, site))


def _print_tls(tls: TlsSettings) -> None:
    both = " (plain ws:// and http:// are accepted on the same port too)" if tls.mode == "both" else ""
    print(f"  TLS 1.2+ with {tls.certfile}{both}", flush=True)
    if tls.dev_ca is not None:
        print(f"  local CA:     {tls.dev_ca} (trusted by handlers in this process; give it to clients, e.g. "
              f"NODE_EXTRA_CA_CERTS={tls.dev_ca} or ssl.create_default_context(cafile=...))", flush=True)


def _tls_settings(args: argparse.Namespace, site: SiteConfig) -> TlsSettings | None:
    """--tls/--certfile/--keyfile win over the (first API's) `tls:` mapping (paths there are relative to the file);
    the dev certificate names every API's execute-api host, which the server aliases to its ports."""
    from wsgw.tls.setup import build_tls

    api = site.first()
    conf = api.tls or TlsConfig()
    certfile = args.certfile or conf.certfile
    keyfile = args.keyfile or conf.keyfile
    mode = args.tls or conf.mode or ("only" if certfile or api.tls is not None else None)
    if mode == "off" and certfile is not None:
        raise ConfigError.single("tls.mode", "'off' but a certificate was given (--certfile or tls.certfile); "
                                 "remove one of them")
    if mode is None or mode == "off":
        return None
    return build_tls(str(mode), certfile, keyfile, args.ca_dir, args.host,
                     site_host_names(site, os.environ))


def _child_args(args: argparse.Namespace) -> list[str]:
    """What each --workers process is started with: the same API and TLS options. Not the Redis URL: it may
    hold a password, and a command line is visible to every user (ps); workers get it as WSGW_REDIS_URL."""
    child = ["-c", args.config, "--log-level", args.log_level, "--log-format", args.log_format,
             "--ws-engine", args.ws_engine, "--planned-connections", str(args.planned_connections)]
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
    if args.command == "reload":
        return reload_node(args)
    configure_logs(args.log_level, getattr(args, "log_format", "text"))
    try:
        site, _ = _load(args)
        api = site.first()
        config = _node_config(args, site)
        if config.workers > 1:
            from wsgw.workers import supervise

            if args.pid_file is not None:         # SIGHUP to the supervisor reloads every worker
                args.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
            return supervise(config.workers, config.host, config.port, _child_args(args),
                             env={"WSGW_REDIS_URL": args.redis})
        sys.path.insert(0, str(api.base_dir))
        _install_loop()
        asyncio.run(_serve(args, site, config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
