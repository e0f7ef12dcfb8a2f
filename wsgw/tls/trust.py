"""Make in-process handlers trust the local CA without touching the machine's trust store.

botocore verifies against `AWS_CA_BUNDLE` when set (its `ca_bundle` config variable, which the environment
overrides), else against certifi's bundle (botocore.httpsession.get_cert_path → certifi.where()), else its own
cacert.pem. `requests` reads `REQUESTS_CA_BUNDLE` the same way. So wsgw writes one file — the roots those
libraries would have used anyway, plus the local CA — and points both variables at it in the environment of
the node's in-process functions (never the process's own): handlers reach `https://{domainName}/{stage}` on
this node, while real AWS and every other HTTPS service still verify against the normal roots.
A bundle the user already set is kept and extended, never replaced.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BUNDLE_VARIABLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
BUNDLE_NAME = "trust-bundle.pem"


def default_roots() -> Path | None:
    """The roots botocore uses when nothing is configured: certifi's, else botocore's own, else the system's."""
    try:
        import certifi

        return Path(certifi.where())
    except ImportError:
        pass
    spec = importlib.util.find_spec("botocore")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "cacert.pem"
        if bundled.exists():
            return bundled
    system = ssl.get_default_verify_paths().cafile
    return Path(system) if system else None


def write_trust_bundle(ca_cert: Path, destination: Path, base: Path | None = None) -> Path:
    """`base` (default: default_roots()) followed by the CA, written atomically to `destination`."""
    roots = base or default_roots()
    parts = [roots.read_bytes().rstrip() + b"\n"] if roots is not None and roots.exists() else []
    parts.append(b"# wsgw local development CA\n" + ca_cert.read_bytes())
    tmp = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    tmp.write_bytes(b"".join(parts))
    os.replace(tmp, destination)
    return destination


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """The roots a handler's HTTPS client would have used, plus the local CA, in one file next to the CA.

    Building it reads nothing but the given environment; `write()` makes the file (when the node starts).
    `variables` are what in-process handlers see (in their function environment, never the process's).
    """

    ca_cert: Path
    base: Path | None

    @property
    def path(self) -> Path:
        return self.ca_cert.with_name(BUNDLE_NAME)

    @property
    def variables(self) -> dict[str, str]:
        return {name: str(self.path) for name in BUNDLE_VARIABLES}

    def write(self) -> Path:
        return write_trust_bundle(self.ca_cert, self.path, self.base)


def trust_bundle(ca_cert: Path, environ: Mapping[str, str]) -> TrustBundle:
    """The bundle for `ca_cert`, extending a bundle the user already set (AWS_CA_BUNDLE / REQUESTS_CA_BUNDLE)."""
    user_bundle = environ.get("AWS_CA_BUNDLE") or environ.get("REQUESTS_CA_BUNDLE")
    base = Path(user_bundle) if user_bundle and not user_bundle.endswith(BUNDLE_NAME) else None
    return TrustBundle(ca_cert, base)
