"""The file side of TLS interception: the CA on disk, the host trust store, ssl contexts.

Building certificates is sans-IO (:mod:`trionet.tls.certs`); reading and
writing them is here. The CA is read from ``tls.intercept_ca`` when set,
otherwise from ``$TRIONET_HOME/tls/ca.{crt,key}`` (``~/.trionet`` by
default), and generated and persisted there the first time: the key file is
created with mode 0600 atomically (never world-readable, not even briefly).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from pathlib import Path

from trionet.tls.certs import CaError, CertificateAuthority, LeafCertificate, generate_ca, load_ca
from trionet.tls.config import TlsConfig
from trionet.tls.patterns import HostPattern

__all__ = [
    "UpstreamConnectors",
    "host_trust_ders",
    "load_or_create_ca",
    "server_context",
    "trionet_home",
]

_log = logging.getLogger("trionet.tls")
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.DOTALL
)
#: Where Debian/Ubuntu/Alpine (first), Fedora/RHEL and SUSE keep the system bundle.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
)


def trionet_home() -> Path:
    home = os.environ.get("TRIONET_HOME")
    if home:
        return Path(home)
    try:
        return Path.home() / ".trionet"
    except RuntimeError:
        return Path(".trionet")


def load_or_create_ca(config: TlsConfig) -> CertificateAuthority:
    """The interception CA for ``config``; raises CaError with a one-line reason."""
    ca = config.intercept_ca
    if ca.cert_path is not None and ca.key_path is not None:
        try:
            cert = Path(ca.cert_path).read_bytes()
        except OSError as exc:
            raise CaError(f"cannot read tls.intercept_ca.cert_path: {exc.strerror}") from None
        try:
            key = Path(ca.key_path).read_bytes()
        except OSError as exc:
            raise CaError(f"cannot read tls.intercept_ca.key_path: {exc.strerror}") from None
        return load_ca(cert, key)
    directory = trionet_home() / "tls"
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    try:
        return load_ca(cert_path.read_bytes(), key_path.read_bytes())
    except (OSError, CaError):
        pass  # absent or unusable: make a new one
    authority = generate_ca()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(key_path, authority.key_pem())
        cert_path.write_bytes(authority.cert_pem)
    except OSError as exc:
        # The CA still works for this run; the next run makes another one.
        _log.warning("cannot persist the interception CA under %s: %s", directory, exc.strerror)
    return authority


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def host_trust_ders() -> list[bytes]:
    """The DER of every root the host trusts (its system bundle), in file order."""
    paths = []
    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.openssl_cafile, *SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate) and candidate not in paths:
            paths.append(candidate)
    ders: list[bytes] = []
    for path in paths[:1]:  # the first bundle found is the host's trust store
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            _log.warning("cannot read the host trust store %s: %s", path, exc.strerror)
            continue
        ders.extend(
            ssl.PEM_cert_to_DER_cert(m.group(0).decode("ascii", "replace"))
            for m in _PEM_CERT.finditer(data)
        )
    return ders


def _memfd_with(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def server_context(leaf: LeafCertificate, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A guest-facing TLS server context serving ``leaf`` (and the CA) with ``alpn``.

    ``ssl`` loads certificates only from paths: the PEMs go through memfds,
    never through a file on disk.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    chain_fd = _memfd_with("trionet-leaf", leaf.chain_pem)
    key_fd = _memfd_with("trionet-leaf-key", leaf.key_pem)
    try:
        ctx.load_cert_chain(f"/proc/self/fd/{chain_fd}", f"/proc/self/fd/{key_fd}")
    finally:
        os.close(chain_fd)
        os.close(key_fd)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class UpstreamConnectors:
    """The client contexts for upstream servers (§8.6), by most specific scope."""

    def __init__(self, config: TlsConfig) -> None:
        self._default = _client_context(config.verify_upstream, config.upstream_ca_cert)
        scopes: dict[HostPattern, tuple[bool, list[str]]] = {}
        for scoped_ca in config.scoped_upstream_ca_cert:
            verify, paths = scopes.get(scoped_ca.pattern, (config.verify_upstream, []))
            scopes[scoped_ca.pattern] = (verify, [*paths, scoped_ca.path])
        for scoped_verify in config.scoped_verify_upstream:
            _, paths = scopes.get(scoped_verify.pattern, (config.verify_upstream, []))
            scopes[scoped_verify.pattern] = (scoped_verify.verify, paths)
        self._scoped = sorted(
            (
                (pattern, _client_context(verify, [*config.upstream_ca_cert, *paths]))
                for pattern, (verify, paths) in scopes.items()
                if verify != config.verify_upstream or paths
            ),
            key=lambda item: -item[0].specificity,
        )

    def for_host(self, sni: str) -> ssl.SSLContext:
        for pattern, ctx in self._scoped:
            if pattern.matches(sni):
                return ctx
        return self._default


def _client_context(verify: bool, ca_files: tuple[str, ...] | list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    for path in ca_files:
        try:
            ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            _log.error("cannot load upstream CA file %s: %s", path, exc)
    return ctx
