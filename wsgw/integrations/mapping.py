"""What a non-proxy integration (`MOCK`, `HTTP`, `AWS`) does around its call, as API Gateway does it: the request
template that builds the backend's body (or passthrough), and the integration response whose template builds
the client's answer. One home for both, so the three types shape requests and responses the same way.

A template that fails (or crosses a sandbox limit) fails the call: the client gets AWS's error frame (WebSocket)
or 500 (REST), the log gets the template's own message, never request data. A body no template may take
(`passthroughBehavior`) is `Unsupported`: 415 Unsupported Media Type on the REST front.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from wsgw.aws.integration_response import (
    DEFAULT_KEY,
    Passthrough,
    PassthroughBehavior,
    Reject,
    choose_request_template,
    content_type_key,
)
from wsgw.aws.templates import Template, TemplateError
from wsgw.config.mapping import MappingOptions, ResponseSpec
from wsgw.integrations.base import IntegrationFailed
from wsgw.integrations.records import body_text, mapping_source

__all__ = ["NonProxyMapping", "Unsupported", "passed_through", "request_document"]


class Unsupported(IntegrationFailed):
    """No request template matches and passthroughBehavior refuses the body (REST: 415)."""

    status = 415
    answer = "Unsupported Media Type"


def request_document(event: dict[str, Any]) -> object:
    """The request body parsed as JSON, or None (selection expressions over `$request.body` read it)."""
    body = body_text(event)
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _params(event: dict[str, Any], template: Template) -> dict[str, dict[str, str]] | None:
    """`$input.params()`'s maps, built only for a template that reads them (most never do)."""
    if "params" not in template.reads:
        return None
    source = mapping_source(event)
    return {"header": dict(source.headers), "querystring": dict(source.query), "path": dict(source.path)}


class NonProxyMapping:
    """A non-proxy integration's templates, built from its parsed options; `what` names it in errors."""

    __slots__ = ("options", "what")

    def __init__(self, options: MappingOptions, what: str) -> None:
        self.options = options
        self.what = what

    @property
    def transforms_requests(self) -> bool:
        """False when every request body passes through untouched (no templates, passthrough allowed)."""
        return bool(self.options.request_templates) or self.options.passthrough is PassthroughBehavior.NEVER

    def _template_key(self, event: dict[str, Any], body: str) -> str | None:
        """WebSocket: the templateSelectionExpression's value; REST: the request's content type."""
        selection = self.options.template_selection
        if selection is not None:
            try:
                document = orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                document = None
            return selection.key(document)
        if "connectionId" in (event.get("requestContext") or {}):
            return None          # a WebSocket integration without an expression: its $default template
        headers = event.get("headers") or {}
        content_type = next((v for k, v in headers.items() if str(k).lower() == "content-type"), None)
        return content_type_key(content_type)

    def request_body(self, event: dict[str, Any]) -> str:
        """The integration request's body: the chosen request template's output, or the body passed through."""
        body = body_text(event)
        options = self.options
        if not options.request_templates and options.passthrough is not PassthroughBehavior.NEVER:
            return body
        websocket = "connectionId" in (event.get("requestContext") or {})
        choice = choose_request_template(options.request_templates, self._template_key(event, body),
                                         options.passthrough, default_key=websocket)
        if isinstance(choice, Reject):
            raise Unsupported(f"{self.what}: no request template matches ({choice.reason}) and "
                              f"passthroughBehavior is {options.passthrough.value}")
        if isinstance(choice, Passthrough):
            return body
        try:
            return choice.template.render(body, event.get("requestContext") or {}, event.get("stageVariables") or {},
                                          _params(event, choice.template))
        except TemplateError as exc:
            raise IntegrationFailed(f"{self.what}: request template {choice.key}: {exc}") from None

    def response_for(self, status: int | str) -> ResponseSpec | None:
        """The integration response matching a status code (HTTP, MOCK, AWS) or error message; None: none."""
        responses = self.options.responses
        return responses.select(status) if responses is not None else None

    def respond(self, event: dict[str, Any], chosen: ResponseSpec, status: int, headers: Mapping[str, str],
                body: bytes) -> dict[str, Any]:
        """The client's answer from the integration response `chosen`: its status, and its template's output
        (the backend's body passed through when it has no template)."""
        status_out = chosen.status_code or status
        if not chosen.templates:
            return passed_through(status_out, headers, body)
        key = None
        if chosen.selection is not None:
            key = chosen.selection.key(request_document(event), status,
                                       {k.lower(): [v] for k, v in headers.items()})
        template = _pick(chosen.templates, key)
        try:
            rendered = template.render_result(body.decode("utf-8", "replace"), event.get("requestContext") or {},
                                              event.get("stageVariables") or {}, _params(event, template))
        except TemplateError as exc:
            raise IntegrationFailed(f"{self.what}: response template: {exc}") from None
        override = rendered.response_override
        answer_headers = {"content-type": "application/json"}
        answer_headers.update({str(k): str(v) for k, v in (override.get("header") or {}).items()})
        forced = override.get("status")
        if forced is not None:
            try:
                status_out = int(str(forced))
            except ValueError:
                raise IntegrationFailed(f"{self.what}: $context.responseOverride.status is not a status") from None
        return {"statusCode": status_out, "body": rendered.text, "headers": answer_headers}


def passed_through(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The backend's answer as the client's, its content type kept (no integration response template)."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    return {"statusCode": status, "body": body.decode("utf-8", "replace") or None,
            "headers": {"content-type": content_type} if content_type else {}}


def _pick(templates: Mapping[str, Template], key: str | None) -> Template:
    """The response template for a selection key: that key, else `$default`, else JSON's, else the only one."""
    if key is not None and key in templates:
        return templates[key]
    return templates.get(DEFAULT_KEY) or templates.get("application/json") or next(iter(templates.values()))
