"""An AWS SAM / CloudFormation template of a WebSocket API → the raw wsgw.yaml mapping.

Read: AWS::Serverless::Function (Handler, CodeUri, Runtime, Environment, MemorySize, Timeout, FunctionName,
ReservedConcurrentExecutions,
HttpApi events, Globals.Function), AWS::ApiGatewayV2::Api (ProtocolType WEBSOCKET — or HTTP, whose routes go
to the REST front — RouteSelectionExpression), ::Route (RequestModels, ModelSelectionExpression), ::Integration
(AWS_PROXY to a function, AWS and AWS_PROXY with IntegrationSubtype to a service, MOCK, HTTP, HTTP_PROXY;
RequestTemplates, TemplateSelectionExpression, PassthroughBehavior), ::IntegrationResponse, ::Model,
::Authorizer (REQUEST, JWT), ::Stage (StageName, StageVariables) and ::RouteResponse, with
Parameters, Mappings and Conditions. Everything else is reported: errors when the API would be served
differently, warnings when ignoring it is harmless locally (IAM, tables, permissions, logging …). A REST API
(v1) stage's cache settings are each reported by key with their wsgw.yaml equivalent (`rest_stage_caching`).
"""

from __future__ import annotations

import json
import re
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

SAM_FUNCTION = "AWS::Serverless::Function"
QUIET_TYPES = {"AWS::Lambda::Permission", "AWS::ApiGatewayV2::Deployment", "AWS::Logs::LogGroup"}
FUNCTION_KEYS = {"Handler", "CodeUri", "Runtime", "Environment", "MemorySize", "Timeout", "FunctionName", "Events",
                 "ReservedConcurrentExecutions"}
FUNCTION_QUIET = {"Description", "Architectures", "Tags", "AutoPublishAlias", "PackageType", "Role", "Policies",
                  "Tracing", "LoggingConfig", "RuntimeManagementConfig", "EphemeralStorage"}
FUNCTION_WARN = {
    "Layers": "Lambda layers are not mounted locally; install the layer's packages into the environment instead",
    "Policies": "IAM is not enforced locally; handlers use your own AWS credentials",
    "Role": "IAM is not enforced locally; handlers use your own AWS credentials",
    "VpcConfig": "no VPC locally; the handler reaches what this machine reaches",
    "ProvisionedConcurrencyConfig": "concurrency limits are not applied locally",
    "DeadLetterQueue": "not used locally: failed invocations are logged",
    "EventInvokeConfig": "not used locally: failed invocations are logged",
    "FunctionUrlConfig": "function URLs are not served; route HTTP through an HttpApi event instead",
}
# an Integration's mapping properties → wsgw's option names (the same words, camelCase)
INTEGRATION_MAPPING = {"RequestTemplates": "requestTemplates",
                       "TemplateSelectionExpression": "templateSelectionExpression",
                       "PassthroughBehavior": "passthroughBehavior"}
INTEGRATION_KEYS = {"ApiId", "IntegrationType", "IntegrationUri", "IntegrationMethod", "TimeoutInMillis",
                    "Description", "PayloadFormatVersion", "IntegrationResponseSelectionExpression",
                    "CredentialsArn", "ConnectionType", *INTEGRATION_MAPPING}
HTTP_API_MAPPING_KEYS = {"RequestParameters", "ResponseParameters"}   # carried to the REST route (http_mapping)
SERVICE_KEYS = {"IntegrationSubtype", "RequestParameters"}     # read by aws_service_integration (AWS, AWS_PROXY)
STATUS_SELECTION = ("${integration.response.statuscode}", "$integration.response.statuscode")
INTEGRATION_RESPONSE_KEYS = {"ApiId", "IntegrationId", "IntegrationResponseKey", "ResponseTemplates",
                             "TemplateSelectionExpression"}
_FUNCTION_ARN = re.compile(r"arn:aws:lambda:[^:]*:[^:]*:function:([^/:]+)")


def looks_like_template(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("Resources"), dict) and (
        "AWSTemplateFormatVersion" in doc or "Transform" in doc
        or any(isinstance(r, dict) and str(r.get("Type", "")).startswith("AWS::") for r in doc["Resources"].values()))


class _Sam:
    def __init__(self, doc: dict[str, Any], base_dir: Path, options: LoadOptions, out: Translation) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.out = out
        self.stage_option = options.stage
        region = options.region or "us-east-1"
        self.resolver = IntrinsicResolver(doc, options.params, region, "000000000000", base_dir.name or "stack",
                                          out.error)
        self.region = region
        self._props: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        for logical, resource in (doc.get("Resources") or {}).items():
            if not isinstance(resource, dict) or "Type" not in resource:
                out.error(f"Resources.{logical}", "must be a mapping with a Type")
                continue
            condition = resource.get("Condition")
            if isinstance(condition, str) and not self.resolver.condition(condition, f"Resources.{logical}"):
                continue
            self.resources[str(logical)] = resource
        self.names = {self.resolver.physical_name(lid): lid for lid, r in self.resources.items()
                      if r["Type"] in (SAM_FUNCTION, "AWS::Lambda::Function")}
        self.functions: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ helpers

    def props(self, logical: str) -> dict[str, Any]:
        """A resource's Properties with intrinsics resolved (once, so each problem is reported once)."""
        if logical not in self._props:
            resolved = self.resolver.resolve_tree(self.resources[logical].get("Properties") or {},
                                                  f"Resources.{logical}.Properties")
            self._props[logical] = resolved if isinstance(resolved, dict) else {}
        return self._props[logical]

    def of_type(self, kind: str) -> list[str]:
        return [lid for lid, r in self.resources.items() if r["Type"] == kind]

    def function_for_uri(self, uri: Any, key: str) -> dict[str, Any] | None:
        """The python integration for an AWS_PROXY IntegrationUri / AuthorizerUri naming a function here."""
        match = _FUNCTION_ARN.search(uri) if isinstance(uri, str) else None
        logical = self.names.get(match.group(1)) if match else None
        if logical is None:
            self.out.error(key, f"'{uri}' does not name a Lambda function defined in this template; "
                           "only functions of this template can run locally")
            return None
        if logical not in self.functions:
            self.out.error(key, f"function '{logical}' cannot run locally (see its own problems)")
            return None
        return dict(self.functions[logical])

    # ------------------------------------------------------------------ functions

    def read_functions(self) -> None:
        globals_ = (self.doc.get("Globals") or {}).get("Function") or {}
        for logical in self.of_type(SAM_FUNCTION):
            key = f"Resources.{logical}.Properties"
            raw = self.resources[logical].get("Properties") or {}
            merged = {**globals_, **raw}
            if "Environment" in globals_ and "Environment" in raw:
                merged["Environment"] = {"Variables": {**(globals_["Environment"].get("Variables") or {}),
                                                       **(raw["Environment"].get("Variables") or {})}}
            props = self.resolver.resolve_tree(merged, key)
            if not isinstance(props, dict):
                continue
            for name in props:
                if name in FUNCTION_WARN:
                    self.out.warn(f"{key}.{name}", FUNCTION_WARN[name] + "; ignored")
                elif name not in FUNCTION_KEYS | FUNCTION_QUIET:
                    self.out.warn(f"{key}.{name}", "not supported locally; ignored")
            if props.get("PackageType") == "Image" or "ImageUri" in props or "InlineCode" in props:
                self.out.error(key, "only zip functions with CodeUri can run locally (no images or InlineCode)")
                continue
            base = function_integration(self.out, props.get("Runtime"), props.get("Handler"), f"{key}.Runtime",
                                        f"{key}.Handler", "'module.function' (e.g. app.lambda_handler)")
            if base is None:
                continue
            code_uri = props.get("CodeUri", ".")
            if not isinstance(code_uri, str):
                self.out.error(f"{key}.CodeUri", "must be a local folder (an S3 location cannot run locally)")
                continue
            integration: dict[str, Any] = {
                **base, "codeUri": code_uri.rstrip("/") or ".",
                "functionName": self.resolver.physical_name(logical),
                "memorySize": props.get("MemorySize", 128), "timeoutMs": timeout_ms(props.get("Timeout", 3)),
            }
            reserved = props.get("ReservedConcurrentExecutions")
            if reserved is not None and "runtime" in base:
                integration["concurrency"] = concurrency(reserved)
            elif reserved is not None:
                self.out.warn(f"{key}.ReservedConcurrentExecutions", "applies to functions run as processes "
                              "(Node.js, custom runtimes); in-process Python is not limited; ignored")
            environment = string_values((props.get("Environment") or {}).get("Variables"))
            if environment:
                integration["environment"] = environment
            self.functions[logical] = integration
            self.read_events(logical, props.get("Events") or {}, f"{key}.Events")

    def read_events(self, logical: str, events: Any, key: str) -> None:
        if not isinstance(events, dict):
            return
        for name, event in events.items():
            kind = event.get("Type") if isinstance(event, dict) else None
            props = (event.get("Properties") or {}) if isinstance(event, dict) else {}
            if kind == "HttpApi":
                route = f"{str(props.get('Method', 'ANY')).upper()} {props.get('Path', '/')}"
                if not props.get("Path"):
                    route = "$default"
                entry: dict[str, Any] = {"integration": self.functions[logical]}
                auth = props.get("Auth") or {}
                if isinstance(auth, dict) and auth.get("Authorizer") and auth["Authorizer"] != "NONE":
                    self.out.warn(f"{key}.{name}.Properties.Auth", "HttpApi authorizers from the Api resource "
                                  "are not translated; add one under wsgw's 'authorizers' instead")
                self.out.raw.setdefault("http", {}).setdefault("routes", {})[route] = entry
            else:
                self.out.warn(f"{key}.{name}", f"{kind} events are not triggered locally; ignored")

    # ------------------------------------------------------------------ the API

    def read_api(self) -> None:
        apis = self.of_type("AWS::ApiGatewayV2::Api")
        websocket = [a for a in apis if str(self.props(a).get("ProtocolType", "")).upper() == "WEBSOCKET"]
        http_apis = [a for a in apis if a not in websocket]
        for other in self.of_type("AWS::Serverless::WebSocketApi"):
            self.out.error(f"Resources.{other}", "AWS::Serverless::WebSocketApi is not read yet; declare the API "
                           "with AWS::ApiGatewayV2::Api/Route/Integration resources")
        if len(websocket) > 1:
            self.out.error("Resources", f"{len(websocket)} WebSocket APIs ({', '.join(websocket)}); wsgw serves "
                           "one API per file")
            return
        if not websocket:
            if not self.out.raw.get("http"):
                self.out.error("Resources", "no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET")
            return
        api = websocket[0]
        props = self.props(api)
        if props.get("RouteSelectionExpression"):
            self.out.raw["routeSelectionExpression"] = props["RouteSelectionExpression"]
        for name in props:
            if name not in ("Name", "ProtocolType", "RouteSelectionExpression", "Description", "Tags",
                            "DisableSchemaValidation"):
                self.out.warn(f"Resources.{api}.Properties.{name}", "not supported locally; ignored")
        integrations = {lid: self.integration(lid, self.props(lid).get("ApiId") in http_apis)
                        for lid in self.of_type("AWS::ApiGatewayV2::Integration") if self.belongs(lid, api, http_apis)}
        self.integration_responses(integrations)
        self.models(api)
        authorizers = self.read_authorizers(api)
        responses = {self.props(lid).get("RouteId") for lid in self.of_type("AWS::ApiGatewayV2::RouteResponse")}
        self.route_responses()
        for logical in self.of_type("AWS::ApiGatewayV2::Route"):
            route_props = self.props(logical)
            key = f"Resources.{logical}.Properties"
            target = str(route_props.get("Target", ""))
            integration_id = target.split("/", 1)[1] if target.startswith("integrations/") else None
            spec = integrations.get(integration_id) if integration_id else None
            owner = route_props.get("ApiId")
            if owner != api:
                if owner in http_apis and spec is not None:
                    auth_type = str(route_props.get("AuthorizationType", "NONE")).upper()
                    if auth_type != "NONE":     # never serve a guarded route unguarded
                        self.out.error(f"{key}.AuthorizationType", f"{auth_type} on an HTTP API route is not "
                                       "translated yet; declare the route in wsgw.yaml `http.routes` with an "
                                       "`authorizer`, or use NONE for local runs")
                        continue
                    route_key = str(route_props.get("RouteKey"))
                    entry = {"integration": spec, **self.http_mapping(str(integration_id), spec)}
                    self.out.raw.setdefault("http", {}).setdefault("routes", {})[route_key] = entry
                continue
            route: dict[str, Any] = {"integration": spec}
            auth_type = str(route_props.get("AuthorizationType", "NONE")).upper()
            if auth_type == "CUSTOM":
                authorizer = route_props.get("AuthorizerId")
                if authorizer in authorizers:
                    route["authorizer"] = authorizer
                else:
                    self.out.error(f"{key}.AuthorizerId", f"'{authorizer}' is not an Authorizer of this API")
            elif auth_type == "AWS_IAM":
                self.out.error(f"{key}.AuthorizationType", "AWS_IAM (SigV4) authorization is not checked locally; "
                               "use a REQUEST authorizer, or NONE for local runs")
            if spec is None:
                if integration_id not in integrations:
                    self.out.error(f"{key}.Target", f"'{target}' is not 'integrations/<an Integration of this API>'")
                continue
            route_key = str(route_props.get("RouteKey"))
            if route_props.get("RouteResponseSelectionExpression") or logical in responses:
                route["routeResponse"] = True
            if route_props.get("ApiKeyRequired"):
                self.out.warn(f"{key}.ApiKeyRequired", "API keys are not checked locally; ignored")
            if route_props.get("RequestModels"):
                route["requestModels"] = route_props["RequestModels"]
            if route_props.get("ModelSelectionExpression"):
                route["modelSelectionExpression"] = route_props["ModelSelectionExpression"]
            self.out.raw.setdefault("routes", {})[route_key] = route
        self.read_stage(api)

    def http_mapping(self, logical: str, spec: dict[str, Any]) -> dict[str, Any]:
        """An HTTP API integration's parameter mapping, as the REST route's `requestParameters` and
        `responseParameters` (CloudFormation writes a response map as {status: {ResponseParameters:
        [{Destination, Source}]}}; the CLI's flat {status: {destination: source}} is taken too). An AWS or
        AWS_PROXY service integration keeps its RequestParameters (its own meaning) inside the integration."""
        props = self.props(logical)
        out: dict[str, Any] = {}
        if props.get("RequestParameters") and str(spec.get("type", "")).upper() not in ("AWS", "AWS_PROXY"):
            out["requestParameters"] = props["RequestParameters"]
        raw = props.get("ResponseParameters")
        if isinstance(raw, dict) and raw:
            response: dict[str, Any] = {}
            for status, mapping in raw.items():
                listed = mapping.get("ResponseParameters") if isinstance(mapping, dict) else None
                if isinstance(listed, list):
                    response[str(status)] = {str(p.get("Destination")): p.get("Source") for p in listed
                                             if isinstance(p, dict)}
                else:
                    response[str(status)] = mapping
            out["responseParameters"] = response
        return out

    def belongs(self, logical: str, api: str, http_apis: list[str]) -> bool:
        return self.props(logical).get("ApiId") in (api, *http_apis)

    def integration(self, logical: str, http_api: bool = False) -> dict[str, Any] | None:
        """One Integration as wsgw's spec; an HTTP API's may carry parameter mapping (see http_mapping)."""
        props = self.props(logical)
        key = f"Resources.{logical}.Properties"
        kind = str(props.get("IntegrationType", "")).upper()
        spec: dict[str, Any] | None
        if kind == "AWS_PROXY" and props.get("IntegrationSubtype"):
            spec = aws_service_integration(props, SAM_AWS_PROXY_KEYS, {"type": "AWS_PROXY"})
        elif kind == "AWS_PROXY":
            spec = self.function_for_uri(props.get("IntegrationUri"), f"{key}.IntegrationUri")
        elif kind == "AWS":
            spec = aws_service_integration(props, SAM_AWS_KEYS, {"type": "AWS", "httpMethod": "POST"})
        elif kind == "MOCK":
            spec = {"type": "MOCK"}
        elif kind in ("HTTP_PROXY", "HTTP"):
            # the same word as on AWS: HTTP_PROXY passes the request through, HTTP maps it with templates
            spec = {"type": kind, "uri": props.get("IntegrationUri")}
            if props.get("IntegrationMethod"):
                spec["method"] = props["IntegrationMethod"]
        else:
            self.out.error(f"{key}.IntegrationType", f"'{kind}' is not served locally (AWS, AWS_PROXY, MOCK, "
                           "HTTP, HTTP_PROXY)")
            return None
        if spec is None:
            return None
        if "TimeoutInMillis" in props:
            spec["timeoutMs"] = int(props["TimeoutInMillis"])
        mapped = {name: value for name, value in props.items() if name in INTEGRATION_MAPPING}
        if mapped and kind in ("AWS_PROXY", "HTTP_PROXY"):
            for name in mapped:
                self.out.error(f"{key}.{name}", f"a {kind} integration passes the request through; templates "
                               "apply to MOCK, HTTP and AWS integrations")
        elif mapped:
            spec.update({INTEGRATION_MAPPING[name]: value for name, value in mapped.items()})
        selection = props.get("IntegrationResponseSelectionExpression")
        if selection is not None and selection not in STATUS_SELECTION:
            self.out.error(f"{key}.IntegrationResponseSelectionExpression", "wsgw selects integration responses "
                           "by status code (${integration.response.statuscode}) only")
        service = kind == "AWS" or (kind == "AWS_PROXY" and bool(props.get("IntegrationSubtype")))
        if props.get("CredentialsArn") and not service:
            self.out.warn(f"{key}.CredentialsArn", "IAM is not enforced locally; ignored")
        if str(props.get("ConnectionType", "INTERNET")).upper() != "INTERNET":
            self.out.error(f"{key}.ConnectionType", "VPC links are not served locally; use INTERNET")
        allowed = INTEGRATION_KEYS | (SERVICE_KEYS if service else set())
        if http_api:
            allowed |= HTTP_API_MAPPING_KEYS
        for name in props:
            if name not in allowed:
                self.out.error(f"{key}.{name}", "not served locally; the API would behave differently from AWS")
        return spec

    def integration_responses(self, integrations: dict[str, dict[str, Any] | None]) -> None:
        """`AWS::ApiGatewayV2::IntegrationResponse`s → their integration's `integrationResponses`."""
        for logical in self.of_type("AWS::ApiGatewayV2::IntegrationResponse"):
            props = self.props(logical)
            key = f"Resources.{logical}.Properties"
            owner = props.get("IntegrationId")
            spec = integrations.get(owner) if isinstance(owner, str) else None
            if spec is None:
                if owner not in integrations:
                    self.out.error(f"{key}.IntegrationId", f"'{owner}' is not an Integration of this API")
                continue
            if spec.get("type") not in ("MOCK", "HTTP", "AWS"):
                self.out.error(f"{key}.IntegrationId", "integration responses apply to MOCK, HTTP and AWS "
                               "integrations (a proxy integration answers with its backend's response)")
                continue
            response: dict[str, Any] = {}
            if props.get("ResponseTemplates"):
                response["responseTemplates"] = props["ResponseTemplates"]
            if props.get("TemplateSelectionExpression"):
                response["templateSelectionExpression"] = props["TemplateSelectionExpression"]
            for name in props:
                if name not in INTEGRATION_RESPONSE_KEYS:
                    self.out.error(f"{key}.{name}", "not served locally; the API would behave differently from AWS")
            response_key = str(props.get("IntegrationResponseKey", "$default"))
            spec.setdefault("integrationResponses", {})[response_key] = response

    def route_responses(self) -> None:
        """A RouteResponse turns the route's response on; what else it says is reported, never dropped."""
        for logical in self.of_type("AWS::ApiGatewayV2::RouteResponse"):
            props = self.props(logical)
            key = f"Resources.{logical}.Properties"
            if str(props.get("RouteResponseKey", "$default")) != "$default":
                self.out.error(f"{key}.RouteResponseKey", "only $default route responses are served")
            for name in ("ResponseModels", "ModelSelectionExpression"):
                if name in props:
                    self.out.warn(f"{key}.{name}", "API Gateway does not validate responses against models "
                                  "(they describe the API); ignored")
            for name in sorted(set(props) - {"ApiId", "RouteId", "RouteResponseKey", "ResponseModels",
                                              "ModelSelectionExpression"}):
                self.out.error(f"{key}.{name}", "not served locally; the API would behave differently from AWS")

    def models(self, api: str) -> None:
        """`AWS::ApiGatewayV2::Model`s of the API → `models:` (by Name, the key routes' RequestModels use)."""
        for logical in self.of_type("AWS::ApiGatewayV2::Model"):
            props = self.props(logical)
            if props.get("ApiId") != api:
                continue
            key = f"Resources.{logical}.Properties"
            name, schema = props.get("Name"), props.get("Schema")
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except ValueError as exc:
                    self.out.error(f"{key}.Schema", f"not JSON ({exc})")
                    continue
            if not isinstance(name, str) or not isinstance(schema, dict):
                self.out.error(key, "a model needs a Name and a Schema (a JSON Schema)")
                continue
            content_type = props.get("ContentType", "application/json")
            if content_type != "application/json":
                self.out.warn(f"{key}.ContentType", "models validate JSON bodies; read as application/json")
            self.out.raw.setdefault("models", {})[name] = schema

    def read_authorizers(self, api: str) -> set[str]:
        names: set[str] = set()
        for logical in self.of_type("AWS::ApiGatewayV2::Authorizer"):
            props = self.props(logical)
            if props.get("ApiId") != api:
                continue
            key = f"Resources.{logical}.Properties"
            kind = str(props.get("AuthorizerType", "")).upper()
            sources = props.get("IdentitySource") or []
            if kind == "REQUEST":
                spec = self.function_for_uri(props.get("AuthorizerUri"), f"{key}.AuthorizerUri")
                if spec is None:
                    continue
                entry: dict[str, Any] = {"type": "request", "integration": spec,
                                         "identitySource": list(sources), "resultTtlInSeconds": 0}
            elif kind == "JWT":
                jwt = props.get("JwtConfiguration") or {}
                entry = {"type": "jwt", "identitySource": list(sources), "issuer": jwt.get("Issuer"),
                         "audience": list(jwt.get("Audience") or [])}
            else:
                self.out.error(f"{key}.AuthorizerType", f"'{kind}' is not REQUEST or JWT")
                continue
            if "AuthorizerCredentialsArn" in props:
                self.out.warn(f"{key}.AuthorizerCredentialsArn", "IAM is not enforced locally; ignored")
            self.out.raw.setdefault("authorizers", {})[logical] = entry
            names.add(logical)
        return names

    def read_stage(self, api: str) -> None:
        """Every `AWS::ApiGatewayV2::Stage` of the API becomes a stage (`stages:`, all serving this template);
        with --stage, only that one is served."""
        stages = [lid for lid in self.of_type("AWS::ApiGatewayV2::Stage") if self.props(lid).get("ApiId") == api]
        served: dict[str, dict[str, Any]] = {}
        for lid in stages:
            props = self.props(lid)
            name = props.get("StageName")
            if not isinstance(name, str):
                self.out.warn(f"Resources.{lid}.Properties.StageName", "not a plain name; stage ignored")
                continue
            variables = string_values(props.get("StageVariables"))
            served[name] = {"stageVariables": variables} if variables else {}
            for key in props:
                if key not in ("ApiId", "StageName", "StageVariables", "AutoDeploy", "DeploymentId",
                               "Description", "Tags"):
                    self.out.warn(f"Resources.{lid}.Properties.{key}", "not applied locally; ignored")
        if self.stage_option and self.stage_option in served:
            served = {self.stage_option: served[self.stage_option]}
        first = next(iter(served), None)
        stage = self.stage_option or first or "dev"
        self.out.raw["stage"] = stage
        if len(served) > 1:
            self.out.raw["stages"] = served
        elif first is not None and served[first].get("stageVariables"):
            self.out.raw["stageVariables"] = served[first]["stageVariables"]

    def report_others(self) -> None:
        for kind, where in REST_STAGE_CACHING_OWNERS.items():
            for logical in self.of_type(kind):
                props = self.props(logical)
                holder = props.get(where) if where else props
                prefix = f"Resources.{logical}.Properties" + (f".{where}" if where else "")
                if isinstance(holder, dict):
                    for key, message in rest_stage_caching(holder, prefix):
                        self.out.warn(key, message)
        handled = {SAM_FUNCTION, "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage",
                   "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Authorizer",
                   "AWS::ApiGatewayV2::RouteResponse", "AWS::Serverless::WebSocketApi",
                   "AWS::ApiGatewayV2::IntegrationResponse", "AWS::ApiGatewayV2::Model"}
        for logical, resource in self.resources.items():
            kind = resource["Type"]
            if kind in handled or kind in QUIET_TYPES:
                continue
            hint = ""
            if kind == "AWS::DynamoDB::Table":
                hint = "; point handlers at a local DynamoDB with AWS_ENDPOINT_URL_DYNAMODB"
            elif kind == "AWS::Lambda::Function":
                hint = "; only AWS::Serverless::Function (Handler + CodeUri) runs locally"
            self.out.warn(f"Resources.{logical}", f"{kind} is not created locally{hint}")


# AWS::ApiGatewayV2::Integration properties → wsgw's options of the service integrations (docs/aws-services.md);
# CredentialsArn is the role API Gateway assumes, as `credentials:` is
SAM_AWS_KEYS = {"IntegrationUri": "uri", "IntegrationMethod": "httpMethod", "CredentialsArn": "credentials",
                "RequestTemplates": "requestTemplates", "RequestParameters": "requestParameters",
                "TemplateSelectionExpression": "templateSelectionExpression",
                "PassthroughBehavior": "passthroughBehavior"}
SAM_AWS_PROXY_KEYS = {"IntegrationSubtype": "integrationSubtype", "RequestParameters": "requestParameters",
                      "CredentialsArn": "credentials"}


def aws_service_integration(props: dict[str, Any], keys: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """An AWS or AWS_PROXY (with IntegrationSubtype) integration: its properties under wsgw's option names; the
    options' own checks (wsgw.config.service_integrations) report a bad value under the integration's key."""
    return {**spec, **{option: props[name] for name, option in keys.items() if props.get(name) is not None}}


#: Where a REST API (v1) stage's cache settings stand: the resource's properties, or one of them.
REST_STAGE_CACHING_OWNERS = {"AWS::Serverless::Api": "", "AWS::ApiGateway::Stage": "",
                             "AWS::ApiGateway::Deployment": "StageDescription"}
#: AWS's cache cluster sizes in GB (CacheClusterSize); wsgw's memory store is bounded by caching.maxBytes instead.
CACHE_CLUSTER_SIZES = ("0.5", "1.6", "6.1", "13.5", "28.4", "58.2", "118", "237")
_METHOD_CACHING = {"CachingEnabled": "cachingEnabled", "CacheTtlInSeconds": "cacheTtlInSeconds",
                   "RequireAuthorizationForCacheControl": "requireAuthorizationForCacheControl",
                   "UnauthorizedCacheControlHeaderStrategy": "unauthorizedCacheControlHeaderStrategy"}
_NOT_SERVED = "REST API (v1) resources are not served from templates (their Lambda events are payload 1.0), so its "


def rest_stage_caching(props: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """(key, message) for each cache setting of a REST API (v1) stage: none of it can apply (the API is not
    served), so each is named with what it is in wsgw.yaml instead of being dropped in silence."""
    notes: list[tuple[str, str]] = []

    def note(name: str, wsgw: str) -> None:
        notes.append((name, _NOT_SERVED + f"cache is not run; for http.routes in wsgw.yaml this is {wsgw}"))

    if "CacheClusterEnabled" in props:
        note(f"{key}.CacheClusterEnabled", f"caching.cacheClusterEnabled: {str(props['CacheClusterEnabled']).lower()}")
    size = props.get("CacheClusterSize")
    if size is not None:
        text = str(size)
        sizes = ", ".join(CACHE_CLUSTER_SIZES)
        bound = (f"caching.maxBytes: {int(float(text) * 2**30)} (the memory store's bound)"
                 if text in CACHE_CLUSTER_SIZES else f"caching.maxBytes (AWS's sizes are {sizes} GB)")
        note(f"{key}.CacheClusterSize", bound)
    settings = props.get("MethodSettings")
    for index, setting in enumerate(settings if isinstance(settings, list) else []):
        if not isinstance(setting, dict):
            continue
        encoded = str(setting.get("ResourcePath", "/*"))      # AWS: /resource/sub is written /~1resource~1sub
        path = encoded.replace("~1", "/").replace("~0", "~")
        path = path[1:] if encoded.startswith("/~1") else path
        method = str(setting.get("HttpMethod", "*")).upper()
        where = "caching" if path in ("/*", "*") and method == "*" else f'http.routes["{method} {path}"].caching'
        for name, option in _METHOD_CACHING.items():
            if name in setting:
                value = setting[name]
                note(f"{key}.MethodSettings[{index}].{name}",
                     f"{where}.{option}: {str(value).lower() if isinstance(value, bool) else value}")
        if setting.get("CacheDataEncrypted"):
            notes.append((f"{key}.MethodSettings[{index}].CacheDataEncrypted", _NOT_SERVED + "cache is not run; "
                          "wsgw keeps entries unencrypted in its memory store or your Redis (encrypt Redis at rest "
                          "yourself)"))
    return notes


def translate_sam(doc: dict[str, Any], base_dir: Path, options: LoadOptions) -> Translation:
    out = Translation()
    transform = doc.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform] if transform else []
    for name in transforms:
        if name != "AWS::Serverless-2016-10-31":
            out.warn("Transform", f"'{name}' is not applied locally")
    for section in ("Globals",):
        for kind in (doc.get(section) or {}):
            if kind != "Function":
                out.warn(f"{section}.{kind}", "not applied locally; ignored")
    sam = _Sam(doc, base_dir, options, out)
    sam.read_functions()
    sam.read_api()
    sam.report_others()
    out.raw["region"] = sam.region
    return out
