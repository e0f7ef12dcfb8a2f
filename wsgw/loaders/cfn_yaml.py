"""A YAML loader for CloudFormation / SAM templates: the short-form intrinsic tags become their long form.

`!Ref X` → {"Ref": "X"}, `!GetAtt A.B` → {"Fn::GetAtt": ["A", "B"]}, `!Sub …` → {"Fn::Sub": …} and so on.
An unknown tag is recorded with its line (reported as a problem) instead of failing the whole parse.
"""

from __future__ import annotations

from typing import Any

import yaml

FN_TAGS = ("Base64", "Cidr", "FindInMap", "GetAZs", "If", "ImportValue", "Join", "Length", "Not", "Equals",
           "And", "Or", "Select", "Split", "Sub", "ToJsonString", "Transform")


class UnknownTag:
    """Placeholder for a `!Tag` the loader does not know; the translator reports it where it is used."""

    def __init__(self, tag: str, line: int) -> None:
        self.tag = tag
        self.line = line

    def __repr__(self) -> str:
        return f"UnknownTag({self.tag!r}, line {self.line})"


class CfnLoader(yaml.SafeLoader):
    """yaml.SafeLoader plus CloudFormation's intrinsic-function tags."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.unknown_tags: list[UnknownTag] = []


def _value(loader: CfnLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


def _fn(name: str) -> Any:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        return {f"Fn::{name}": _value(loader, node)}

    return construct


def _ref(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _value(loader, node)}


def _condition(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _value(loader, node)}


def _get_att(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    value = _value(loader, node)
    if isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


def _unknown(loader: CfnLoader, suffix: str, node: yaml.Node) -> UnknownTag:
    tag = UnknownTag(f"!{suffix}", node.start_mark.line + 1)
    loader.unknown_tags.append(tag)
    return tag


for _name in FN_TAGS:
    CfnLoader.add_constructor(f"!{_name}", _fn(_name))
CfnLoader.add_constructor("!Ref", _ref)
CfnLoader.add_constructor("!Condition", _condition)
CfnLoader.add_constructor("!GetAtt", _get_att)
CfnLoader.add_multi_constructor("!", _unknown)


def load_template(text: str) -> tuple[Any, list[UnknownTag]]:
    """Parse a template; returns the document and the unknown tags met (with their lines)."""
    loader = CfnLoader(text)
    try:
        return loader.get_single_data(), loader.unknown_tags
    finally:
        loader.dispose()
