"""Verifying AWS Signature Version 4 on requests to the gateway (service `execute-api`), as API Gateway does.

The canonical request and the signing key come from botocore's own signer, the implementation every AWS SDK
for Python signs with, so a request boto3 signed verifies here byte for byte; only the comparison is ours, and
it runs in constant time. Both forms are read: the `Authorization` header and the presigned query
(`X-Amz-Signature`, what a browser uses for a signed WebSocket `$connect`). Pure: the clock is passed in.
Errors carry API Gateway's 403 error types and messages (docs/aws-contract.md, "IAM authorization").
"""

from __future__ import annotations

import calendar
import datetime
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM: Final = "AWS4-HMAC-SHA256"
SERVICE: Final = "execute-api"
MAX_SKEW_SECONDS: Final = 300          # AWS: a signature is valid 5 minutes either side of the server's clock
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"

MISSING_TOKEN: Final = "MissingAuthenticationTokenException"
INCOMPLETE: Final = "IncompleteSignatureException"
UNRECOGNIZED: Final = "UnrecognizedClientException"
INVALID: Final = "InvalidSignatureException"

_MISMATCH: Final = ("The request signature we calculated does not match the signature you provided. Check your "
                    "AWS Secret Access Key and signing method. Consult the service documentation for details.")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_HEADER_PARAM = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]*)")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One credential the gateway accepts: an access key id and its secret."""

    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True, slots=True)
class SignedCaller:
    """Who signed a request that verified: what requestContext.identity reports."""

    access_key_id: str
    region: str


class SignatureError(Exception):
    """A request that fails verification: API Gateway's 403 with this error type and message."""

    status = 403

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class _Signature:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    expires: int | None
    in_query: bool


def verify(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    keys: Mapping[str, SigningKey],
    region: str,
    now: float | None = None,
) -> SignedCaller:
    """Check a request's SigV4 signature for `execute-api` in `region`; the caller, or SignatureError.

    `raw_path` and `query_string` are as they arrived on the wire (still percent-encoded): the signer
    signed those bytes. `keys` maps access key ids to their secrets.
    """
    now = time.time() if now is None else now
    sig = _read_signature(headers, query_string)
    if sig.service != SERVICE:
        raise SignatureError(INVALID, f"Credential should be scoped to correct service: '{SERVICE}'.")
    if sig.region != region:
        raise SignatureError(INVALID, f"Credential should be scoped to a valid region, not '{sig.region}'.")
    if sig.amz_date[:8] != sig.date:
        raise SignatureError(INVALID, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                                      "of date from HTTP.")
    _check_time(sig, now)
    key = keys.get(sig.access_key_id)
    if key is None:
        raise SignatureError(UNRECOGNIZED, "The security token included in the request is invalid.")
    expected = _expected_signature(method, raw_path, query_string, headers, body, key, sig)
    if not hmac.compare_digest(expected.encode("ascii"), sig.signature.encode("ascii", "replace")):
        raise SignatureError(INVALID, _MISMATCH)
    return SignedCaller(sig.access_key_id, sig.region)


def _read_signature(headers: Sequence[tuple[str, str]], query_string: str) -> _Signature:
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    authorization = _header(headers, "authorization")
    if authorization is not None and authorization.startswith(ALGORITHM + " "):
        params = dict(_HEADER_PARAM.findall(authorization[len(ALGORITHM) + 1:]))
        for name in ("Credential", "SignedHeaders", "Signature"):
            if not params.get(name):
                raise SignatureError(INCOMPLETE, f"Authorization header requires '{name}' parameter. "
                                                 f"Authorization={authorization[:40]}...")
        amz_date = _header(headers, "x-amz-date")
        if amz_date is None:
            raise SignatureError(INCOMPLETE, "Authorization header requires existence of either a 'X-Amz-Date' "
                                             "or a 'Date' header.")
        return _signature(params["Credential"], params["SignedHeaders"], params["Signature"], amz_date, None, False)
    if "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise SignatureError(INCOMPLETE, f"X-Amz-Algorithm must be {ALGORITHM}.")
        missing = [n for n in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Date") if not query.get(n)]
        if missing:
            raise SignatureError(INCOMPLETE, f"Query-string authentication requires the {missing[0]} parameter.")
        raw_expires = query.get("X-Amz-Expires", "")
        expires = int(raw_expires) if raw_expires.isdigit() and len(raw_expires) < 7 else None
        if raw_expires and expires is None:
            raise SignatureError(INCOMPLETE, "X-Amz-Expires must be a whole number of seconds.")
        return _signature(query["X-Amz-Credential"], query["X-Amz-SignedHeaders"], query["X-Amz-Signature"],
                          query["X-Amz-Date"], expires, True)
    if authorization is not None:
        raise SignatureError(INCOMPLETE, f"Authorization header requires the {ALGORITHM} algorithm.")
    raise SignatureError(MISSING_TOKEN, "Missing Authentication Token")


def _signature(credential: str, signed_headers: str, signature: str, amz_date: str, expires: int | None,
               in_query: bool) -> _Signature:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SignatureError(INCOMPLETE, "Credential must have the form <key>/<date>/<region>/<service>/aws4_request.")
    if not _AMZ_DATE.match(amz_date):
        raise SignatureError(INCOMPLETE, "X-Amz-Date must be in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
    names = tuple(signed_headers.lower().split(";"))
    if "host" not in names:
        raise SignatureError(INVALID, "'Host' must be a signed header.")
    return _Signature(parts[0], parts[1], parts[2], parts[3], names, signature, amz_date, expires, in_query)


def _check_time(sig: _Signature, now: float) -> None:
    signed_at = _epoch(sig.amz_date)
    if signed_at is None:
        raise SignatureError(INCOMPLETE, "X-Amz-Date is not a valid date.")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    if sig.expires is not None and now > signed_at + sig.expires:
        raise SignatureError(INVALID, f"Signature expired: {sig.amz_date} is now earlier than {stamp} "
                                      f"({sig.amz_date} + {sig.expires} s.)")
    if signed_at < now - MAX_SKEW_SECONDS:
        floor = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - MAX_SKEW_SECONDS))
        raise SignatureError(INVALID, f"Signature expired: {sig.amz_date} is now earlier than {floor} "
                                      f"({stamp} - 5 min.)")
    if signed_at > now + MAX_SKEW_SECONDS:
        ceiling = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + MAX_SKEW_SECONDS))
        raise SignatureError(INVALID, f"Signature not yet current: {sig.amz_date} is still later than {ceiling} "
                                      f"({stamp} + 5 min.)")


def _expected_signature(method: str, raw_path: str, query_string: str, headers: Sequence[tuple[str, str]],
                        body: bytes, key: SigningKey, sig: _Signature) -> str:
    signed: dict[str, list[str]] = {}
    for name, value in headers:
        lname = name.lower()
        if lname in sig.signed_headers:
            signed.setdefault(lname, []).append(value)
    missing = [n for n in sig.signed_headers if n not in signed]
    if missing:
        raise SignatureError(INVALID, _MISMATCH)
    content_sha = signed.get("x-amz-content-sha256")
    if content_sha is not None and content_sha[0] != UNSIGNED_PAYLOAD \
            and not hmac.compare_digest(content_sha[0], hashlib.sha256(body).hexdigest()):
        raise SignatureError(INVALID, "The provided 'x-amz-content-sha256' header does not match what was computed.")
    query = query_string
    if sig.in_query:   # the signature itself is not part of what was signed
        query = "&".join(p for p in query_string.split("&") if not p.startswith("X-Amz-Signature="))
    url = f"https://{signed['host'][0]}{raw_path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method.upper(), url=url,
                         headers={name: ",".join(values) for name, values in signed.items()}, data=body)
    request.context["timestamp"] = sig.amz_date
    request.context["payload_signing_enabled"] = True      # execute-api signs the body's hash, presigned too
    signer = SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), sig.service, sig.region)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    # botocore's signature() derives the signing key (four HMACs) on every call; it only changes with the
    # secret, the day, the region and the service, so it is derived once per day instead.
    signing_key = _signing_key(key.secret_access_key, sig.date, sig.region, sig.service)
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC chain over the date, region, service and "aws4_request" (as botocore's)."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _epoch(amz_date: str) -> int | None:
    """`YYYYMMDDTHHMMSSZ` → epoch seconds (already shape-checked), or None when not a real date and time."""
    try:
        moment = datetime.datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]),
                                   int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15]))
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple())


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
