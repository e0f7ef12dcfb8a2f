"""The listener's TLS settings: TLS 1.2+ only (as AWS), ALPN http/1.1, and which certificate to serve."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from wsgw.errors import ConfigError

TLS_MODES = ("only", "both")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How one node speaks TLS on its port.

    mode "only": every connection must be TLS. "both": the first byte decides (a TLS ClientHello starts with
    0x16, HTTP with a letter), so wss/https and ws/http share the port. `dev_ca` is set when the certificate
    comes from the local development CA; the node then makes in-process handlers trust it.
    """

    context: ssl.SSLContext
    mode: str
    certfile: Path
    dev_ca: Path | None = None


def server_context(certfile: Path, keyfile: Path, key: str = "tls") -> ssl.SSLContext:
    """An SSLContext for serving: TLS 1.2 minimum, HTTP/1.1 ALPN; ConfigError naming `key` if files are bad."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.options |= ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(str(certfile), str(keyfile))
    except FileNotFoundError as exc:
        raise ConfigError.single(f"{key}.certfile", f"cannot read {exc.filename}: file not found") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError.single(f"{key}.certfile", f"cannot load certificate {certfile} with key {keyfile}: "
                                 f"{exc}; give a PEM certificate (chain) and its unencrypted PEM key") from None
    return context
