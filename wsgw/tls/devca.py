"""A local development CA and a server certificate signed by it, made once (like mkcert) with `cryptography`.

Files live in one directory (see `ca_directory`): `ca.pem` / `ca-key.pem` for the CA, `server.pem` /
`server-key.pem` for the listener. Private keys are written mode 0600, the directory 0700. The server
certificate is re-issued (the CA kept) when it is missing, near expiry, not signed by the CA on disk, or does
not cover a name the node is asked to serve.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 825          # the longest validity Apple's TLS clients accept for server certificates
RENEW_BEFORE = dt.timedelta(days=30)


def ca_directory(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $WSGW_CA_DIR, else $WSGW_HOME/ca, else $XDG_DATA_HOME/wsgw/ca (~/.local/share/wsgw/ca)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("WSGW_CA_DIR"):
        return Path(os.environ["WSGW_CA_DIR"]).expanduser()
    if os.environ.get("WSGW_HOME"):
        return Path(os.environ["WSGW_HOME"]).expanduser() / "ca"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "wsgw" / "ca"


@dataclass(frozen=True, slots=True)
class DevCertificates:
    directory: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    created_ca: bool
    issued_cert: bool


def ensure_dev_certificates(directory: Path | None = None, names: Iterable[str] = ()) -> DevCertificates:
    """Create the CA once and a server certificate covering DEFAULT_NAMES plus `names`; reuse both later."""
    home = directory or ca_directory()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    wanted = _normalise_names([*DEFAULT_NAMES, *names])
    paths = (home / "ca.pem", home / "ca-key.pem", home / "server.pem", home / "server-key.pem")
    ca_cert_path, ca_key_path, cert_path, key_path = paths
    with _locked(home / ".lock"):
        created_ca = False
        if not (ca_cert_path.exists() and ca_key_path.exists()):
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_cert = _make_ca(ca_key)
            _write_private(ca_key_path, _pem_key(ca_key))
            _write_public(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM))
            created_ca = True
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path} is not the EC key wsgw made; delete {home} to start over")
        issued = False
        if created_ca or not _server_cert_ok(cert_path, key_path, ca_cert, wanted):
            server_key = ec.generate_private_key(ec.SECP256R1())
            cert = _make_server_cert(server_key, ca_cert, loaded, wanted)
            _write_private(key_path, _pem_key(server_key))
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            issued = True
    return DevCertificates(home, ca_cert_path, ca_key_path, cert_path, key_path, created_ca, issued)


def ensure_api_certificates(directory: Path | None, api_hosts: Iterable[str],
                            names: Iterable[str] = ()) -> DevCertificates:
    """`ensure_dev_certificates`, the server certificate also naming each of `api_hosts`.

    `api_hosts` are AWS's host names for the APIs a node serves (`{apiId}.execute-api.{region}.amazonaws.com`,
    wsgw.runtimes.endpoint_alias): handlers that reach the gateway through them check its certificate
    against those names, and trust the local CA for it.
    """
    return ensure_dev_certificates(directory, [*names, *api_hosts])


def _normalise_names(names: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        name = name.strip().strip("[]").lower()
        if not name or name in ("0.0.0.0", "::") or name in out:
            continue
        out.append(name)
    return tuple(out)


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    who = f"{os.environ.get('USER', 'user')}@{socket.gethostname()}"
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgw local development CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"wsgw development CA {who}"[:64]),
    ])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server_cert(key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                      ca_key: ec.EllipticCurvePrivateKey, names: tuple[str, ...]) -> x509.Certificate:
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgw development certificate"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _server_cert_ok(cert_path: Path, key_path: Path, ca_cert: x509.Certificate, names: tuple[str, ...]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # unreadable, foreign or re-keyed CA: issue a fresh one
        return False
    covered = set(_general_names(names)) <= set(san)
    return covered and cert.not_valid_after_utc - RENEW_BEFORE > _now()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically, readable by the owner only (0600) from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise creation between processes starting at once (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
