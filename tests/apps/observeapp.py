"""Handlers for the observability tests: an authorizer that echoes its token into its context (the access
log must still never show it) and a handler whose exception message carries a credential."""

from __future__ import annotations

from typing import Any


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    token = str(headers.get("authorization") or (event.get("queryStringParameters") or {}).get("token") or "")
    arn = event.get("methodArn") or event.get("routeArn") or ""
    effect = "Allow" if "sekrit" in token else "Deny"
    return {"principalId": "user-7",
            "policyDocument": {"Version": "2012-10-17",
                               "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": arn}]},
            "context": {"user": "ada", "sessionToken": token}}


def leak(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("upstream refused Authorization: Bearer sekrit-in-exception token=sekrit-kw")


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": event.get("body") or "{}"}
