"""HTTP APIs' parameter mapping on the REST front: the route's `requestParameters` change the payload 2.0 event
before any integration sees it, its `responseParameters` change the integration's answer before the client
does (the rules themselves are pure, in wsgw.aws.parameter_mapping; docs/parameter-mapping.md).

Every integration type that receives the event sees the mapped headers, query string and path; the `http`
integration forwards them as AWS's HTTP_PROXY forwards a request, `overwrite:path` included (through
`MAPPED_PATH`, set around the call).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from wsgw.aws.parameter_mapping import MappingSource, RequestMapping, ResponseMapping, context_variables
from wsgw.integrations.http_proxy import MAPPED_PATH
from wsgw.rest.events import HttpResult, joined_pairs

__all__ = ["MAPPED_PATH", "map_request", "map_response", "request_source"]


def _body_text(event: dict[str, Any]) -> str:
    raw = event.get("body")
    if not isinstance(raw, str):
        return ""
    return base64.b64decode(raw).decode("utf-8", "replace") if event.get("isBase64Encoded") else raw


def request_source(event: dict[str, Any], request_path: str, principal_id: str | None) -> MappingSource:
    """The request as mapping values read it (`$request.*`, `$context.*`, `$stageVariables.*`)."""
    headers = event.get("headers") or {}
    context = context_variables(event.get("requestContext") or {})
    if principal_id is not None and isinstance(context.get("authorizer"), dict):
        context["authorizer"].setdefault("principalId", principal_id)
    return MappingSource(
        body=_body_text(event), context=context, stage_variables=event.get("stageVariables") or {},
        headers=dict(headers), query=event.get("queryStringParameters") or {},
        path=event.get("pathParameters") or {}, request_path=request_path)


def map_request(event: dict[str, Any], mapping: RequestMapping, source: MappingSource, stage: str) -> str | None:
    """Apply `requestParameters` to `event` in place; the new path below the stage, or None. MappingError when
    a mapped value would break a header line."""
    headers = list((event.get("headers") or {}).items())
    query = list((event.get("queryStringParameters") or {}).items())
    headers, query, path = mapping.apply(source, headers, query)
    event["headers"] = joined_pairs(headers, lower=True)
    if any(action.target == "querystring" for action in mapping.actions):
        if query:
            event["queryStringParameters"] = joined_pairs(query, lower=False)
        else:
            event.pop("queryStringParameters", None)
        event["rawQueryString"] = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    if path is not None:
        event["rawPath"] = f"/{quote(stage, safe='')}{quote(path, safe='/')}"
        http = event.get("requestContext", {}).get("http")
        if isinstance(http, dict):
            http["path"] = f"/{stage}{path}"
    return path


def map_response(result: HttpResult, mapping: ResponseMapping, source: MappingSource) -> HttpResult:
    """Apply `responseParameters` for the integration's status to its answer (`$response.*` read from it)."""
    if result.status not in mapping.by_status:
        return result
    answer = MappingSource(source.body, source.context, source.stage_variables, source.headers, source.query,
                           source.path, source.request_path,
                           response_headers=joined_pairs(result.headers, lower=True),
                           response_body=result.body.decode("utf-8", "replace"))
    status, headers = mapping.apply(result.status, answer, list(result.headers))
    return HttpResult(status, headers, result.body)
