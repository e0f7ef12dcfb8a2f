"""AWS models and WebSocket request validation: AWS's documented examples, model selection, the failure frame."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from wsgw.aws.models import (
    BAD_REQUEST_BODY_MESSAGE,
    ModelError,
    bad_request_body_frame,
    compile_models,
    compile_request_validator,
)

# AWS's request validation sample API ("RequestBodyModel"): name, type in dog/cat/fish, price 25..500.
PET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": ["dog", "cat", "fish"]},
        "name": {"type": "string"},
        "price": {"type": "number", "minimum": 25, "maximum": 500},
    },
    "required": ["type", "name", "price"],
}
MESSAGE: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "properties": {"action": {"type": "string"}, "message": {"type": "string", "maxLength": 10}},
    "required": ["action", "message"],
}
MODELS = compile_models({"RequestBodyModel": PET, "Message": MESSAGE})


def pet_validator() -> Any:
    return compile_request_validator("\\$default", {"$default": "RequestBodyModel"}, MODELS)


def test_aws_sample_valid_pet_passes() -> None:
    assert pet_validator().problem(b'{"name" : "Marco", "type" : "dog", "price" : 260}') is None


def test_aws_sample_type_outside_the_enum_fails_naming_the_field() -> None:
    problem = pet_validator().problem(b'{"name" : "Molly", "type" : "bird", "price" : 269}')
    assert problem == "model RequestBodyModel: $.type: not one of the allowed values (enum)"


def test_aws_sample_price_above_the_maximum_fails() -> None:
    problem = pet_validator().problem(b'{"name" : "Marco", "type" : "dog", "price" : 501}')
    assert problem == "model RequestBodyModel: $.price: must be <= 500 (maximum)"


def test_missing_required_field_is_named() -> None:
    assert pet_validator().problem(b'{"name": "M", "type": "dog"}') == (
        "model RequestBodyModel: $.price: required property missing"
    )


def test_failure_message_never_echoes_the_body() -> None:
    secret = "S3CRET" * 100
    body = orjson.dumps({"name": {"deep": secret}, "type": "dog", "price": 30})
    problem = pet_validator().problem(body)
    assert problem is not None and "S3CRET" not in problem
    assert problem.endswith("$.name: must be of type string (type)")


def test_non_json_body_fails_validation() -> None:
    assert pet_validator().problem(b"hello") == "$: the body is not JSON"


def test_model_selection_expression_picks_the_model_by_the_body() -> None:
    validator = compile_request_validator(
        "$request.body.action", {"sendMessage": "Message", "$default": "RequestBodyModel"}, MODELS
    )
    assert validator is not None
    assert validator.problem(b'{"action": "sendMessage", "message": "hi"}') is None
    assert validator.problem(b'{"action": "sendMessage", "message": "far too long"}') == (
        "model Message: $.message: longer than 10 characters (maxLength)"
    )
    # No key matches: $default's model applies.
    assert validator.problem(b'{"action": "other", "name": "M", "type": "cat", "price": 30}') is None
    assert validator.problem(b'{"action": "other"}') is not None


def test_no_match_and_no_default_fails_validation_as_aws_documents() -> None:
    validator = compile_request_validator("$request.body.action", {"sendMessage": "Message"}, MODELS)
    assert validator is not None
    problem = validator.problem(b'{"action": "join"}')
    assert problem is not None and "no model" in problem and "$default" in problem
    assert validator.problem_parsed({"action": "sendMessage", "message": "ok"}) is None


def test_route_without_request_models_validates_nothing() -> None:
    assert compile_request_validator(None, None, MODELS) is None


@pytest.mark.parametrize(
    ("expression", "request_models", "expected"),
    [
        (None, {"$default": "Message"}, "needs a modelSelectionExpression"),
        ("$request.body.action", None, "has no requestModels"),
        ("$request.body.action", {"$default": "Nope"}, "no model named 'Nope'"),
        ("$request.header.x", {"$default": "Message"}, "modelSelectionExpression"),
    ],
)
def test_route_validation_config_errors_name_the_key(
    expression: str | None, request_models: dict[str, str] | None, expected: str
) -> None:
    with pytest.raises(ModelError, match=expected) as info:
        compile_request_validator(expression, request_models, MODELS, key="routes.sendMessage")
    assert "routes.sendMessage" in str(info.value)


def test_models_compile_as_draft_4_unless_they_name_a_later_draft() -> None:
    # Draft 4's boolean exclusiveMaximum; draft 7's numeric one when $schema says so.
    draft4 = compile_models({"M": {"type": "number", "maximum": 5, "exclusiveMaximum": True}})["M"]
    assert draft4.problem(5) is not None and draft4.problem(4) is None
    draft7 = compile_models(
        {"M": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "number", "exclusiveMaximum": 5}}
    )["M"]
    assert draft7.problem(5) is not None and draft7.problem(4) is None


def test_a_model_references_another_the_aws_way() -> None:
    models = compile_models(
        {
            "Pet": PET,
            "Pets": {"type": "array", "items": {"$ref": "https://apigateway.amazonaws.com/restapis/a1/models/Pet"}},
        }
    )
    assert models["Pets"].problem([{"name": "a", "type": "cat", "price": 30}]) is None
    assert models["Pets"].problem([{"name": "a", "type": "cow", "price": 30}]) == (
        "$[0].type: not one of the allowed values (enum)"
    )


def test_invalid_models_are_reported_by_name() -> None:
    with pytest.raises(ModelError) as info:
        compile_models(
            {
                "Bad": {"type": "objekt"},
                "NotAMapping": "string",
                "Dangling": {"$ref": "https://apigateway.amazonaws.com/restapis/a1/models/Missing"},
            }
        )
    message = str(info.value)
    assert "models.Bad" in message and "models.NotAMapping" in message and "models.Dangling" in message


def test_bad_request_body_frame_is_awss_error_frame() -> None:
    frame = bad_request_body_frame("abc=", "xyz=")
    assert frame == b'{"message": "Invalid request body", "connectionId":"abc=", "requestId":"xyz="}'
    assert orjson.loads(frame)["message"] == BAD_REQUEST_BODY_MESSAGE


def test_the_fast_check_is_used_only_where_it_agrees_with_jsonschema_by_construction() -> None:
    models = compile_models({
        "Plain": PET,
        "Formatted": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}},
        "Newer": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
        "Referring": {"type": "object", "properties": {"pet": {
            "$ref": "https://apigateway.amazonaws.com/restapis/abc/models/Plain"}}},
    })
    assert models["Plain"].fast is not None
    assert [models[name].fast for name in ("Formatted", "Newer", "Referring")] == [None, None, None]
    for document in ({"type": "dog", "name": "x", "price": 30}, {"type": "bird", "name": "x", "price": 30},
                     {"type": "dog", "name": "x", "price": 30.5, "id": 1.5},
                     {"type": "dog", "name": "x", "price": 30, "id": 1.0}, {"type": "dog", "name": "x", "price": True},
                     {"type": "dog", "name": "x", "price": 500.0}, [], None, "text"):
        fast_says_fits = models["Plain"].problem(document) is None
        slow = models["Plain"].validator.is_valid(document)
        assert fast_says_fits == slow, document


def test_a_hostile_property_name_is_quoted_and_cut_in_the_problem() -> None:
    models = compile_models({"Closed": {"type": "object", "properties": {"a": {"type": "string"}},
                                        "additionalProperties": False}})
    problem = models["Closed"].problem({"a": "x", "evil\nname" + "x" * 500: 1})
    assert problem is not None and "\n" not in problem and len(problem) < 160
    assert problem.startswith('$["evil\\nname')
