"""The JWT authorizer's public keys: loaded from a JWKS URL, a local file or OIDC discovery, then cached.

- Keys are kept for ``max_age_s`` (AWS's JWT authorizers cache them for up to two hours); after that the
  next token triggers a reload, and the old keys stay in use if the reload fails.
- A token whose ``kid`` is unknown triggers a reload at most once per ``refresh_s``, so a stream of forged
  ``kid``s cannot turn into a stream of requests to the identity provider.
- Every fetch is bounded by ``timeout_s``; concurrent connects share one fetch. When no keys could ever be
  loaded, connects fail fast (500) and a new attempt is made at most every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson

from wsgw.config.authorizers import is_url

log = logging.getLogger("wsgw.authorizers")

MAX_DOCUMENT_BYTES = 1024 * 1024
RETRY_AFTER_FAILURE_S = 5.0

#: What each JWK key type (and curve) may verify.
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})


class JwksUnavailable(Exception):
    """No keys could be loaded (the endpoint is down, slow, or serves garbage)."""


def compatible(jwk: dict[str, Any], alg: str) -> bool:
    """May this JWK verify a token signed with ``alg``? (Never an HMAC: a JWKS holds public keys.)"""
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        return False
    kty = jwk.get("kty")
    if kty == "RSA":
        return alg in _RSA_ALGS
    if kty == "EC":
        return _EC_ALGS.get(alg) == jwk.get("crv")
    if kty == "OKP":
        return alg == "EdDSA" and jwk.get("crv") in _OKP_CURVES
    return False


class JwksStore:
    """Where the keys come from, the keys last loaded, and when to load them again."""

    def __init__(self, jwks_uri: str | None, issuer: str, timeout_s: float, refresh_s: float,
                 max_age_s: float, base_dir: Path) -> None:
        self.jwks_uri = jwks_uri             # None: find it through the issuer's OIDC discovery document
        self.issuer = issuer
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.base_dir = base_dir
        self.fetches = 0                     # load attempts (for tests and metrics)
        self._keys: list[dict[str, Any]] | None = None
        self._parsed: dict[tuple[int, str], jwt.PyJWK] = {}
        self._loaded_at = 0.0
        self._attempted_at = -1e18
        self._failed = False
        self._loading: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The key that verifies a token with this header, None when there is none; JwksUnavailable when no keys."""
        now = time.monotonic()
        loaded = False
        if self._keys is None:
            if self._failed and now - self._attempted_at < min(self.refresh_s, RETRY_AFTER_FAILURE_S):
                raise JwksUnavailable("the last attempt to load the JWKS failed moments ago")
            await self._load()
            loaded = True
        elif now - self._loaded_at > self.max_age_s and now - self._attempted_at >= self.refresh_s:
            await self._load()
            loaded = True
        jwk = self._find(kid)
        if jwk is None and kid is not None and not loaded and now - self._attempted_at >= self.refresh_s:
            await self._load()               # an unknown kid: the keys may have been rotated
            jwk = self._find(kid)
        if jwk is None or not compatible(jwk, alg):
            return None
        return self._parse(jwk, alg)

    async def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----- internals -------------------------------------------------------------------------------

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        keys = self._keys or []
        if kid is None:                      # no kid: acceptable only when the set holds one key
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.get("kid") == kid), None)

    def _parse(self, jwk: dict[str, Any], alg: str) -> jwt.PyJWK | None:
        slot = (id(jwk), alg)
        parsed = self._parsed.get(slot)
        if parsed is None:
            try:
                parsed = jwt.PyJWK(jwk, algorithm=alg)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
                log.warning("JWKS key %r cannot be used for %s: %s", jwk.get("kid"), alg, exc)
                return None
            self._parsed[slot] = parsed
        return parsed

    async def _load(self) -> None:
        """One shared load; raises JwksUnavailable only when no keys are held at all."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load_once())
            self._loading.add_done_callback(self._loaded)
        await asyncio.shield(self._loading)
        if self._keys is None:
            raise JwksUnavailable("no JWKS could be loaded")

    def _loaded(self, _task: asyncio.Task[None]) -> None:
        self._loading = None

    async def _load_once(self) -> None:
        self.fetches += 1
        self._attempted_at = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                keys = await self._fetch_keys()
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as exc:
            self._failed = True
            what = "keeping the keys loaded before" if self._keys is not None else "refusing tokens (500)"
            log.warning("JWKS for issuer %s could not be loaded (%s: %s); %s", self.issuer,
                        type(exc).__name__, exc or "timed out", what)
            return
        self._failed = False
        self._keys = keys
        self._parsed.clear()
        self._loaded_at = time.monotonic()

    async def _fetch_keys(self) -> list[dict[str, Any]]:
        uri = self.jwks_uri
        if uri is None:
            discovery = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            found = discovery.get("jwks_uri")
            if not isinstance(found, str) or not is_url(found):
                raise ValueError("the OIDC discovery document has no http(s) jwks_uri")
            uri = found
        document = await self._get_json(uri) if is_url(uri) else await asyncio.to_thread(self._read_file, uri)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise ValueError("the JWKS has no 'keys' list")
        usable = [k for k in keys if isinstance(k, dict) and isinstance(k.get("kty"), str) and k.get("use") != "enc"]
        return usable

    def _read_file(self, path: str) -> dict[str, Any]:
        file = Path(path) if Path(path).is_absolute() else self.base_dir / path
        data = file.read_bytes()[:MAX_DOCUMENT_BYTES + 1]
        return _json_object(data)

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        async with self._session.get(url, headers={"Accept": "application/json"}, allow_redirects=True) as resp:
            if resp.status != 200:
                raise ValueError(f"GET {url} answered {resp.status}")
            data = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
        return _json_object(data)


def _json_object(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document
