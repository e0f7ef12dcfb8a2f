"""Make in-process handlers trust the local CA without touching the machine's trust store.

botocore verifies against `AWS_CA_BUNDLE` when set (its `ca_bundle` config variable, which the environment
overrides), else against certifi's bundle (botocore.httpsession.get_cert_path → certifi.where()), else its own
cacert.pem. `requests` reads `REQUESTS_CA_BUNDLE` the same way. So wsgw writes one file — the roots those
libraries would have used anyway, plus the local CA — and points both variables at it for this process only:
handlers reach `https://{domainName}/{stage}` on this node, while real AWS and every other HTTPS service still
verify against the normal roots. A bundle the user already set is kept and extended, never replaced.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Callable, Mapping
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


def patch_environment(values: Mapping[str, str]) -> Callable[[], None]:
    """Set process environment variables; the returned function puts the previous values back."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)

    def restore() -> None:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore


def trust_in_process(ca_cert: Path) -> Callable[[], None]:
    """Point AWS_CA_BUNDLE / REQUESTS_CA_BUNDLE at roots + `ca_cert` (next to it); returns an undo function."""
    user_bundle = os.environ.get("AWS_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE")
    base = Path(user_bundle) if user_bundle and not user_bundle.endswith(BUNDLE_NAME) else None
    bundle = write_trust_bundle(ca_cert, ca_cert.with_name(BUNDLE_NAME), base)
    return patch_environment({name: str(bundle) for name in BUNDLE_VARIABLES})
