"""AWS models (JSON Schema) and WebSocket request validation as API Gateway does it; pure.

A model is a JSON Schema, draft 4 as AWS reads it unless the schema names another draft in ``$schema``. Models
are compiled once; a model may reference another one the AWS way
(``{"$ref": "https://apigateway.amazonaws.com/restapis/<api>/models/<Name>"}``). A WebSocket route picks its
model with ``modelSelectionExpression`` (the route selection expression's language, wsgw/selection.py) among its
``requestModels``; no match falls back to ``$default``, and with no ``$default`` the body fails validation, as
AWS documents (docs/mapping-templates.md). A failing body never reaches the integration: the client gets AWS's
"Bad request body" frame and the log gets a message naming the failing field, built from the schema's side
only, so it never echoes the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import fastjsonschema
import orjson
from jsonschema import Draft4Validator, SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT4

from wsgw.aws.websocket_events import error_frame
from wsgw.selection import RouteSelector, SelectionExpressionError, compile_selection

__all__ = [
    "BAD_REQUEST_BODY_MESSAGE",
    "DEFAULT_KEY",
    "Model",
    "ModelError",
    "RequestValidator",
    "bad_request_body_frame",
    "compile_models",
    "compile_request_validator",
]

DEFAULT_KEY: Final = "$default"
# AWS's BAD_REQUEST_BODY gateway response message (REST: {"message": "Invalid request body"}, 400).
BAD_REQUEST_BODY_MESSAGE: Final = "Invalid request body"
_AWS_MODEL_REF: Final = re.compile(r"^https://apigateway\.amazonaws\.com/restapis/[^/]+/models/([^/#]+)$")


class ModelError(ValueError):
    """A model, or a route's model selection, that cannot be compiled; the message names the key."""


@dataclass(frozen=True, slots=True, eq=False)
class Model:
    """A compiled model: its name and a validator built once; `fast`, when the schema allows it, is the same
    schema compiled to Python by fastjsonschema (about 15 times faster on a passing body, the common case)."""

    name: str
    validator: Validator
    fast: Callable[[object], object] | None = None

    def __eq__(self, other: object) -> bool:
        """Same name and schema: the same model (a reload keeps a deployment whose config is unchanged)."""
        return isinstance(other, Model) and (self.name, self.validator.schema) == (other.name, other.validator.schema)

    def __hash__(self) -> int:
        return hash(self.name)

    def problem(self, document: object) -> str | None:
        """None when the document fits; else which field failed and why (never the field's value).

        jsonschema is the authority: the fast check only answers "fits"; anything else is asked again."""
        if self.fast is not None:
            try:
                self.fast(document)
                return None
            except Exception:       # a failure (or a fault of the fast check): jsonschema decides
                pass
        best: ValidationError | None = None
        for error in self.validator.iter_errors(document):  # type: ignore[arg-type]
            if best is None or _order(error) < _order(best):
                best = error
        return None if best is None else describe(best)


def _order(error: ValidationError) -> tuple[int, list[str]]:
    return (len(error.absolute_path), [str(p) for p in error.absolute_path])


_PLAIN_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _step(part: object) -> str:
    """One step of a JSONPath; a name from the body that is not plain is quoted and cut (a log line stays one
    line, and short)."""
    if isinstance(part, int):
        return f"[{part}]"
    name = str(part)
    return f".{name}" if _PLAIN_NAME.fullmatch(name) else f"[{_short(orjson.dumps(name).decode())}]"


def _where(path: Any) -> str:
    return "$" + "".join(_step(p) for p in path)


def describe(error: ValidationError) -> str:
    """`$.price: must be <= 500 (maximum)`: the path, and the rule from the schema, not the value."""
    where = _where(error.absolute_path)
    rule = str(error.validator)
    value = error.validator_value
    if rule == "required" and isinstance(error.instance, dict) and isinstance(value, list):
        missing = [name for name in value if name not in error.instance]
        if missing:
            return f"{where}.{missing[0]}: required property missing"
    if rule == "additionalProperties" and isinstance(error.instance, dict) and isinstance(error.schema, dict):
        allowed = error.schema.get("properties") or {}
        extra = [name for name in error.instance if name not in allowed]
        if extra and not error.schema.get("patternProperties"):   # a property's name, never its value
            return f"{where}{_step(extra[0])}: a property the model does not allow (additionalProperties)"
    texts: dict[str, str] = {
        "type": f"must be of type {_short(value)}",
        "enum": "not one of the allowed values",
        "const": "not the allowed value",
        "maximum": f"must be <= {_short(value)}",
        "minimum": f"must be >= {_short(value)}",
        "exclusiveMaximum": f"must be < {_short(value)}" if not isinstance(value, bool) else "must be below maximum",
        "exclusiveMinimum": f"must be > {_short(value)}" if not isinstance(value, bool) else "must be above minimum",
        "maxLength": f"longer than {_short(value)} characters",
        "minLength": f"shorter than {_short(value)} characters",
        "maxItems": f"more than {_short(value)} items",
        "minItems": f"fewer than {_short(value)} items",
        "maxProperties": f"more than {_short(value)} properties",
        "minProperties": f"fewer than {_short(value)} properties",
        "pattern": f"does not match {_short(value)}",
        "format": f"is not a valid {_short(value)}",
        "additionalProperties": "has a property the model does not allow",
        "uniqueItems": "items are not unique",
        "multipleOf": f"not a multiple of {_short(value)}",
    }
    return f"{where}: {texts.get(rule, f'fails {rule}')} ({rule})"


def _short(value: object) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def compile_models(models: Mapping[str, object], key: str = "models") -> dict[str, Model]:
    """Compile every model once; raise ModelError naming each bad one (``models.Pet: ...``)."""
    problems: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    for name, schema in models.items():
        if not isinstance(schema, dict):
            problems.append(f"{key}.{name}: must be a JSON Schema (a mapping such as {{type: object}})")
            continue
        schemas[str(name)] = schema
    registry: Registry[Any] = Registry()
    refs: dict[str, set[str]] = {}
    for name, schema in schemas.items():
        found = refs[name] = set()
        _refs(schema, found)
        for ref in sorted(found):
            base = ref.split("#", 1)[0]
            match = _AWS_MODEL_REF.match(base)
            if match is None:
                continue
            target = schemas.get(match.group(1))
            if target is None:
                problems.append(f"{key}.{name}: $ref {ref!r} names no model")
                continue
            registry = registry.with_resource(base, Resource.from_contents(target, default_specification=DRAFT4))
    compiled: dict[str, Model] = {}
    for name, schema in schemas.items():
        cls = validator_for(schema, default=Draft4Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"{key}.{name}: not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}")
            continue
        resolver = registry.resolver_with_root(Resource.from_contents(schema, default_specification=DRAFT4))
        unresolved: list[str] = []
        for ref in sorted(refs[name]):
            try:
                resolver.lookup(ref)  # now, at start, rather than on the first message that reaches it
            except Unresolvable:
                unresolved.append(ref)
        if unresolved:
            if not any(p.startswith(f"{key}.{name}: ") for p in problems):  # not already "names no model"
                problems.append(f"{key}.{name}: $ref {unresolved[0]!r} cannot be resolved")
            continue
        compiled[name] = Model(name, cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER),
                               _fast(schema, refs[name]))
    if problems:
        raise ModelError("; ".join(problems))
    return compiled


_FAST_DRAFTS: Final = frozenset({None, "http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-04/schema",
                                  "http://json-schema.org/draft-06/schema#", "http://json-schema.org/draft-07/schema#"})


def _keys(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        found.update(str(k) for k in node)
        for value in node.values():
            found |= _keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= _keys(value)
    return found


def _fast(schema: dict[str, Any], refs: set[str]) -> Callable[[object], object] | None:
    """fastjsonschema's compiled check, only where it agrees with jsonschema by construction: drafts 4-7, no
    `format` (the two check formats differently), no reference outside the schema itself."""
    if schema.get("$schema") not in _FAST_DRAFTS or "format" in _keys(schema) \
            or any(not ref.startswith("#") for ref in refs):
        return None
    try:
        check: Callable[[object], object] = fastjsonschema.compile(
            schema if "$schema" in schema else {**schema, "$schema": "http://json-schema.org/draft-04/schema#"})
    except Exception:               # a schema fastjsonschema cannot compile: jsonschema alone checks it
        return None
    return check


class RequestValidator:
    """A WebSocket route's validation: a model selection expression over its request models."""

    __slots__ = ("_default", "_models", "_selector", "expression")

    def __init__(self, expression: str, selector: RouteSelector | None, models: dict[str, Model]) -> None:
        self.expression = expression
        self._selector = selector  # None: the expression is the static key `$default`
        self._models = models
        self._default = models.get(DEFAULT_KEY)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestValidator) and (self.expression, self._models) == (
            other.expression, other._models)

    def __hash__(self) -> int:
        return hash(self.expression)

    def select(self, document: object) -> Model | None:
        """The model for a parsed body: the selected key's, else `$default`'s, else None (validation fails)."""
        if self._selector is not None:
            key = self._selector.select_parsed(document)
            if key is not None:
                model = self._models.get(key)
                if model is not None:
                    return model
        return self._default

    def problem(self, body: bytes | str) -> str | None:
        """None when the raw message body passes; else the log line naming what failed."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "$: the body is not JSON"
        return self.problem_parsed(document)

    def problem_parsed(self, document: object) -> str | None:
        """As :meth:`problem`, for a body already parsed (the route selection parsed it)."""
        model = self.select(document)
        if model is None:
            return f"no model for this body: {self.expression!r} matched no key and there is no {DEFAULT_KEY}"
        found = model.problem(document)
        return None if found is None else f"model {model.name}: {found}"


def compile_request_validator(
    expression: str | None,
    request_models: Mapping[str, str] | None,
    models: Mapping[str, Model],
    key: str = "route",
) -> RequestValidator | None:
    """A route's validator, or None when the route validates nothing; raise ModelError naming the key."""
    if not request_models:
        if expression:
            raise ModelError(f"{key}.modelSelectionExpression: set, but the route has no requestModels")
        return None
    if not expression:
        raise ModelError(
            f"{key}.requestModels: needs a modelSelectionExpression (AWS validates only with one), "
            "e.g. $request.body.action, or \\$default for one model"
        )
    selector: RouteSelector | None = None
    if expression.strip() not in (DEFAULT_KEY, "\\" + DEFAULT_KEY):
        try:
            selector = compile_selection(expression)
        except SelectionExpressionError as exc:
            raise ModelError(f"{key}.modelSelectionExpression: {exc}") from None
    chosen: dict[str, Model] = {}
    for model_key, model_name in request_models.items():
        model = models.get(model_name)
        if model is None:
            known = ", ".join(sorted(models)) or "none defined"
            raise ModelError(f"{key}.requestModels.{model_key}: no model named {model_name!r} (models: {known})")
        chosen[str(model_key)] = model
    return RequestValidator(expression, selector, chosen)


def bad_request_body_frame(connection_id: str, request_id: str) -> bytes:
    """The frame a client gets when its message fails validation (AWS's BAD_REQUEST_BODY gateway response)."""
    return error_frame(BAD_REQUEST_BODY_MESSAGE, connection_id, request_id)
