"""Everything one node serves: APIs → stages → the deployment (a built Node) each new connection or request
goes to, and the reload that swaps that map while open connections stay on the deployment they started on.

A deployment is one (API, stage, version[, canary]) built by `build_node` exactly as a single-API node is:
its own gateway (routes, authorizers and their caches, throttles, limits), REST front, handler modules and
environment. A connection is bound to its deployment's gateway at the upgrade, so every message, route
response and $disconnect of a canary connection runs on the canary by construction. Deployments of one API
reach each other's connections through the registry (a shared `MemoryHub` in one process, the Redis keys
under the API's prefix across nodes), so `/{stage}/@connections/{id}` finds a connection on any version.

Reload builds the new map first (a ConfigError leaves everything as it was), starts the deployments it
added, swaps the map in one assignment, then retires the replaced deployments: each keeps its connections
and stops (registry, thread pool, HTTP sessions) once the last of them has ended. Nothing is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from wsgw.aws.ids import new_id
from wsgw.cache import CacheUnavailable
from wsgw.config import ApiConfig
from wsgw.config.node import NodeConfig
from wsgw.config.site import DEFAULT_API, SiteApi, SiteConfig, single_site
from wsgw.errors import ConfigError, ConfigProblem
from wsgw.gateway import Gateway
from wsgw.metrics import CONTENT_TYPE, Dimensions, render_all
from wsgw.registry import Registry, open_registry
from wsgw.registry.memory import MemoryHub, MemoryRegistry
from wsgw.request import HttpRequest
from wsgw.server import fdlimit
from wsgw.server.context import OpenSocket
from wsgw.server.http import HttpResponse, plain_error
from wsgw.server.node import Node, api_host_names, build_node

log = logging.getLogger("wsgw.site")

RETIRE_POLL_SECONDS = 0.5
Reloader = Callable[[], Awaitable[list[str]]]     # re-read the files and apply them; ConfigError when refused


@dataclass(slots=True, eq=False)
class Deployment:
    """One (API, stage, version) as built; `canary` marks the canary side of a stage."""

    api: str
    stage: str
    version: str
    canary: bool
    node: Node

    @property
    def gateway(self) -> Gateway:
        return self.node.gateway


class StageRoute:
    """Where a stage's new connections and requests go: the main version, or the canary with its share."""

    __slots__ = ("canary", "main", "name", "percent", "random")

    def __init__(self, name: str, main: Deployment, canary: Deployment | None, percent: float,
                 rnd: Callable[[], float]) -> None:
        self.name = name
        self.main = main
        self.canary = canary
        self.percent = percent
        self.random = rnd

    def pick(self) -> Deployment:
        if self.canary is not None and self.random() * 100.0 < self.percent:
            return self.canary
        return self.main


@dataclass(slots=True)
class ApiRoute:
    name: str
    port: int | None
    hosts: tuple[str, ...]
    stages: dict[str, StageRoute]


@dataclass(slots=True)
class Routing:
    """One immutable map from (port, host, stage) to deployments; a reload replaces it whole."""

    config: SiteConfig
    apis: dict[str, ApiRoute]
    deployments: list[Deployment]
    ports: dict[int | None, tuple[dict[str, ApiRoute], ApiRoute | None]] = field(default_factory=dict)
    single: bool = False          # one API, one stage, no canary: today's form, answered by its own router
    api_ids: dict[tuple[int | None, str], ApiRoute] = field(default_factory=dict)   # (port, apiId) → API

    def __post_init__(self) -> None:
        for deployment in self.deployments:       # AWS's host name of an API finds it on a port that picks by Host
            route = self.apis.get(deployment.api)
            if route is not None:
                self.api_ids.setdefault((route.port, deployment.node.api.api_id), route)
        only = next(iter(self.apis.values())) if len(self.apis) == 1 else None
        self.single = (only is not None and only.name == DEFAULT_API and len(only.stages) == 1
                       and next(iter(only.stages.values())).canary is None)
        for api in self.apis.values():
            hosts, default = self.ports.get(api.port, ({}, None))
            hosts = dict(hosts)
            for host in api.hosts:
                hosts[host] = api
            self.ports[api.port] = (hosts, default if api.hosts else api)

    def api_for(self, port: int | None, host: str | None) -> ApiRoute | None:
        hosts, default = self.ports.get(port, ({}, None))
        if host and hosts:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            found = hosts.get(name.lower())
            if found is not None:
                return found
            labels = name.lower().removesuffix(".").split(".")
            if len(labels) == 5 and labels[1] == "execute-api" and labels[3:] == ["amazonaws", "com"]:
                found = self.api_ids.get((port, labels[0]))
                if found is not None:
                    return found
        return default

    @property
    def first(self) -> Deployment:
        return self.deployments[0]


class Site:
    """The deployments a node serves and the map requests find them by; built without I/O like a Node."""

    def __init__(self, config: SiteConfig, node_config: NodeConfig, *, rnd: Callable[[], float] | None = None,
                 registry: Registry | None = None) -> None:
        self.node_config = node_config
        self.random = rnd or random.random
        self.hubs: dict[str, MemoryHub] = {}
        self.given_registry = registry            # tests: one registry object for a single deployment
        self.base_id = node_config.node_id or f"node-{os.getpid()}-{new_id()[:8]}"
        self.generation = 0
        self.retiring: set[Deployment] = set()
        self.retirements: set[asyncio.Task[None]] = set()
        self.reloader: Reloader | None = None
        self.started = False
        self.routing = self.build(config)
        share_stage_buckets(self.routing)

    @classmethod
    def of_node(cls, node: Node) -> Site:
        """A site around one already-built node (the single-API form)."""
        site = cls.__new__(cls)
        site.node_config = node.config
        site.random = random.random
        site.hubs = {}
        site.given_registry = None
        site.base_id = node.gateway.node_id
        site.generation = 0
        site.retiring = set()
        site.retirements = set()
        site.reloader = None
        site.started = False
        config = single_site(node.api)
        deployment = Deployment(DEFAULT_API, node.api.stage, "default", False, node)
        node.gateway.deployment_gateway = site.gateway_of
        site.routing = Routing(config, {DEFAULT_API: ApiRoute(
            DEFAULT_API, None, (), {node.api.stage: StageRoute(node.api.stage, deployment, None, 0.0, site.random)})},
            [deployment])
        return site

    # ----- building ------------------------------------------------------------------------------------

    def build(self, config: SiteConfig, previous: Routing | None = None) -> Routing:
        """Every deployment of `config`; a deployment whose definition did not change is kept as it is."""
        if previous is not None:
            old_ports = {a.port for a in previous.config.apis.values() if a.port}
            new_ports = {a.port for a in config.apis.values() if a.port}
            if old_ports != new_ports:
                raise ConfigError.single("apis.*.port", f"ports cannot change on reload ({sorted(old_ports)} → "
                                         f"{sorted(new_ports)}); restart the node to listen elsewhere")
        kept = {(d.api, d.stage, d.version, d.canary): d for d in (previous.deployments if previous else [])}
        total = sum(1 + (s.canary is not None) for a in config.apis.values() for s in a.stages.values())
        built: list[Deployment] = []
        problems: list[ConfigProblem] = []
        apis: dict[str, ApiRoute] = {}

        def deployment(site_api: SiteApi, stage: str, version: str, canary: bool, api: ApiConfig) -> Deployment:
            old = kept.get((site_api.name, stage, version, canary))
            if old is not None and old.node.api == api:
                built.append(old)
                return old
            suffix = "" if total == 1 and previous is None else \
                f".{site_api.name}.{stage}.{version}{'.canary' if canary else ''}.g{self.generation}"
            node_config = replace(self.node_config, node_id=self.base_id + suffix)
            try:
                # metrics: the AWS ApiId of a lone API, the API's name among several (ApiIds may repeat)
                dims = Dimensions(api.api_id if site_api.name == DEFAULT_API else site_api.name, stage, version,
                                  canary)
                node = build_node(api, node_config, self._registry(site_api, total), dimensions=dims)
            except ConfigError as exc:
                if total == 1:          # the single-API form: keys as in the one file
                    problems.extend(exc.problems)
                else:
                    where = "" if site_api.name == DEFAULT_API else f"apis.{site_api.name}."
                    problems.extend(ConfigProblem(f"{where}stages.{stage} ({'canary ' if canary else ''}version "
                                                  f"{version}): {p.key}", p.message) for p in exc.problems)
                raise
            node.gateway.deployment_gateway = self.gateway_of
            made = Deployment(site_api.name, stage, version, canary, node)
            built.append(made)
            return made

        try:
            for site_api in config.apis.values():
                stages = {}
                for stage in site_api.stages.values():
                    try:
                        main = deployment(site_api, stage.name, stage.version, False, stage.api)
                        side = (deployment(site_api, stage.name, stage.canary.version, True, stage.canary.api)
                                if stage.canary is not None else None)
                    except ConfigError:
                        continue
                    stages[stage.name] = StageRoute(stage.name, main, side,
                                                    stage.canary.percent if stage.canary else 0.0, self.random)
                apis[site_api.name] = ApiRoute(site_api.name, site_api.port, site_api.hosts, stages)
            if problems:
                raise ConfigError(problems)
        except BaseException:
            reused = {id(d) for d in kept.values()}
            for made in built:
                if id(made) not in reused:
                    made.node.discard()
            raise
        return Routing(config, apis, built)

    def _registry(self, site_api: SiteApi, total: int) -> Registry:
        if self.given_registry is not None and total == 1:
            return self.given_registry
        url = self.node_config.redis_url
        if not url:
            return MemoryRegistry(self.hubs.setdefault(site_api.name, MemoryHub()))
        if site_api.key_prefix is None:
            return open_registry(url)
        return open_registry(with_key_prefix(url, site_api.name))

    # ----- running -------------------------------------------------------------------------------------

    async def start(self) -> None:
        for deployment in self.routing.deployments:
            await _start_node(deployment.node)
        self.started = True

    async def apply(self, config: SiteConfig) -> list[str]:
        """Reload: build, start, swap, retire. ConfigError (nothing changed) when the new files cannot be served."""
        self.generation += 1
        previous = self.routing
        routing = self.build(config, previous)
        fresh = [d for d in routing.deployments if d not in previous.deployments]
        started: list[Deployment] = []
        try:
            for deployment in fresh:
                await _start_node(deployment.node)
                started.append(deployment)
        except Exception as exc:
            for deployment in started:
                await _stop_node(deployment.node, 0.0)
            raise ConfigError.single("(reload)", f"a new deployment could not start: {exc}") from exc
        self.routing = routing
        share_stage_buckets(routing)
        for old in previous.deployments:
            if old not in routing.deployments:
                self.retire(old)
        return config.describe()

    def retire(self, deployment: Deployment) -> None:
        """No new connection reaches it any more; stop it once its last connection and call have ended."""
        self.retiring.add(deployment)
        task = asyncio.get_running_loop().create_task(self._drain(deployment))
        self.retirements.add(task)
        task.add_done_callback(self.retirements.discard)

    async def _drain(self, deployment: Deployment) -> None:
        gateway = deployment.gateway
        # no event marks "the last connection ended"; a look twice a second costs nothing
        while gateway.connections or gateway.workers or gateway.local.connecting:  # noqa: ASYNC110
            await asyncio.sleep(RETIRE_POLL_SECONDS)
        await asyncio.sleep(RETIRE_POLL_SECONDS)       # a REST call picked just before the swap finishes
        self.retiring.discard(deployment)
        await _stop_node(deployment.node, 0.0)
        log.info("version %s of stage %s (%s) retired", deployment.version, deployment.stage, deployment.api)

    def gateway_of(self, key: str) -> Gateway | None:
        """The gateway serving deployment `key` (`api/stage/version[/canary]`) here, for an orphan's $disconnect:
        that deployment (the current one before a retiring one), else the same version on the same stage on the
        other side of the canary (a promoted canary); None when this node does not serve that version there."""
        live = self.live()
        for deployment in live:
            if deployment.gateway.deployment == key:
                return deployment.gateway
        version = key.removesuffix("/canary")
        for deployment in live:
            if deployment.gateway.deployment.removesuffix("/canary") == version:
                return deployment.gateway
        return None

    def live(self) -> list[Deployment]:
        """Every deployment holding connections or taking new ones."""
        return list(self.routing.deployments) + [d for d in self.retiring if d not in self.routing.deployments]

    async def stop(self, grace_seconds: float) -> None:
        for task in list(self.retirements):
            task.cancel()
        deployments = self.live()
        self.retiring.clear()
        await asyncio.gather(*(_stop_node(d.node, grace_seconds) for d in deployments))

    # ----- what a listener asks ------------------------------------------------------------------------

    def front(self, port: int | None) -> PortFront:
        return PortFront(self, port)

    @property
    def single(self) -> bool:
        return self.routing.single

    def metrics(self) -> bytes:
        if self.single and not self.retiring:
            return self.routing.first.gateway.metrics.render()
        return render_all(d.gateway.metrics for d in self.live())

    def health(self) -> HttpResponse:
        if self.single and not self.retiring:
            return self.routing.first.node.router.health()
        first = self.routing.first.gateway
        ok = first.accepting
        apis = {name: {stage.name: {"version": stage.main.version,
                                    **({"canary": stage.canary.version, "percentTraffic": stage.percent}
                                       if stage.canary is not None else {})}
                       for stage in api.stages.values()}
                for name, api in self.routing.apis.items()}
        payload = {"status": "ok" if ok else "stopping", "node": self.base_id, "apis": apis,
                   "connections": sum(len(d.gateway.connections) for d in self.live()),
                   "retiring": len(self.retiring), **first.registry.health(),
                   **fdlimit.health_fields()}
        return HttpResponse.json(200 if ok else 503, payload)


class PortFront:
    """What one listening port asks the site: which gateway an upgrade goes to, and the answer to a request."""

    def __init__(self, site: Site, port: int | None) -> None:
        self.site = site
        self.port = port

    def _stage(self, request: HttpRequest | None, raw_path: str) -> tuple[ApiRoute | None, StageRoute | None]:
        routing = self.site.routing
        api = routing.api_for(self.port, request.headers.get("host") if request is not None else None)
        if api is None:
            return None, None
        parts = raw_path.split("/", 2)
        name = unquote(parts[1]) if len(parts) > 1 else ""
        return api, api.stages.get(name)

    def pick(self, request: HttpRequest) -> Gateway | HttpResponse:
        """The gateway a WebSocket upgrade is served by (canary or main, once, for the connection's life)."""
        api, stage = self._stage(request, request.raw_path)
        path = unquote(request.raw_path).rstrip("/")
        if stage is not None and request.method == "GET" and path == f"/{stage.name}/@inspect/ws":
            return stage.main.gateway           # the inspector: the stage's main version, whatever the canary
        if stage is None or request.method != "GET" or path != f"/{stage.name}":
            names = ", ".join(f"/{s}" for s in (api.stages if api is not None else ()))
            return plain_error(404, f"Not Found: WebSocket connections go to {names or 'no stage here'}")
        return stage.pick().gateway

    def open_inspector(self, request: HttpRequest, transport: asyncio.Transport, backlog: bytes,
                       open_sockets: set[OpenSocket]) -> HttpResponse | None:
        """`/{stage}/@inspect/ws`: the management WebSocket of the stage's main deployment (its own
        management.allowFrom and management.auth decide)."""
        _, stage = self._stage(request, request.raw_path)
        if stage is None:
            return plain_error(404, "Not Found")
        return stage.main.node.router.inspector.open(request, transport, backlog, open_sockets)

    def gateway(self) -> Gateway:
        """The gateway whose metrics and settings the port's plain HTTP handling uses."""
        routing = self.site.routing
        api = routing.api_for(self.port, None)
        if api is not None and api.stages:
            return next(iter(api.stages.values())).main.gateway
        return routing.first.gateway

    def body_limit_for(self, raw_path: str) -> tuple[int, HttpResponse]:
        _, stage = self._stage(None, raw_path)
        if stage is None:
            for candidate in self.site.routing.apis.values():     # a Host-matched API: its stage by name
                if candidate.port == self.port:
                    stage = candidate.stages.get(unquote(raw_path.split("/", 2)[1]) if "/" in raw_path else "")
                    if stage is not None:
                        break
        if stage is None:
            return self.site.routing.first.node.router.body_limit_for(raw_path)
        return stage.main.node.router.body_limit_for(raw_path)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.raw_path
        if path == "/@reload" and self.port is None:
            return await self.reload(request)
        if self.site.single and not self.site.retiring:       # one API, one stage: its router answers all
            return await self.site.routing.first.node.router.handle(request)
        if path == "/health":
            return self.site.health()
        if path == "/metrics":       # every deployment's figures: the management networks only, as one API's
            refused = self.management_refusal(request, "/metrics")
            if refused is not None:
                return refused
            return HttpResponse(200, self.site.metrics(), [("Content-Type", CONTENT_TYPE)])
        _, stage = self._stage(request, path)
        if stage is None:
            return plain_error(404, "Not Found")
        if path.rstrip("/") == f"/{stage.name}/@inspect":     # the page of the socket above
            return await stage.main.node.router.handle(request)
        if path == f"/{stage.name}/@cache":      # a stage flush reaches its canary's cache too
            answer = await stage.main.node.router.handle(request)
            if answer.status == 202 and stage.canary is not None:
                with contextlib.suppress(CacheUnavailable):
                    await stage.canary.node.rest.flush_cache()
            return answer
        return await stage.pick().node.router.handle(request)

    def management_refusal(self, request: HttpRequest, what: str) -> HttpResponse | None:
        """API Gateway's 403 for a site-wide management path (/metrics, /@reload) asked from outside the first
        API's management.allowFrom; None when the source may ask."""
        first = self.site.routing.first.node.api
        try:
            source = ipaddress.ip_address(request.source_ip)
            allowed = any(source in ipaddress.ip_network(n) for n in first.management_allow_from)
        except ValueError:
            allowed = False
        if allowed:
            return None
        return HttpResponse.aws_error(403, "ForbiddenException", f"{what} is not allowed from this address "
                                      "(see management.allowFrom)")

    async def reload(self, request: HttpRequest) -> HttpResponse:
        """`POST /@reload` (wsgw reload): the management networks only, like @connections."""
        refused = self.management_refusal(request, "reload")
        if refused is not None:
            return refused
        if request.method != "POST":
            return plain_error(405, "Method Not Allowed: POST /@reload")
        if self.site.reloader is None:
            return plain_error(404, "Not Found: this node was not started from a file")
        try:
            lines = await self.site.reloader()
        except ConfigError as exc:
            return HttpResponse(400, json.dumps({"reloaded": False, "problems": [str(p) for p in exc.problems]})
                                .encode(), [("Content-Type", "application/json")])
        return HttpResponse.json(200, {"reloaded": True, "stages": lines})


def share_stage_buckets(routing: Routing) -> None:
    """Each canary throttles with its stage's buckets (the main version's): a stage takes its rate as a whole."""
    for api in routing.apis.values():
        for stage in api.stages.values():
            if stage.canary is not None:
                stage.canary.gateway.throttle.share_stage(stage.main.gateway.throttle)


def site_host_names(config: SiteConfig, environ: Mapping[str, str]) -> tuple[str, ...]:
    """AWS's host names of every API, stage and version the site serves (`api_host_names`), each once."""
    names: dict[str, None] = {}
    for site_api in config.apis.values():
        for stage in site_api.stages.values():
            for api in (stage.api, *((stage.canary.api,) if stage.canary is not None else ())):
                names.update(dict.fromkeys(api_host_names(api, environ)))
    return tuple(names)


async def _start_node(node: Node) -> None:
    if node.trust is not None:
        node.trust.write()          # the file handlers' AWS_CA_BUNDLE points at
    node.start_observing()
    await node.gateway.start()
    await node.consumers.start()          # pushes from workers through queues, once the gateway delivers


async def _stop_node(node: Node, grace_seconds: float) -> None:
    await node.consumers.stop()           # no push is taken that the node could no longer deliver
    await node.gateway.shutdown(grace_seconds)
    await node.rest.close()
    await asyncio.to_thread(node.stop_observing)    # after every $disconnect: their lines are written too


def with_key_prefix(url: str, api: str) -> str:
    """The registry URL with the API's own key prefix (`<prefix>:<api>`), so APIs share one Redis keyed apart."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), "wsgw")
    query = [(k, v) for k, v in query if k != "key_prefix"] + [("key_prefix", f"{prefix}:{api}")]
    return urlunsplit(parts._replace(query=urlencode(query)))
