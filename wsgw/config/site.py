"""What one gateway serves: several APIs, each with versions (API definitions) and stages (a name, its stage
variables, throttles and limits, the version it serves and maybe a canary version).

The file forms, all read by `load_site`:

- today's single API (`stage:` + `routes:`): one version (`default`) served by one stage;
- the same with `stages: {name: {...}}`: every stage serves that one definition;
- `versions: {name: file}` + `stages: {name: {version: ..., canary: {...}}}`;
- `apis: {name: <one of the above> + port: N | hosts: [...]}`.

Each (stage, version) is parsed from the version's raw mapping with the stage's keys laid over it, so stage
variables reach everything that reads them at parse time (integration URIs) exactly as a single file would.
Problems carry the path to them (`apis.chat.stages.prod.canary.version: ...`) so `wsgw check` names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsgw.config import STAGE_PATTERN, ApiConfig, parse_api
from wsgw.config.common import Collector, did_you_mean
from wsgw.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from wsgw.loaders import LoadOptions

DEFAULT_VERSION = "default"
DEFAULT_API = "default"
STAGE_KEYS = {"version", "stageVariables", "throttling", "limits", "canary", "description", "caching"}
CANARY_KEYS = {"version", "percentTraffic", "stageVariableOverrides"}
PLACEMENT_KEYS = {"port", "hosts"}
RESERVED_STAGES = {"health", "metrics"}


@dataclass(frozen=True, slots=True)
class Canary:
    """A share of a stage's new connections (and REST requests) served by another version."""

    version: str
    percent: float                 # 0-100
    api: ApiConfig                 # the canary version with the stage's variables and the overrides


@dataclass(frozen=True, slots=True)
class StageConfig:
    name: str
    version: str
    api: ApiConfig                 # the version's definition as this stage serves it
    canary: Canary | None = None


@dataclass(frozen=True, slots=True)
class SiteApi:
    """One API: where it is served and its stages; `key_prefix` keeps its Redis keys apart from other APIs'."""

    name: str
    stages: dict[str, StageConfig]
    versions: dict[str, str]                  # version name -> the file it came from (for `wsgw check`)
    port: int | None = None                   # its own port; None: the main port
    hosts: tuple[str, ...] = ()               # matched against Host on its port; () = any host
    key_prefix: str | None = None             # None: the registry URL's own prefix


@dataclass(frozen=True, slots=True)
class SiteConfig:
    apis: dict[str, SiteApi] = field(default_factory=dict)
    source: Path | None = None

    def first(self) -> ApiConfig:
        """The first API's first stage (what a single-API caller calls "the API")."""
        api = next(iter(self.apis.values()))
        return next(iter(api.stages.values())).api

    def describe(self) -> list[str]:
        """One line per stage: which version (and canary) serves it, and where."""
        lines = []
        for api in self.apis.values():
            where = f"port {api.port}" if api.port else ("hosts " + ", ".join(api.hosts) if api.hosts else "main port")
            for stage in api.stages.values():
                canary = (f", canary {stage.canary.version} at {stage.canary.percent:g}%"
                          if stage.canary is not None else "")
                name = "" if api.name == DEFAULT_API else f"api {api.name} ({where}): "
                lines.append(f"{name}stage {stage.name} serves version {stage.version}{canary}")
        return lines


def single_site(api: ApiConfig) -> SiteConfig:
    """One already-parsed API as a site: one version served by its one stage."""
    stage = StageConfig(api.stage, DEFAULT_VERSION, api)
    return SiteConfig({DEFAULT_API: SiteApi(DEFAULT_API, {api.stage: stage}, {DEFAULT_VERSION: "(inline)"})})


def load_site(path: str | Path, options: LoadOptions | None = None) -> tuple[SiteConfig, list[ConfigProblem]]:
    """Read a file of any form above; (the site, warnings). ConfigError lists every problem of every part."""
    from wsgw.loaders import load_document

    loaded = load_document(path, options)
    warnings = list(loaded.warnings)
    problems = Collector()
    raw = loaded.raw
    apis: dict[str, SiteApi] = {}
    if isinstance(raw, dict) and "apis" in raw:
        for unknown in set(raw) - {"apis"}:
            problems.add(str(unknown), "with 'apis:', every key belongs to one API (apis.NAME.KEY)")
        entries = raw["apis"]
        if not isinstance(entries, dict) or not entries:
            raise ConfigError.single("apis", "must map API names to definitions, e.g. {chat: {port: 8081, ...}}")
        for name, body in entries.items():
            prefix = f"apis.{name}."
            if not isinstance(name, str) or not STAGE_PATTERN.match(name):
                problems.add(f"apis.{name}", "an API name is 1-128 letters, digits, '-' or '_'")
                continue
            if not isinstance(body, dict):
                problems.add(f"apis.{name}", "must be a mapping: what one wsgw.yaml holds, plus port or hosts")
                continue
            api = _parse_api_entry(name, body, loaded.base_dir, prefix, problems, warnings, options)
            if api is not None:
                apis[name] = api
        _check_placement(apis, problems)
    else:
        if not isinstance(raw, dict):
            raise ConfigError.single("(top level)", "the file must hold a mapping with at least 'routes'")
        api = _parse_api_entry(DEFAULT_API, raw, loaded.base_dir, "", problems, warnings, options, placed=False)
        if api is not None:
            apis[DEFAULT_API] = api
    if problems.problems:
        raise ConfigError(problems.problems)
    return SiteConfig(apis, Path(path)), warnings


def _parse_api_entry(name: str, body: dict[str, Any], base_dir: Path, prefix: str, problems: Collector,
                     warnings: list[ConfigProblem], options: LoadOptions | None,
                     placed: bool = True) -> SiteApi | None:
    port, hosts = _placement(body, prefix, problems) if placed else (None, ())
    body = {k: v for k, v in body.items() if k not in PLACEMENT_KEYS} if placed else body
    versions_raw = body.get("versions")
    definitions: dict[str, tuple[dict[str, Any], Path]] = {}
    files: dict[str, str] = {}
    if versions_raw is not None:
        for unknown in set(body) - {"versions", "stages"}:
            problems.add(f"{prefix}{unknown}", "with 'versions:', the API's keys live in the version files; "
                         "only 'stages' stays here")
        if not isinstance(versions_raw, dict) or not versions_raw:
            problems.add(f"{prefix}versions", "must map version names to files, e.g. {v1: chat-v1.yaml}")
            return None
        for version, file in versions_raw.items():
            key = f"{prefix}versions.{version}"
            if not isinstance(version, str) or not STAGE_PATTERN.match(version):
                problems.add(key, "a version name is 1-128 letters, digits, '-' or '_'")
                continue
            if not isinstance(file, str):
                problems.add(key, "must be the path of a wsgw.yaml, serverless.yml or SAM template")
                continue
            loaded = _load_version(base_dir / file, key, problems, warnings, options)
            if loaded is not None:
                definitions[version] = loaded
                files[version] = file
    else:
        definitions[DEFAULT_VERSION] = ({k: v for k, v in body.items() if k != "stages"}, base_dir)
        files[DEFAULT_VERSION] = "(inline)"
    # each version is validated once on its own (its problems reported once, named by the version), then
    # once per stage that serves it (problems only the stage's keys can cause)
    bad = set()
    for version, (raw_version, version_dir) in definitions.items():
        where = f"{prefix}versions.{version}: " if versions_raw is not None else prefix
        if _parse(raw_version, version_dir, where, problems) is None:
            bad.add(version)
    stages_raw = body.get("stages")
    if stages_raw is None:
        if versions_raw is not None:
            problems.add(f"{prefix}stages", "name at least one stage, e.g. {prod: {version: v1}}")
            return None
        only = definitions[DEFAULT_VERSION][0]
        stages_raw = {str(only.get("stage", "dev")): {}}
        plain = True
    else:
        plain = False
    if not isinstance(stages_raw, dict) or not stages_raw:
        problems.add(f"{prefix}stages", "must map stage names to {version: NAME, ...}")
        return None
    stages: dict[str, StageConfig] = {}
    for stage_name, spec in stages_raw.items():
        stage = _parse_stage(str(stage_name), spec, definitions, bad, f"{prefix}stages.{stage_name}", problems,
                             plain)
        if stage is not None:
            stages[stage.name] = stage
    if not stages:
        return None
    key_prefix = None if not placed else f"wsgw:{name}"
    return SiteApi(name, stages, files, port, hosts, key_prefix)


def _placement(body: dict[str, Any], prefix: str, problems: Collector) -> tuple[int | None, tuple[str, ...]]:
    port = body.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems.add(f"{prefix}port", "must be a TCP port (1-65535)")
        port = None
    hosts_raw = body.get("hosts", [])
    if isinstance(hosts_raw, str):
        hosts_raw = [hosts_raw]
    if not isinstance(hosts_raw, list) or not all(isinstance(h, str) and h for h in hosts_raw):
        problems.add(f"{prefix}hosts", "must be a list of host names, e.g. [chat.example.com]")
        hosts_raw = []
    return port, tuple(h.lower() for h in hosts_raw)


def _check_placement(apis: dict[str, SiteApi], problems: Collector) -> None:
    """Every request must find one API: per port, host names are claimed once and one API at most takes any host."""
    claimed: dict[tuple[int | None, str], str] = {}
    for api in apis.values():
        for host in api.hosts or ("*",):
            other = claimed.setdefault((api.port, host), api.name)
            if other != api.name:
                where = f"port {api.port}" if api.port else "the main port"
                what = f"host {host}" if host != "*" else "every host (no 'hosts:')"
                problems.add(f"apis.{api.name}", f"{what} on {where} is already served by API '{other}'; "
                             "give one of them its own port or hosts")


def _load_version(path: Path, key: str, problems: Collector, warnings: list[ConfigProblem],
                  options: LoadOptions | None) -> tuple[dict[str, Any], Path] | None:
    from wsgw.loaders import LoadFailed, load_document

    try:
        loaded = load_document(path, options)
    except LoadFailed as exc:
        warnings.extend(ConfigProblem(f"{key}: {w.key}", w.message) for w in exc.warnings)
        problems.problems.extend(ConfigProblem(f"{key}: {p.key}", p.message) for p in exc.problems)
        return None
    except ConfigError as exc:
        problems.problems.extend(ConfigProblem(f"{key}: {p.key}", p.message) for p in exc.problems)
        return None
    warnings.extend(ConfigProblem(f"{key}: {w.key}", w.message) for w in loaded.warnings)
    if not isinstance(loaded.raw, dict):
        problems.add(key, "the file must hold a mapping with at least 'routes'")
        return None
    if "versions" in loaded.raw or "apis" in loaded.raw:
        problems.add(key, "a version file holds one API definition, not 'versions' or 'apis'")
        return None
    return {k: v for k, v in loaded.raw.items() if k != "stages"}, loaded.base_dir


def _parse_stage(name: str, spec: Any, definitions: dict[str, tuple[dict[str, Any], Path]], bad: set[str],
                 key: str, problems: Collector, plain: bool) -> StageConfig | None:
    if not STAGE_PATTERN.match(name) or name.startswith("@") or name in RESERVED_STAGES:
        problems.add(key, "a stage name is 1-128 letters, digits, '-' or '_', not 'health' or 'metrics'")
        return None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.add(key, "must be a mapping, e.g. {version: v1, stageVariables: {color: blue}}")
        return None
    for unknown in set(spec) - STAGE_KEYS:
        problems.add(f"{key}.{unknown}", "unknown key" + did_you_mean(str(unknown), STAGE_KEYS))
    version = spec.get("version")
    if version is None and len(definitions) == 1:
        version = next(iter(definitions))
    if not isinstance(version, str) or version not in definitions:
        problems.add(f"{key}.version", f"'{version}' is not one of the versions: " + ", ".join(sorted(definitions)))
        return None
    if version in bad:
        return None
    variables = spec.get("stageVariables") or {}
    if not isinstance(variables, dict):
        problems.add(f"{key}.stageVariables", "must be a mapping of names to string values")
        variables = {}
    main = _stage_api(definitions[version], name, spec, variables, {}, f"{key} (version {version}): ", problems,
                      plain)
    canary = None
    raw_canary = spec.get("canary")
    if raw_canary is not None:
        canary = _parse_canary(raw_canary, name, spec, variables, definitions, bad, f"{key}.canary", problems)
    if main is None:
        return None
    return StageConfig(name, version, main, canary)


def _parse_canary(raw: Any, name: str, spec: dict[str, Any], variables: dict[str, Any],
                  definitions: dict[str, tuple[dict[str, Any], Path]], bad: set[str], key: str,
                  problems: Collector) -> Canary | None:
    if not isinstance(raw, dict):
        problems.add(key, "must be a mapping, e.g. {version: v2, percentTraffic: 10}")
        return None
    for unknown in set(raw) - CANARY_KEYS:
        problems.add(f"{key}.{unknown}", "unknown key" + did_you_mean(str(unknown), CANARY_KEYS))
    version = raw.get("version")
    if not isinstance(version, str) or version not in definitions:
        problems.add(f"{key}.version", f"'{version}' is not one of the versions: " + ", ".join(sorted(definitions)))
        return None
    percent = raw.get("percentTraffic", 0)
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        problems.add(f"{key}.percentTraffic", "must be a number from 0 to 100")
        return None
    if version in bad:
        return None
    overrides = raw.get("stageVariableOverrides") or {}
    if not isinstance(overrides, dict):
        problems.add(f"{key}.stageVariableOverrides", "must be a mapping of names to string values")
        overrides = {}
    api = _stage_api(definitions[version], name, spec, variables, overrides, f"{key} (version {version}): ",
                     problems, False)
    return Canary(version, float(percent), api) if api is not None else None


def _stage_api(definition: tuple[dict[str, Any], Path], name: str, spec: dict[str, Any], variables: dict[str, Any],
               overrides: dict[str, Any], where: str, problems: Collector, plain: bool) -> ApiConfig | None:
    """The version's raw mapping with the stage laid over it, parsed as one file would be."""
    raw, base_dir = definition
    if plain:
        return _parse(raw, base_dir, "", problems)
    merged = dict(raw)
    merged["stage"] = name
    own = raw.get("stageVariables")
    merged["stageVariables"] = {**(own if isinstance(own, dict) else {}), **variables, **overrides}
    if spec.get("throttling") is not None:
        merged["throttling"] = spec["throttling"]
    if spec.get("caching") is not None:        # the stage's cache settings win over the version's, key by key
        caching = raw.get("caching")
        stage_caching = spec["caching"]
        merged["caching"] = ({**(caching if isinstance(caching, dict) else {}), **stage_caching}
                             if isinstance(stage_caching, dict) else stage_caching)
    if spec.get("limits") is not None:
        limits = raw.get("limits")
        stage_limits = spec["limits"]
        merged["limits"] = ({**(limits if isinstance(limits, dict) else {}), **stage_limits}
                            if isinstance(stage_limits, dict) else stage_limits)
    return _parse(merged, base_dir, where, problems)


def _parse(raw: dict[str, Any], base_dir: Path, where: str, problems: Collector) -> ApiConfig | None:
    try:
        return parse_api(raw, base_dir)
    except ConfigError as exc:
        problems.problems.extend(ConfigProblem(f"{where}{p.key}", p.message) for p in exc.problems)
        return None
