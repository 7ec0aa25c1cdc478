"""TLS for control and chunk traffic: node identities, and the SSL contexts both ends use.

Rules:
- A node's identity is a private key and a self-signed certificate (`cert.pem`, `key.pem` in one
  folder, the key readable by its owner only). Its SHA-256 fingerprint (of the DER certificate) is
  what peers pin: a pinned connection checks no chain and no host name, only that the server's
  certificate is one of the pinned ones (the fingerprint is the identity). With a CA file instead,
  the chain and the host name are checked as usual.
- A pin is checked inside the handshake, before a byte of ours crosses the connection, and the
  same context serves blocking sockets (chunk downloads in threads) and asyncio (the control
  websocket).
- TLS 1.2 at least. Nothing here opens a socket; the files are read and written only by
  `new_identity` / `load_identity` and the context builders.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanscatter.core.errors import ConfigError, LanscatterError

CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
_VALID_DAYS = 3650
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class TLSRefused(LanscatterError):
    """A server's certificate is not the one this node trusts."""


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits; accepts `sha256:` and colons as openssl
    prints them. Raises ValueError for anything else."""
    fp = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if not _HEX64.match(fp):
        raise ValueError(f"{text[:80]!r} is not a SHA-256 fingerprint (64 hex digits)")
    return fp


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def fingerprint_pem(pem: bytes) -> str:
    """The fingerprint of the first certificate in a PEM file's contents."""
    text = pem.decode("ascii", "replace")
    start = text.find("-----BEGIN CERTIFICATE-----")
    if start < 0:
        raise ValueError("no certificate in the file")
    return fingerprint_der(ssl.PEM_cert_to_DER_cert(text[start:text.index("-----END CERTIFICATE-----", start) + 25]))


def fingerprint_file(path: Path) -> str:
    try:
        return fingerprint_pem(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read a certificate from {path}: {exc}",
                          "make one with `lanscatter tls new --dir DIR`") from None


def new_identity(folder: Path, name: str, *, overwrite: bool = False) -> str:
    """Make a key and a self-signed certificate for `name` in `folder`; returns the fingerprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise ConfigError(f"{folder} already holds a TLS identity",
                          "keep it (its fingerprint: `lanscatter tls fingerprint`), or pass --force")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "lanscatter")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS)))
    if name and re.match(r"^[A-Za-z0-9.-]{1,253}$", name):
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    return fingerprint_pem(cert_pem)


def ensure_identity(folder: Path, name: str) -> str:
    """The fingerprint of the identity in `folder`, made first when the folder holds none."""
    if not (folder / CERT_FILE).exists() and not (folder / KEY_FILE).exists():
        return new_identity(folder, name)
    return fingerprint_file(folder / CERT_FILE)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """A node's TLS listener: its context, and whether control and chunk requests must use it."""

    context: ssl.SSLContext
    required: bool = False
    fingerprint: str = ""


def server_tls(cert: Path, key: Path, *, required: bool = False) -> ServerTLS:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} with key {key}: {exc}",
                          "make a pair with `lanscatter tls new --dir DIR`") from None
    return ServerTLS(ctx, required, fingerprint_file(cert))


class _PinnedObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()
        _check_pin(self.context, self.getpeercert(binary_form=True))


class _PinnedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_pin(self.context, self.getpeercert(binary_form=True))


class PinMismatch(ssl.SSLCertVerificationError):
    """The server's certificate is none of the pinned ones."""

    def __init__(self, got: str) -> None:
        super().__init__(f"certificate fingerprint {got} is not pinned")
        self.got = got


def _check_pin(ctx: Any, der: bytes | None) -> None:
    pins: frozenset[str] = getattr(ctx, "pins", frozenset())
    got = fingerprint_der(der) if der else "(none)"
    if got not in pins:
        raise PinMismatch(got)


def client_context(pins: Iterable[str] = (), ca: Path | None = None) -> ssl.SSLContext:
    """The context a node connects with: pinned by fingerprint, or checked against a CA file
    (chain and host name). With both, the CA checks the chain and the pin the certificate."""
    pinned = frozenset(normalize_fingerprint(p) for p in pins)
    if not pinned and ca is None:
        raise ConfigError("TLS needs a certificate to trust", "give --tls-fingerprint or --tls-ca")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {ca}: {exc}", "give a PEM file of CA certificates") from None
    if pinned:
        # The fingerprint is the identity: the name the URL uses (often an address) is not checked.
        ctx.check_hostname = False
        if ca is None:
            ctx.verify_mode = ssl.CERT_NONE
        ctx.pins = pinned                              # type: ignore[attr-defined]
        ctx.sslobject_class = _PinnedObject
        ctx.sslsocket_class = _PinnedSocket
    return ctx


def is_tls(transport: Any) -> bool:
    """Whether a server-side asyncio transport speaks TLS."""
    return transport is not None and transport.get_extra_info("sslcontext") is not None
