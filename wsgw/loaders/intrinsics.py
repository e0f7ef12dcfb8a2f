"""Resolve CloudFormation intrinsic functions as far as they matter locally.

Parameters take their override or Default; pseudo parameters get local values; `Ref`/`Fn::GetAtt` on a
resource give what CloudFormation would (a function's or table's name, an ARN built from it, else the
logical id), so that an integration URI built with `!Sub …${Fn.Arn}/invocations` still names its function.
What cannot be known locally (Fn::ImportValue, a parameter without a value) is a problem naming the key.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from wsgw.loaders.cfn_yaml import UnknownTag

NO_VALUE = object()          # AWS::NoValue: the surrounding key or list item disappears
_SUB = re.compile(r"\$\{([^}]*)\}")


def _is_intrinsic(value: dict[Any, Any]) -> bool:
    if len(value) != 1:
        return False
    name = next(iter(value))
    return isinstance(name, str) and (name in ("Ref", "Condition") or name.startswith("Fn::"))


class Unresolvable(Exception):
    """An intrinsic that has no local value; the message says why."""


class IntrinsicResolver:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str], region: str, account_id: str,
                 stack_name: str, problem: Callable[[str, str], None]) -> None:
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.declared: Mapping[str, Any] = template.get("Parameters") or {}
        self.mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self.conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self.parameters = dict(parameters)
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": account_id, "AWS::StackName": stack_name,
                       "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": []}
        self.region = region
        self.account_id = account_id
        self.problem = problem
        self._condition_cache: dict[str, bool] = {}

    # ------------------------------------------------------------------ entry points

    def resolve(self, value: Any, key: str) -> Any:
        """Resolve every intrinsic inside `value`; problems are reported against `key` and give None."""
        try:
            return self._resolve(value)
        except Unresolvable as exc:
            self.problem(key, str(exc))
            return None

    def resolve_tree(self, value: Any, key: str) -> Any:
        """Like resolve, but key by key, so one unresolvable value is reported at its own key and only it is lost."""
        if isinstance(value, dict) and not _is_intrinsic(value):
            out = {}
            for k, v in value.items():
                resolved = self.resolve_tree(v, f"{key}.{k}")
                if resolved is not NO_VALUE:
                    out[k] = resolved
            return out
        if isinstance(value, list):
            return [v for v in (self.resolve_tree(v, f"{key}[{i}]") for i, v in enumerate(value)) if v is not NO_VALUE]
        return self.resolve(value, key)

    def condition(self, name: str, key: str) -> bool:
        try:
            return self._condition(name)
        except Unresolvable as exc:
            self.problem(key, str(exc))
            return True

    # ------------------------------------------------------------------ the functions

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, UnknownTag):
            raise Unresolvable(f"unknown tag {value.tag} (line {value.line}); wsgw knows !Ref, !Sub, !GetAtt, "
                               "!Join, !If, !Select, !Split, !FindInMap, !Equals, !Not, !And, !Or, !Base64")
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, arg), = value.items()
            if name == "Ref":
                return self._ref(arg)
            if name == "Condition" and isinstance(arg, str):
                return self._condition(arg)
            if isinstance(name, str) and name.startswith("Fn::"):
                return self._function(name[4:], arg)
        out = {}
        for k, v in value.items():
            resolved = self._resolve(v)
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out

    def _function(self, name: str, arg: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "GetAtt": self._get_att, "Sub": self._sub, "Join": self._join, "If": self._if,
            "Select": self._select, "Split": self._split, "FindInMap": self._find_in_map,
            "Equals": lambda a: self._pair(a, "Fn::Equals")[0] == self._pair(a, "Fn::Equals")[1],
            "Not": lambda a: not self._truth(self._resolve(a[0] if isinstance(a, list) else a)),
            "And": lambda a: all(self._truth(self._resolve(x)) for x in a),
            "Or": lambda a: any(self._truth(self._resolve(x)) for x in a),
            "Base64": lambda a: base64.b64encode(str(self._resolve(a)).encode()).decode(),
            "GetAZs": lambda a: [f"{self.region}{z}" for z in "abc"],
            "ToJsonString": lambda a: json.dumps(self._resolve(a), separators=(",", ":")),
            "Length": lambda a: len(self._resolve(a)),
        }
        handler = handlers.get(name)
        if handler is None:
            raise Unresolvable(f"Fn::{name} cannot be resolved locally")
        return handler(arg)

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise Unresolvable("Ref takes the name of a parameter or resource")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.declared:
            if name in self.parameters:
                return self.parameters[name]
            declared = self.declared[name] or {}
            if isinstance(declared, dict) and "Default" in declared:
                return declared["Default"]
            raise Unresolvable(f"parameter '{name}' has no Default; pass --param {name}=VALUE")
        resource = self.resources.get(name)
        if isinstance(resource, dict):
            return self.physical_name(name)
        raise Unresolvable(f"Ref to '{name}', which is neither a parameter nor a resource of this template")

    def physical_name(self, logical_id: str) -> str:
        """What Ref gives for a resource: its explicit name property when it has one, else the logical id."""
        resource = self.resources.get(logical_id) or {}
        props = resource.get("Properties") or {}
        for prop in ("FunctionName", "TableName", "QueueName", "TopicName", "BucketName", "RoleName", "Name"):
            if prop in props and resource.get("Type", "").split("::")[1:2] != ["ApiGatewayV2"]:
                value = self._resolve(props[prop])
                if isinstance(value, str) and value:
                    return value
        return logical_id

    def _get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not isinstance(arg, list) or len(arg) != 2:
            raise Unresolvable("Fn::GetAtt takes [LogicalId, Attribute]")
        logical, attribute = self._resolve(arg[0]), self._resolve(arg[1])
        resource = self.resources.get(logical)
        if not isinstance(resource, dict):
            raise Unresolvable(f"Fn::GetAtt on '{logical}', which is not a resource of this template")
        kind = str(resource.get("Type", ""))
        name = self.physical_name(logical)
        region, account = self.region, self.account_id
        if attribute == "Arn":
            if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                return f"arn:aws:lambda:{region}:{account}:function:{name}"
            if kind == "AWS::DynamoDB::Table":
                return f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            if kind == "AWS::IAM::Role":
                return f"arn:aws:iam::{account}:role/{name}"
            if kind == "AWS::SQS::Queue":
                return f"arn:aws:sqs:{region}:{account}:{name}"
            return f"arn:aws:{kind.split('::')[1].lower() if '::' in kind else 'unknown'}:{region}:{account}:{name}"
        if kind == "AWS::SQS::Queue" and attribute in ("QueueName", "QueueUrl"):
            return name if attribute == "QueueName" else f"https://sqs.{region}.amazonaws.com/{account}/{name}"
        if kind == "AWS::ApiGatewayV2::Api" and attribute == "ApiEndpoint":
            return f"wss://{logical.lower()}.execute-api.{region}.amazonaws.com"
        if attribute in ("ApiId", "Id"):
            return logical
        return f"{name}.{attribute}"

    def _sub(self, arg: Any) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[1], dict):
                raise Unresolvable("Fn::Sub takes a string or [string, {name: value}]")
            arg, variables = arg[0], {k: self._resolve(v) for k, v in arg[1].items()}
        if not isinstance(arg, str):
            raise Unresolvable("Fn::Sub takes a string")

        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if "." in inner and inner.split(".", 1)[0] in self.resources:
                return str(self._get_att(inner.split(".", 1)))
            return str(self._ref(inner))

        return _SUB.sub(replace, arg)

    def _join(self, arg: Any) -> str:
        if not isinstance(arg, list) or len(arg) != 2:
            raise Unresolvable("Fn::Join takes [delimiter, [values]]")
        items = self._resolve(arg[1])
        if not isinstance(items, list):
            raise Unresolvable("Fn::Join needs a list of values")
        return str(self._resolve(arg[0])).join(str(i) for i in items)

    def _if(self, arg: Any) -> Any:
        if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
            raise Unresolvable("Fn::If takes [ConditionName, value_if_true, value_if_false]")
        return self._resolve(arg[1] if self._condition(arg[0]) else arg[2])

    def _select(self, arg: Any) -> Any:
        if not isinstance(arg, list) or len(arg) != 2:
            raise Unresolvable("Fn::Select takes [index, [values]]")
        index, items = int(self._resolve(arg[0])), self._resolve(arg[1])
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise Unresolvable(f"Fn::Select index {index} is out of range")
        return items[index]

    def _split(self, arg: Any) -> list[str]:
        if not isinstance(arg, list) or len(arg) != 2:
            raise Unresolvable("Fn::Split takes [delimiter, string]")
        return str(self._resolve(arg[1])).split(str(self._resolve(arg[0])))

    def _find_in_map(self, arg: Any) -> Any:
        if not isinstance(arg, list) or len(arg) not in (3, 4):
            raise Unresolvable("Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]")
        name, top, second = (self._resolve(a) for a in arg[:3])
        try:
            return self._resolve(self.mappings[name][top][second])
        except (KeyError, TypeError):
            if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self._resolve(arg[3]["DefaultValue"])
            raise Unresolvable(f"Fn::FindInMap: Mappings.{name}.{top}.{second} does not exist") from None

    def _pair(self, arg: Any, name: str) -> tuple[Any, Any]:
        if not isinstance(arg, list) or len(arg) != 2:
            raise Unresolvable(f"{name} takes two values")
        return self._resolve(arg[0]), self._resolve(arg[1])

    def _condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise Unresolvable(f"condition '{name}' is not defined under Conditions")
            self._condition_cache[name] = True      # guards against a condition that refers to itself
            self._condition_cache[name] = self._truth(self._resolve(self.conditions[name]))
        return self._condition_cache[name]

    @staticmethod
    def _truth(value: Any) -> bool:
        if isinstance(value, str):
            return value.lower() == "true"
        return bool(value)
