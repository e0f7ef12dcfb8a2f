"""`group`: a relay route. The client's message is published to a group it is a member of, without a handler
call: `{type: group, group: "room:${request.body.room}", excludeSelf: true}`. Membership is the
authorization: a non-member (or a group the message does not name) gets AWS's Forbidden frame.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from wsgw.aws.lambda_context import LambdaContext
from wsgw.config import ApiConfig, GroupOptions, IntegrationSpec
from wsgw.group_config import valid_group
from wsgw.integrations.base import Integration, Refused, Resources
from wsgw.selection import RouteSelector

PUBLISHER = "wsgw.groups"      # the node's group operations in Resources.shared (the gateway puts them there)


class GroupPublisher(Protocol):
    """What a relay needs from the node: is the sender a member, and publish."""

    def is_member(self, group: str, connection_id: str) -> bool: ...

    async def publish(self, group: str, data: bytes, exclude: str | None = None) -> int: ...


class GroupIntegration(Integration):
    type_name = "group"

    def __init__(self, spec: IntegrationSpec, function_name: str, group: RouteSelector, exclude_self: bool,
                 resources: Resources) -> None:
        super().__init__(spec, function_name)
        self.group = group
        self.exclude_self = exclude_self
        self.resources = resources

    @classmethod
    def from_spec(cls, spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                  function_name: str) -> GroupIntegration:
        options = spec.options
        assert isinstance(options, GroupOptions)
        return cls(spec, function_name, options.group, options.exclude_self, resources)

    async def invoke(self, event: dict[str, Any], context: LambdaContext) -> object:
        publisher: GroupPublisher = self.resources.shared[PUBLISHER]
        body = event.get("body") or ""
        data = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()
        group = self.group.select(data) if self.group.paths else self.group.expression
        sender = event["requestContext"]["connectionId"]
        if not group or not valid_group(group) or not publisher.is_member(group, sender):
            raise Refused(f"{sender} is not a member of {group!r}")
        delivered = await publisher.publish(group, data, sender if self.exclude_self else None)
        return {"statusCode": 200, "body": f'{{"delivered": {delivered}}}'}
