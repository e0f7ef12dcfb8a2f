"""The JWT authorizer's example (wsgw.jwt.yaml): a demo OIDC issuer to mint tokens, and a handler reading claims.

    python -m handlers.jwt_demo                      # terminal 1: an issuer on http://127.0.0.1:9000/, prints a token
    .venv/bin/wsgw run -c wsgw.jwt.yaml --port 8081  # terminal 2
    .venv/bin/python -m websockets "ws://127.0.0.1:8081/dev?token=TOKEN"   # terminal 3
    > {"action": "whoami"}

A real deployment points `issuer` at its identity provider (Cognito, Auth0, Keycloak …) instead; wsgw finds
the keys through the issuer's `/.well-known/openid-configuration`. Browsers, which cannot set headers, offer
the token as a WebSocket subprotocol next to the real one: `new WebSocket(url, ["chat", token])`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Claims of the connection's token, as the JWT authorizer passed them on."""
    authorizer = event["requestContext"].get("authorizer") or {}
    return {"statusCode": 200, "body": json.dumps({
        "principalId": authorizer.get("principalId"),
        "claims": (authorizer.get("jwt") or {}).get("claims"),
    })}


class DemoIssuer:
    """One EC P-256 signing key, published as a JWKS; mints short-lived tokens. For trying things out only."""

    def __init__(self, issuer: str, audience: str = "chat") -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "demo-1"

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def token(self, sub: str, ttl_seconds: int = 3600, scope: str = "chat") -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "exp": now + ttl_seconds,
                  "scope": scope, "name": sub}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


def serve(issuer: DemoIssuer, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the discovery document and the JWKS in a background thread; returns the running server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = issuer.issuer.rstrip("/")
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.issuer, "jwks_uri": base + "/jwks.json"}
            elif self.path == "/jwks.json":
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="a demo OIDC issuer for wsgw.jwt.yaml")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--sub", default="ada")
    args = parser.parse_args()
    issuer = DemoIssuer(f"http://127.0.0.1:{args.port}/")
    server = serve(issuer, "127.0.0.1", args.port)
    print(f"issuer {issuer.issuer} — a token for '{args.sub}' (valid one hour):\n{issuer.token(args.sub)}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
