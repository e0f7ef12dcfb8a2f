"""SigV4 verification with plain values: requests signed by botocore itself (the signer boto3 uses) verify;
every tampering, an unknown key, a wrong secret and a clock beyond AWS's 5 minutes get API Gateway's 403s."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from wsgw.aws.sigv4 import (
    INCOMPLETE,
    INVALID,
    MISSING_TOKEN,
    UNRECOGNIZED,
    SignatureError,
    SigningKey,
    verify,
)

KEYS = {"AKIDEXAMPLE": SigningKey("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")}
REGION = "us-east-1"
HOST = "127.0.0.1:8080"


def signed(method: str, path: str, body: bytes = b"", query: str = "", secret: str | None = None,
           key_id: str = "AKIDEXAMPLE", region: str = REGION, service: str = "execute-api",
           at: float | None = None, presign: bool = False) -> tuple[str, str, list[tuple[str, str]]]:
    """Sign as boto3 does; (raw_path, query, headers) as they would arrive on the wire."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    creds = Credentials(key_id, secret or KEYS["AKIDEXAMPLE"].secret_access_key)
    signer: SigV4Auth = SigV4QueryAuth(creds, service, region, expires=60) if presign \
        else SigV4Auth(creds, service, region)
    if at is None:
        signer.add_auth(request)
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))
        request.context["timestamp"] = stamp
        if not presign:
            request.headers["X-Amz-Date"] = stamp
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        signer._inject_signature_to_request(request, signature)
    parts = urlsplit(request.url)
    headers = [(k, v) for k, v in request.headers.items()]
    headers.append(("Host", HOST))
    return parts.path, parts.query, headers


def test_a_boto_signed_post_to_connections_verifies_and_names_the_key() -> None:
    path, query, headers = signed("POST", "/dev/@connections/abc%3D", b'{"x": 1}')
    caller = verify("POST", path, query, headers, b'{"x": 1}', KEYS, REGION)
    assert caller.access_key_id == "AKIDEXAMPLE" and caller.region == REGION


def test_a_presigned_websocket_handshake_verifies() -> None:
    path, query, headers = signed("GET", "/dev", query="name=ada", presign=True)
    assert "X-Amz-Signature=" in query
    assert verify("GET", path, query, headers, b"", KEYS, REGION).access_key_id == "AKIDEXAMPLE"


def test_an_unsigned_request_is_missing_authentication_token() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("POST", "/dev/@connections/x", "", [("Host", HOST)], b"", KEYS, REGION)
    assert (caught.value.error_type, caught.value.message) == (MISSING_TOKEN, "Missing Authentication Token")
    assert caught.value.status == 403


def test_a_wrong_secret_does_not_match() -> None:
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi", secret="not-the-secret")
    with pytest.raises(SignatureError) as caught:
        verify("POST", path, query, headers, b"hi", KEYS, REGION)
    assert caught.value.error_type == INVALID
    assert caught.value.message.startswith("The request signature we calculated does not match")


def test_an_unknown_access_key_is_an_invalid_security_token() -> None:
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi", key_id="AKIDOTHER")
    with pytest.raises(SignatureError) as caught:
        verify("POST", path, query, headers, b"hi", KEYS, REGION)
    assert caught.value.error_type == UNRECOGNIZED


@pytest.mark.parametrize(("method", "path", "body", "query"), [
    ("POST", "/dev/@connections/x", b"altered", ""),          # the body replayed with other bytes
    ("POST", "/dev/@connections/y", b"hi", ""),               # another connection
    ("DELETE", "/dev/@connections/x", b"hi", ""),             # another operation
    ("POST", "/dev/@connections/x", b"hi", "extra=1"),        # a parameter added
])
def test_any_change_to_a_signed_request_breaks_the_signature(method: str, path: str, body: bytes,
                                                             query: str) -> None:
    _, _, headers = signed("POST", "/dev/@connections/x", b"hi")
    with pytest.raises(SignatureError) as caught:
        verify(method, path, query, headers, body, KEYS, REGION)
    assert caught.value.error_type == INVALID


def test_a_signed_header_that_was_changed_breaks_the_signature() -> None:
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi")
    headers = [(k, "20990101T000000Z" if k == "X-Amz-Date" else v) for k, v in headers]
    with pytest.raises(SignatureError):
        verify("POST", path, query, headers, b"hi", KEYS, REGION, now=time.time())


@pytest.mark.parametrize(("offset", "words"), [(-301, "Signature expired"), (+301, "Signature not yet current")])
def test_a_clock_skew_beyond_five_minutes_is_refused(offset: float, words: str) -> None:
    now = time.time()
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi", at=now + offset)
    with pytest.raises(SignatureError) as caught:
        verify("POST", path, query, headers, b"hi", KEYS, REGION, now=now)
    assert caught.value.error_type == INVALID and caught.value.message.startswith(words)


def test_a_skew_within_five_minutes_is_accepted() -> None:
    now = time.time()
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi", at=now - 290)
    assert verify("POST", path, query, headers, b"hi", KEYS, REGION, now=now).access_key_id == "AKIDEXAMPLE"


def test_a_presigned_url_past_its_expiry_is_refused() -> None:
    now = time.time()
    path, query, headers = signed("GET", "/dev", presign=True, at=now - 120)   # expires=60
    with pytest.raises(SignatureError) as caught:
        verify("GET", path, query, headers, b"", KEYS, REGION, now=now)
    assert caught.value.message.startswith("Signature expired")


@pytest.mark.parametrize(("region", "service", "words"), [
    ("eu-west-1", "execute-api", "valid region"),
    (REGION, "lambda", "correct service"),
])
def test_a_signature_scoped_elsewhere_is_refused(region: str, service: str, words: str) -> None:
    path, query, headers = signed("POST", "/dev/@connections/x", b"hi", region=region, service=service)
    with pytest.raises(SignatureError) as caught:
        verify("POST", path, query, headers, b"hi", KEYS, REGION)
    assert words in caught.value.message


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/execute-api/aws4_request",
    "AWS4-HMAC-SHA256 Credential=AKID, SignedHeaders=host, Signature=00",
    "AWS4-HMAC-SHA256 " + "Credential=" + "x" * 10_000,
    "AWS4-HMAC-SHA256 Credential=A/2/3/4/aws4_request, SignedHeaders=x-amz-date, Signature=00",
    "Basic dXNlcjpwYXNz",
    "AWS4-HMAC-SHA256",
])
def test_malformed_authorization_headers_get_a_clear_403(authorization: str) -> None:
    headers = [("Host", HOST), ("Authorization", authorization), ("X-Amz-Date", "20240101T000000Z")]
    with pytest.raises(SignatureError) as caught:
        verify("POST", "/dev/@connections/x", "", headers, b"", KEYS, REGION)
    assert caught.value.error_type in (INCOMPLETE, INVALID)
    assert len(caught.value.message) < 300
