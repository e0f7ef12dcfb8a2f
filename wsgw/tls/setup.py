"""From `--tls/--certfile/--keyfile` (or the config's `tls:`) to TlsSettings, making dev certificates if needed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from wsgw.errors import ConfigError
from wsgw.tls.context import TLS_MODES, TlsSettings, server_context
from wsgw.tls.devca import ca_directory, ensure_api_certificates


def build_tls(mode: str, certfile: Path | None = None, keyfile: Path | None = None,
              ca_dir: Path | None = None, host: str | None = None, api_hosts: Iterable[str] = ()) -> TlsSettings:
    """A real certificate when certfile/keyfile are given, else the local development CA's (made once), naming
    `api_hosts` too (AWS's host names for the API, which handlers reach this node by: wsgw.runtimes.endpoint_alias)."""
    if mode not in TLS_MODES:
        raise ConfigError.single("tls.mode", f"'{mode}' is not one of: {', '.join(TLS_MODES)}")
    if (certfile is None) != (keyfile is None):
        missing = "tls.keyfile" if keyfile is None else "tls.certfile"
        raise ConfigError.single(missing, "give both --certfile and --keyfile (or neither, for a local dev CA)")
    if certfile is not None and keyfile is not None:
        return TlsSettings(server_context(certfile, keyfile), mode, certfile)
    names = [host] if host and _specific(host) else []
    try:
        certs = ensure_api_certificates(ca_directory(ca_dir), api_hosts, names)
    except OSError as exc:
        raise ConfigError.single("tls", f"cannot create the local CA in {ca_directory(ca_dir)}: {exc}; "
                                 "set WSGW_CA_DIR (or --ca-dir) to a writable folder") from None
    return TlsSettings(server_context(certs.cert, certs.key), mode, certs.cert, dev_ca=certs.ca_cert)


def _specific(host: str) -> bool:
    """A host worth naming in the certificate: not a wildcard bind address."""
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return True
