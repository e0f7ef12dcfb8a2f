"""A Serverless Framework service (serverless.yml) → the raw wsgw.yaml mapping.

Read: `service`, `provider` (runtime, stage, region, environment, memorySize, timeout,
websocketsApiRouteSelectionExpression, httpApi.cors / httpApi.authorizers, logs.websocket / logs.httpApi as the
stage's access log on stdout), `functions.*` (handler, runtime,
environment, memorySize, timeout, name, events: websocket — route, routeResponseSelectionExpression,
authorizer name/identitySource — and httpApi), `custom`/`params` for variables. Everything else is reported:
errors when the API would be served differently than on AWS, warnings when ignoring it is harmless locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsgw.loaders.common import (
    LoadOptions,
    Translation,
    concurrency,
    function_integration,
    string_values,
    timeout_ms,
)
from wsgw.loaders.intrinsics import IntrinsicResolver
from wsgw.loaders.variables import VariableResolver

DEFAULT_MEMORY_MB = 1024          # Serverless Framework's default memorySize
DEFAULT_TIMEOUT_S = 6             # and its default timeout
DEFAULT_IDENTITY_SOURCE = "route.request.header.Auth"   # its default for websocket authorizers

QUIET_TOP = {"service", "provider", "functions", "custom", "params", "package", "frameworkVersion", "app", "org",
             "configValidationMode", "variablesResolutionMode", "deprecationNotificationMode",
             "disabledDeprecations", "unresolvedVariablesNotificationMode", "outputs", "console", "dashboard"}
PROVIDER_USED = {"name", "runtime", "stage", "region", "environment", "memorySize", "timeout",
                 "websocketsApiRouteSelectionExpression", "httpApi", "logs"}
PROVIDER_QUIET = {"websocketsApiName", "websocketsDescription", "stackName", "apiName", "profile", "deploymentBucket",
                  "deploymentPrefix", "stackTags", "tags", "versionFunctions", "lambdaHashingVersion",
                  "architecture", "logRetentionInDays", "deploymentMethod", "apiGateway", "endpointType"}
PROVIDER_WARN = {
    "iam": "IAM is not enforced locally; handlers use your own AWS credentials",
    "iamRoleStatements": "IAM is not enforced locally; handlers use your own AWS credentials",
    "iamManagedPolicies": "IAM is not enforced locally; handlers use your own AWS credentials",
    "role": "IAM is not enforced locally; handlers use your own AWS credentials",
    "vpc": "no VPC locally; handlers reach what this machine reaches",
    "layers": "Lambda layers are not mounted locally; install the layer's packages into the environment",
    "tracing": "X-Ray tracing is not emulated",
    "kmsKeyArn": "environment variables are not encrypted locally",
}
WEBSOCKET_LOG_KEYS = {"accessLogging", "format", "level", "executionLogging", "fullExecutionData"}
EXECUTION_LOGS = ("execution logs are not written locally (wsgw's own log is on stderr: --log-level, "
                  "--log-format)")
LOGS_WARN = {
    "restApi": "no REST API (v1) is served locally",
    "lambda": "Lambda's log settings are not applied locally: handlers log to wsgw's stderr",
    "frameworkLambda": "Lambda's log settings are not applied locally: handlers log to wsgw's stderr",
}
FUNCTION_USED = {"handler", "runtime", "environment", "memorySize", "timeout", "name", "events",
                 "reservedConcurrency"}
FUNCTION_QUIET = {"description", "package", "tags", "architecture", "logRetentionInDays", "module"}
FUNCTION_WARN = {
    "layers": "Lambda layers are not mounted locally; install the layer's packages into the environment instead",
    "role": "IAM is not enforced locally; handlers use your own AWS credentials",
    "iamRoleStatements": "IAM is not enforced locally; handlers use your own AWS credentials",
    "vpc": "no VPC locally; the handler reaches what this machine reaches",
    "provisionedConcurrency": "concurrency limits are not applied locally",
    "url": "function URLs are not served; use an httpApi event",
    "destinations": "not used locally: failed invocations are logged",
    "onError": "not used locally: failed invocations are logged",
    "tracing": "X-Ray tracing is not emulated",
    "kmsKeyArn": "environment variables are not encrypted locally",
}


#: What to do instead of a plugin, where wsgw has an answer. The Framework has no API Gateway cache setting of its
#: own: caching is this plugin's, and it caches REST API (v1) `http` events only (docs/caching.md has sources).
PLUGIN_HINTS = {
    "serverless-python-requirements": "; install requirements.txt into your environment",
    "serverless-api-gateway-caching": "; it caches REST API (v1) http events, which are not served here (and AWS "
                                      "caches no HTTP API); to cache httpApi routes or WebSocket route responses, "
                                      "write caching: in wsgw.yaml",
}


def looks_like_serverless(doc: Any) -> bool:
    return isinstance(doc, dict) and "service" in doc and ("functions" in doc or "provider" in doc)


class _Service:
    def __init__(self, doc: dict[str, Any], options: LoadOptions, out: Translation) -> None:
        self.out = out
        self.raw_doc = doc
        provider_raw: dict[str, Any] = doc["provider"] if isinstance(doc.get("provider"), dict) else {}
        # the stage decides `params`, and variables may read params: settle the stage first
        opts = {k: v for k, v in (("stage", options.stage), ("region", options.region)) if v}
        first = VariableResolver(doc, opts, {}, lambda key, message: None)
        stage = options.stage or first.resolve(provider_raw.get("stage"), "provider.stage") or "dev"
        opts["stage"] = str(stage)
        params = {**self._params(doc.get("params"), str(stage)), **options.params}   # --param k=v is ${param:k}
        self.doc: dict[str, Any] = VariableResolver(doc, opts, params, out.error).resolve(doc)
        provider = self.doc.get("provider")
        self.provider: dict[str, Any] = provider if isinstance(provider, dict) else {}
        self.stage = str(options.stage or self.provider.get("stage") or "dev")
        self.region = str(options.region or self.provider.get("region") or "us-east-1")
        service = self.doc.get("service")
        self.service = str(service.get("name") if isinstance(service, dict) else service)
        resources = (self.doc.get("resources") or {}) if isinstance(self.doc.get("resources"), dict) else {}
        self.cfn = IntrinsicResolver({"Resources": resources.get("Resources") or {}}, {}, self.region,
                                     "000000000000", f"{self.service}-{self.stage}", out.error)
        self.functions: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _params(raw: Any, stage: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            return {}
        merged = dict(raw.get("default") or {})
        merged.update(raw.get(stage) or {})
        return merged

    def environment(self, raw: Any, key: str) -> dict[str, str]:
        """Environment values; CloudFormation references (Ref: Table) resolve to the resource's name."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.out.error(key, "must be a mapping of names to values")
            return {}
        return string_values({name: self.cfn.resolve(value, f"{key}.{name}") for name, value in raw.items()})

    def read_top(self) -> None:
        for name in self.doc:
            if name in QUIET_TOP:
                continue
            if name == "plugins":
                for plugin in self.doc.get("plugins") or []:
                    hint = PLUGIN_HINTS.get(str(plugin), "")
                    self.out.warn(f"plugins.{plugin}", f"plugins do not run locally{hint}")
            elif name == "resources":
                for logical, resource in ((self.doc["resources"] or {}).get("Resources") or {}).items():
                    kind = resource.get("Type") if isinstance(resource, dict) else "?"
                    hint = ("; point handlers at a local DynamoDB with AWS_ENDPOINT_URL_DYNAMODB"
                            if kind == "AWS::DynamoDB::Table" else "")
                    self.out.warn(f"resources.Resources.{logical}", f"{kind} is not created locally{hint}")
            elif name == "useDotenv":
                self.out.warn(name, ".env files are not loaded; export the variables or use ${env:...} fallbacks")
            else:
                self.out.warn(name, "not supported locally; ignored")
        provider_name = self.provider.get("name", "aws")
        if provider_name != "aws":
            self.out.error("provider.name", f"'{provider_name}' is not aws")
        for name in self.provider:
            if name in PROVIDER_WARN:
                self.out.warn(f"provider.{name}", PROVIDER_WARN[name] + "; ignored")
            elif name not in PROVIDER_USED | PROVIDER_QUIET:
                self.out.warn(f"provider.{name}", "not supported locally; ignored")
        raw = self.out.raw
        raw["stage"] = self.stage
        raw["region"] = self.region
        expression = self.provider.get("websocketsApiRouteSelectionExpression")
        if expression:
            raw["routeSelectionExpression"] = expression
        environment = self.environment(self.provider.get("environment"), "provider.environment")
        if environment:
            raw["environment"] = environment
        self.read_logs()

    def read_logs(self) -> None:
        """`provider.logs.websocket` / `.httpApi` → the stage's `accessLogSettings` (one access log for both, on
        stdout instead of a CloudWatch log group, in their `format` when one is given)."""
        logs = self.provider.get("logs")
        if logs is None:
            return
        if not isinstance(logs, dict):
            self.out.error("provider.logs", "must be a mapping (websocket, httpApi, ...)")
            return
        formats: dict[str, str | None] = {}
        for kind, value in logs.items():
            key = f"provider.logs.{kind}"
            if kind in LOGS_WARN:
                self.out.warn(key, LOGS_WARN[kind] + "; ignored")
                continue
            if kind not in ("websocket", "httpApi"):
                self.out.warn(key, "not supported locally; ignored")
                continue
            if value is None or value is False:
                continue
            settings: dict[str, Any] = {} if value is True else value if isinstance(value, dict) else {"": value}
            known = WEBSOCKET_LOG_KEYS if kind == "websocket" else {"format"}
            for name in settings:
                if name not in known:
                    self.out.warn(f"{key}.{name}" if name else key, "not supported locally; ignored")
                elif name in ("level", "executionLogging", "fullExecutionData"):
                    self.out.warn(f"{key}.{name}", EXECUTION_LOGS + "; ignored")
            if settings.get("accessLogging", True) is False:
                continue
            fmt = settings.get("format")
            formats[kind] = fmt if isinstance(fmt, str) else None
        if not formats:
            return
        websocket, http = formats.get("websocket"), formats.get("httpApi")
        if websocket and http and websocket != http:
            self.out.warn("provider.logs.httpApi.format", "wsgw writes one access log per stage: the websocket "
                                                          "format is used for REST requests too")
        chosen = websocket or http
        self.out.raw["accessLogSettings"] = {"destination": "stdout", **({"format": chosen} if chosen else {})}

    def read_functions(self) -> None:
        functions = self.doc.get("functions") or {}
        if not isinstance(functions, dict):
            self.out.error("functions", "must be a mapping of function names to functions")
            return
        for name, fn in functions.items():
            key = f"functions.{name}"
            if not isinstance(fn, dict):
                self.out.error(key, "must be a mapping with at least 'handler'")
                continue
            for option in fn:
                if option in FUNCTION_WARN:
                    self.out.warn(f"{key}.{option}", FUNCTION_WARN[option] + "; ignored")
                elif option not in FUNCTION_USED | FUNCTION_QUIET:
                    self.out.warn(f"{key}.{option}", "not supported locally; ignored")
            if "image" in fn:
                self.out.error(f"{key}.image", "container image functions cannot run locally; use handler")
                continue
            base = function_integration(self.out, fn.get("runtime", self.provider.get("runtime")),
                                        fn.get("handler"), f"{key}.runtime", f"{key}.handler",
                                        "'path/to/module.function'")
            if base is None:
                continue
            integration: dict[str, Any] = {
                **base,
                "functionName": str(fn.get("name") or f"{self.service}-{self.stage}-{name}"),
                "memorySize": fn.get("memorySize", self.provider.get("memorySize", DEFAULT_MEMORY_MB)),
                "timeoutMs": timeout_ms(fn.get("timeout", self.provider.get("timeout", DEFAULT_TIMEOUT_S))),
            }
            environment = self.environment(fn.get("environment"), f"{key}.environment")
            if environment:
                integration["environment"] = environment
            reserved = fn.get("reservedConcurrency")
            if reserved is not None and "runtime" in base:
                integration["concurrency"] = concurrency(reserved)
            elif reserved is not None:
                self.out.warn(f"{key}.reservedConcurrency", "applies to functions run as processes (Node.js, "
                              "custom runtimes); in-process Python is not limited; ignored")
            self.functions[str(name)] = integration

    def read_events(self) -> None:
        functions = self.doc.get("functions") or {}
        for name, integration in self.functions.items():
            events = functions[name].get("events") or []
            if not isinstance(events, list):
                self.out.error(f"functions.{name}.events", "must be a list")
                continue
            for index, event in enumerate(events):
                key = f"functions.{name}.events[{index}]"
                if not isinstance(event, dict) or len(event) != 1:
                    self.out.error(key, "must be a mapping with one event type, e.g. websocket: $connect")
                    continue
                (kind, spec), = event.items()
                if kind == "websocket":
                    self.websocket(integration, spec, f"{key}.websocket")
                elif kind == "httpApi":
                    self.http_api(integration, spec, f"{key}.httpApi")
                elif kind == "http":
                    self.out.warn(f"{key}.http", "REST API (v1) events are not served; use httpApi events")
                else:
                    self.out.warn(f"{key}.{kind}", f"{kind} events are not triggered locally; ignored")

    def websocket(self, integration: dict[str, Any], spec: Any, key: str) -> None:
        if isinstance(spec, str):
            spec = {"route": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("route"), str):
            self.out.error(key, "needs 'route' (e.g. $connect)")
            return
        route_key = spec["route"]
        routes = self.out.raw.setdefault("routes", {})
        if route_key in routes:
            self.out.error(f"{key}.route", f"'{route_key}' is already handled by another function")
            return
        route: dict[str, Any] = {"integration": dict(integration)}
        if spec.get("routeResponseSelectionExpression") is not None:
            route["routeResponseSelectionExpression"] = spec["routeResponseSelectionExpression"]
        for option in spec:
            if option not in ("route", "routeResponseSelectionExpression", "authorizer"):
                self.out.warn(f"{key}.{option}", "not supported locally; ignored")
        if spec.get("authorizer") is not None:
            name = self.authorizer(spec["authorizer"], f"{key}.authorizer")
            if name is not None:
                route["authorizer"] = name
        routes[route_key] = route

    def authorizer(self, spec: Any, key: str) -> str | None:
        if isinstance(spec, str):
            spec = {"arn": spec} if spec.startswith("arn:") else {"name": spec}
        if not isinstance(spec, dict):
            self.out.error(key, "must name a function of this service, or be {name, identitySource}")
            return None
        if "arn" in spec:
            self.out.error(f"{key}.arn", "an authorizer outside this service cannot run locally; "
                           "define it under functions and refer to it by name")
            return None
        name = spec.get("name")
        if name not in self.functions:
            self.out.error(f"{key}.name", f"'{name}' is not a Python function of this service")
            return None
        sources = spec.get("identitySource", [DEFAULT_IDENTITY_SOURCE])
        self.out.raw.setdefault("authorizers", {})[name] = {
            "type": "request", "integration": dict(self.functions[name]),
            "identitySource": [sources] if isinstance(sources, str) else list(sources),
            "resultTtlInSeconds": 0,     # AWS caches only HTTP API Lambda authorizers, never WebSocket ones
        }
        return str(name)

    def http_api(self, integration: dict[str, Any], spec: Any, key: str) -> None:
        if isinstance(spec, str):
            route_key = "$default" if spec == "*" else spec
            spec = {}
        elif isinstance(spec, dict):
            method = str(spec.get("method", "*")).upper()
            path = spec.get("path")
            route_key = "$default" if path in (None, "*") else f"{'ANY' if method == '*' else method} {path}"
        else:
            self.out.error(key, "must be 'METHOD /path' or {method, path}")
            return
        entry: dict[str, Any] = {"integration": dict(integration)}
        authorizer = spec.get("authorizer")
        if authorizer is not None:
            name = authorizer.get("name") if isinstance(authorizer, dict) else authorizer
            if isinstance(authorizer, dict) and authorizer.get("scopes"):      # never serve with fewer checks
                self.out.error(f"{key}.authorizer.scopes", "per-route scopes are not translated; give the JWT "
                               "authorizer `scopes` in wsgw.yaml, or remove them for local runs")
                return
            if name in (self.out.raw.get("authorizers") or {}):
                entry["authorizer"] = name
            else:
                self.out.error(f"{key}.authorizer", f"'{name}' is not under provider.httpApi.authorizers")
        self.out.raw.setdefault("http", {}).setdefault("routes", {})[route_key] = entry

    def read_http_api_settings(self) -> None:
        settings = self.provider.get("httpApi") or {}
        if not isinstance(settings, dict):
            return
        cors = settings.get("cors")
        if cors is True:
            self.out.raw.setdefault("http", {})["cors"] = {"allowOrigins": ["*"]}
        elif isinstance(cors, dict):
            names = {"allowedOrigins": "allowOrigins", "allowedHeaders": "allowHeaders",
                     "allowedMethods": "allowMethods", "allowCredentials": "allowCredentials",
                     "exposedResponseHeaders": "exposeHeaders", "maxAge": "maxAge"}
            self.out.raw.setdefault("http", {})["cors"] = {names[k]: v for k, v in cors.items() if k in names}
        for name, spec in (settings.get("authorizers") or {}).items():
            key = f"provider.httpApi.authorizers.{name}"
            if not isinstance(spec, dict):
                self.out.error(key, "must be a mapping")
                continue
            kind = spec.get("type", "jwt" if "issuerUrl" in spec else "request")
            sources = spec.get("identitySource", "$request.header.Authorization")
            sources = [sources] if isinstance(sources, str) else list(sources)
            if kind == "jwt":
                self.out.raw.setdefault("authorizers", {})[name] = {
                    "type": "jwt", "identitySource": sources, "issuer": spec.get("issuerUrl"),
                    "audience": list(spec.get("audience") or [])}
            elif kind == "request" and spec.get("functionName") in self.functions:
                self.out.raw.setdefault("authorizers", {})[name] = {
                    "type": "request", "integration": dict(self.functions[spec["functionName"]]),
                    "identitySource": sources, "resultTtlInSeconds": int(spec.get("resultTtlInSeconds", 300))}
            else:
                self.out.error(key, "only jwt authorizers and request authorizers naming a function of this "
                               "service (functionName) run locally")
        for name in settings:
            if name not in ("cors", "authorizers", "payload", "name", "id", "metrics", "disableDefaultEndpoint"):
                self.out.warn(f"provider.httpApi.{name}", "not supported locally; ignored")
        if str(settings.get("payload", "2.0")) != "2.0":
            self.out.warn("provider.httpApi.payload", "the REST front sends payload format 2.0")


def translate_serverless(doc: dict[str, Any], base_dir: Path, options: LoadOptions) -> Translation:
    out = Translation()
    service = _Service(doc, options, out)
    service.read_top()
    service.read_functions()
    service.read_http_api_settings()
    service.read_events()
    if not out.raw.get("routes") and not (out.raw.get("http") or {}).get("routes"):
        out.error("functions", "no function has a websocket (or httpApi) event: nothing to serve")
    return out
