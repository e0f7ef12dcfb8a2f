"""An AWS-style REQUEST authorizer for the chat: who may connect, decided before the handshake completes.

wsgw.yaml runs it on $connect with `identitySource: [route.request.querystring.name]`, so the gateway answers
401 by itself when `?name=` is missing and caches each name's policy for 5 minutes. Unchanged, the same
function works as a Lambda REQUEST authorizer on Amazon API Gateway. Connect with
`ws://127.0.0.1:8080/dev?name=ada`; handlers then find the name in `requestContext.authorizer.name`.
"""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
RESERVED = frozenset({"admin", "root", "system"})


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = (event.get("queryStringParameters") or {}).get("name", "")
    if not NAME.match(name):
        raise Exception("Unauthorized")            # the client's handshake fails with 401
    effect = "Deny" if name.lower() in RESERVED else "Allow"   # Deny: 403
    return {
        "principalId": name,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}],
        },
        "context": {"name": name, "reserved": effect == "Deny"},   # flat strings, numbers, booleans only
    }
