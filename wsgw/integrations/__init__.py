"""Integration types by name; adding a type is a new module and one entry here."""

from __future__ import annotations

from wsgw.config import ApiConfig, IntegrationSpec
from wsgw.errors import ConfigError
from wsgw.integrations.amqp import AmqpIntegration
from wsgw.integrations.aws_lambda import AwsLambdaIntegration
from wsgw.integrations.aws_proxy import AwsProxyIntegration
from wsgw.integrations.aws_service import AwsServiceIntegration
from wsgw.integrations.base import Integration, IntegrationFailed, Refused, Resources
from wsgw.integrations.group import GroupIntegration
from wsgw.integrations.http import HttpIntegration
from wsgw.integrations.http_event import HttpEventIntegration
from wsgw.integrations.http_proxy import HttpProxyIntegration
from wsgw.integrations.mock import MockIntegration
from wsgw.integrations.nats import NatsIntegration
from wsgw.integrations.python import PythonIntegration
from wsgw.integrations.redis_stream import RedisStreamIntegration
from wsgw.integrations.runtime import RuntimeIntegration
from wsgw.integrations.static import StaticIntegration

INTEGRATION_TYPES: dict[str, type[Integration]] = {
    cls.type_name: cls
    for cls in (PythonIntegration, RuntimeIntegration, MockIntegration, HttpProxyIntegration, HttpIntegration,
                HttpEventIntegration, AwsLambdaIntegration, GroupIntegration, StaticIntegration,
                AwsServiceIntegration, AwsProxyIntegration, RedisStreamIntegration, NatsIntegration, AmqpIntegration)
}


def build_integration(spec: IntegrationSpec, api: ApiConfig, resources: Resources,
                      function_name: str) -> Integration:
    """Instantiate the class registered for spec.type; ConfigError names the key when it is unknown."""
    cls = INTEGRATION_TYPES.get(spec.type)
    if cls is None:
        raise ConfigError.single(f"{spec.key}.type", f"'{spec.type}' is not one of: "
                                 + ", ".join(sorted(INTEGRATION_TYPES)))
    return cls.from_spec(spec, api, resources, function_name)


__all__ = ["INTEGRATION_TYPES", "Integration", "IntegrationFailed", "Refused", "Resources", "build_integration"]
