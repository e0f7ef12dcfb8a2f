"""Handlers written as on AWS: the management endpoint is always https://{domainName}/{stage}."""

from __future__ import annotations

import json
from typing import Any

import boto3


def post_back(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Push to the caller over HTTPS through boto3, then report what GetConnection saw."""
    ctx = event["requestContext"]
    client = boto3.client("apigatewaymanagementapi", endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}")
    client.post_to_connection(ConnectionId=ctx["connectionId"], Data=b"pushed over https")
    info = client.get_connection(ConnectionId=ctx["connectionId"])
    return {"statusCode": 200, "body": json.dumps({"sourceIp": info["Identity"]["SourceIp"],
                                                   "domainName": ctx["domainName"]})}


def fetch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Call an arbitrary HTTPS URL with boto3's verification settings; report success or the error class."""
    import botocore.httpsession
    import urllib3

    url = json.loads(event["body"])["url"]
    verify = botocore.httpsession.get_cert_path(_botocore_verify())
    try:
        urllib3.PoolManager(ca_certs=verify, cert_reqs="CERT_REQUIRED", retries=False).request("GET", url)
        return {"statusCode": 200, "body": "verified"}
    except Exception as exc:
        return {"statusCode": 200, "body": f"refused: {type(exc).__name__}"}


def _botocore_verify() -> Any:
    import botocore.session

    return botocore.session.get_session().get_config_variable("ca_bundle") or True
