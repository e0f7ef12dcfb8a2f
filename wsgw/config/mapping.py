"""The options every non-proxy integration (`MOCK`, `HTTP`, `AWS`) shares, as AWS names them: `requestTemplates`,
`templateSelectionExpression`, `passthroughBehavior`, `integrationResponses`. Parsed once here, every template
compiled at load (a syntax error names its key, so `wsgw check` reports it); pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from wsgw.aws.integration_response import (
    DEFAULT_KEY,
    PassthroughBehavior,
    ResponseSelector,
    SelectionError,
    TemplateSelector,
    compile_response_selector,
    compile_template_selector,
)
from wsgw.aws.templates import Template, TemplateError, compile_template

if TYPE_CHECKING:
    from wsgw.config.integrations import _Reader

MAPPING_OPTIONS: Final = frozenset({"requestTemplates", "templateSelectionExpression", "passthroughBehavior",
                                    "integrationResponses"})


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """One integration response: the status the client gets and the templates shaping its body."""

    status_code: int | None
    templates: Mapping[str, Template]
    selection: TemplateSelector | None


@dataclass(frozen=True, slots=True)
class MappingOptions:
    """A non-proxy integration's request templates (and how one is chosen) and its integration responses."""

    request_templates: Mapping[str, Template] = field(default_factory=dict)
    template_selection: TemplateSelector | None = None
    passthrough: PassthroughBehavior = PassthroughBehavior.WHEN_NO_MATCH
    responses: ResponseSelector[ResponseSpec] | None = None


def templates(r: _Reader, raw: Any, name: str) -> dict[str, Template]:
    """`{key: template}` compiled; a bad one is a problem naming `name.key`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.problem(name, "must be a mapping of selection key (or content type) to a mapping template")
        return {}
    out: dict[str, Template] = {}
    for key, text in raw.items():
        try:
            out[str(key)] = compile_template(text)
        except TemplateError as exc:
            r.problem(f"{name}.{key}", str(exc))
    return out


def selector(r: _Reader, raw: Any, name: str) -> TemplateSelector | None:
    if raw is None:
        return None
    try:
        return compile_template_selector(raw, name)
    except SelectionError as exc:
        r.problem(name, str(exc))
        return None


def responses(r: _Reader, raw: Any) -> ResponseSelector[ResponseSpec] | None:
    """`integrationResponses: {key: {statusCode, responseTemplates, templateSelectionExpression}}`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        r.problem("integrationResponses", "must map a status pattern ($default, 200, /4\\d\\d/) to a response")
        return None
    specs: dict[str, ResponseSpec] = {}
    for key, value in raw.items():
        where = f"integrationResponses.{key}"
        if not isinstance(value, dict):
            r.problem(where, "must be a mapping (statusCode, responseTemplates, templateSelectionExpression)")
            continue
        for unknown in sorted(set(map(str, value)) - {"statusCode", "responseTemplates",
                                                        "templateSelectionExpression"}):
            r.problem(f"{where}.{unknown}", "unknown key; use statusCode, responseTemplates, "
                      "templateSelectionExpression")
        status = value.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                                   or not 100 <= status <= 599):
            r.problem(f"{where}.statusCode", "must be an HTTP status")
            status = None
        specs[str(key)] = ResponseSpec(status, templates(r, value.get("responseTemplates"),
                                                         f"{where}.responseTemplates"),
                                       selector(r, value.get("templateSelectionExpression"),
                                                f"{where}.templateSelectionExpression"))
    try:
        return compile_response_selector(specs, "integrationResponses")
    except SelectionError as exc:
        r.problem("integrationResponses", str(exc))
        return None


def parse_mapping(r: _Reader, response_shorthand: Template | None = None) -> MappingOptions:
    """The four mapping options of a non-proxy integration; `response_shorthand` (MOCK's `response:`) is the
    `$default` integration response's `$default` template."""
    try:
        passthrough = PassthroughBehavior.parse(r.raw.get("passthroughBehavior"))
    except SelectionError as exc:
        r.problem("passthroughBehavior", str(exc))
        passthrough = PassthroughBehavior.WHEN_NO_MATCH
    chosen = responses(r, r.raw.get("integrationResponses"))
    if response_shorthand is not None:
        if chosen is not None:
            r.problem("response", "give either 'response' (a shorthand) or 'integrationResponses', not both")
        chosen = compile_response_selector({DEFAULT_KEY: ResponseSpec(None, {DEFAULT_KEY: response_shorthand},
                                                                      None)})
    return MappingOptions(templates(r, r.raw.get("requestTemplates"), "requestTemplates"),
                          selector(r, r.raw.get("templateSelectionExpression"), "templateSelectionExpression"),
                          passthrough, chosen)
