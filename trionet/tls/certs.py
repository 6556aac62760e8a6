"""The interception CA and the per-host leaf certificates it signs (sans-IO).

The CA is built or parsed here; reading and writing its files is the shell's
job (:mod:`trionet.services.tls_files`). The current time is an argument
(seconds since the epoch), so leaves are deterministic under a fake clock.

Leaf validity starts :data:`LEAF_BACKDATE` before "now": a guest whose clock
runs behind the host's (a VM restored from a snapshot, a guest without NTP)
would otherwise reject a certificate "not yet valid". The reference backdates
2 s; users report guests hours behind, so we backdate a day, which costs
nothing (the leaf is only trusted by guests that trust this CA).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "LEAF_BACKDATE",
    "REFRESH_BEFORE_EXPIRY",
    "CaError",
    "CertificateAuthority",
    "LeafCache",
    "LeafCertificate",
    "dedupe_pem_bundle",
    "generate_ca",
    "issue_leaf",
    "load_ca",
]

#: How far before "now" a leaf's validity starts (guest clock skew, see above).
LEAF_BACKDATE = 24 * 3600.0
#: A cached leaf closer than this to its expiry is replaced (§8.3: 5 minutes).
REFRESH_BEFORE_EXPIRY = 300.0

_CA_NOT_BEFORE = datetime.datetime(1975, 1, 1, tzinfo=datetime.UTC)
_CA_NOT_AFTER = datetime.datetime(4096, 1, 1, tzinfo=datetime.UTC)


class CaError(ValueError):
    """The configured CA files do not hold a usable CA certificate and matching key."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate (its PEM kept byte for byte) and its private key."""

    cert_pem: bytes
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | object

    def __repr__(self) -> str:  # the key never reaches a log line
        return f"CertificateAuthority(subject={self.cert.subject.rfc4514_string()!r})"

    def key_pem(self) -> bytes:
        key = self.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def generate_ca() -> CertificateAuthority:
    """A fresh ECDSA P-256 CA: CA:true, keyCertSign + cRLSign, 1975..4096 like the reference."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "trionet CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trionet"),
        ]
    )
    public = key.public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    serial = int.from_bytes(hashlib.sha256(spki).digest()[:20], "big") & ((1 << 159) - 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial or 1)
        .not_valid_before(_CA_NOT_BEFORE)
        .not_valid_after(_CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert.public_bytes(serialization.Encoding.PEM), cert, key)


def load_ca(cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
    """Parse a CA pair; raise :class:`CaError` (never quoting the key) if unusable."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CaError(f"the CA certificate is not a PEM certificate: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CaError("the CA key is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError("the CA key must be an ECDSA key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CaError("the CA key does not belong to the CA certificate")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError("the CA certificate is not a CA (basicConstraints CA:true missing)")
    return CertificateAuthority(cert_pem, cert, key)


@dataclass(frozen=True)
class LeafCertificate:
    """A leaf for one name: chain PEM (leaf then CA), key PEM, and when it expires."""

    name: str
    chain_pem: bytes
    key_pem: bytes
    not_after: float

    def __repr__(self) -> str:
        return f"LeafCertificate(name={self.name!r}, not_after={self.not_after})"


def _to_datetime(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)


def issue_leaf(
    ca: CertificateAuthority, name: str, now: float, validity_hours: int = 24
) -> LeafCertificate:
    """A fresh ECDSA P-256 leaf for ``name`` (a DNS name or an IP literal), signed by ``ca``.

    Raises ValueError for a name that cannot be a DNS SAN (non-ASCII).
    """
    ca_key = ca.key
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        san: x509.GeneralName = x509.IPAddress(ip)
    else:
        if not name.isascii() or not name:
            raise ValueError("a leaf name must be ASCII")
        san = x509.DNSName(name)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + validity_hours * 3600.0
    ca_public = ca.cert.public_key()
    assert isinstance(ca_public, ec.EllipticCurvePublicKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_to_datetime(now - LEAF_BACKDATE))
        .not_valid_after(_to_datetime(not_after))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.cert_pem
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return LeafCertificate(name, chain, key_pem, float(int(not_after)))


class LeafCache:
    """LRU of leaves by exact name; a leaf near expiry is reissued (§8.3).

    ``extra`` lets the shell keep something built from the leaf (its
    ``ssl.SSLContext``) beside it, so a cache hit costs no PEM parsing.
    """

    def __init__(self, ca: CertificateAuthority, capacity: int = 1000, validity_hours: int = 24):
        self._ca = ca
        self._capacity = capacity or 1000
        self._validity_hours = validity_hours
        self._entries: OrderedDict[str, tuple[LeafCertificate, object]] = OrderedDict()
        self.issued = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, now: float) -> tuple[LeafCertificate, object] | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        if entry[0].not_after - now <= REFRESH_BEFORE_EXPIRY:
            del self._entries[name]
            return None
        self._entries.move_to_end(name)
        return entry

    def issue(self, name: str, now: float) -> LeafCertificate:
        """A new leaf for ``name`` (not yet cached: the shell adds it with :meth:`put`)."""
        leaf = issue_leaf(self._ca, name, now, self._validity_hours)
        self.issued += 1
        return leaf

    def put(self, leaf: LeafCertificate, extra: object = None) -> None:
        self._entries[leaf.name] = (leaf, extra)
        self._entries.move_to_end(leaf.name)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


def dedupe_pem_bundle(ders: list[bytes]) -> bytes | None:
    """Certificates as one LF PEM bundle, duplicates (same DER) dropped, order kept.

    The DER is encoded, not parsed: a host store may hold certificates a
    strict parser rejects, and the guest's TLS library is the judge of them.
    """
    seen: set[bytes] = set()
    parts: list[bytes] = []
    for der in ders:
        if der in seen or not der:
            continue
        seen.add(der)
        b64 = base64.b64encode(der)
        lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        parts.append(b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n")
    return b"".join(parts) or None
