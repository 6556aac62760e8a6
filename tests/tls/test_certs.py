"""The interception CA and leaves: what clients check, skew, the LRU cache."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from trionet.tls.certs import (
    LEAF_BACKDATE,
    CaError,
    LeafCache,
    dedupe_pem_bundle,
    generate_ca,
    issue_leaf,
    load_ca,
)

NOW = 1_800_000_000.0
CA = generate_ca()


def test_generated_ca_is_p256_ca_and_reloads_byte_for_byte() -> None:
    cert = CA.cert
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    again = load_ca(CA.cert_pem, CA.key_pem())
    assert again.cert_pem == CA.cert_pem
    assert "PRIVATE" not in repr(CA)


def test_load_ca_rejects_mismatched_key_without_quoting_it() -> None:
    other = generate_ca()
    with pytest.raises(CaError) as info:
        load_ca(CA.cert_pem, other.key_pem())
    assert "BEGIN" not in str(info.value)
    with pytest.raises(CaError):
        load_ca(b"junk", CA.key_pem())
    with pytest.raises(CaError):
        load_ca(CA.cert_pem, b"junk")


def test_leaf_for_name_and_ip() -> None:
    leaf = issue_leaf(CA, "api.example.com", NOW)
    cert = x509.load_pem_x509_certificate(leaf.chain_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com"]
    assert cert.not_valid_before_utc.timestamp() == NOW - LEAF_BACKDATE
    assert cert.not_valid_after_utc.timestamp() == NOW + 24 * 3600
    assert leaf.chain_pem.endswith(CA.cert_pem)
    ip_leaf = issue_leaf(CA, "192.0.2.7", NOW)
    cert = x509.load_pem_x509_certificate(ip_leaf.chain_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    with pytest.raises(ValueError):
        issue_leaf(CA, "bücher.example", NOW)


def _verify_at(leaf_chain: bytes, when: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp, "ca.pem")
        ca.write_bytes(CA.cert_pem)
        leaf = Path(tmp, "leaf.pem")
        leaf.write_bytes(
            leaf_chain.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
        )
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(ca),
                "-attime",
                str(int(when)),
                "-purpose",
                "sslserver",
                str(leaf),
            ],
            capture_output=True,
            text=True,
            check=False,
        )


def test_openssl_accepts_leaf_on_a_guest_one_hour_behind() -> None:
    """The issue's clock-skew requirement, checked by OpenSSL itself."""
    leaf = issue_leaf(CA, "api.example.com", NOW)
    assert _verify_at(leaf.chain_pem, NOW - 3600).returncode == 0
    assert _verify_at(leaf.chain_pem, NOW - 2 * LEAF_BACKDATE).returncode != 0  # a real check


def test_python_ssl_handshake_with_the_leaf() -> None:
    """A stdlib client trusting the CA accepts the leaf for its name, not another."""
    leaf = issue_leaf(CA, "api.example.com", datetime.datetime.now(datetime.UTC).timestamp())
    with tempfile.TemporaryDirectory() as tmp:
        chain, key = Path(tmp, "chain.pem"), Path(tmp, "key.pem")
        chain.write_bytes(leaf.chain_pem)
        key.write_bytes(leaf.key_pem)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(chain, key)
    for name, ok in (("api.example.com", True), ("evil.example.com", False)):
        client = ssl.create_default_context(cadata=CA.cert_pem.decode())
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        c = client.wrap_bio(c_in, c_out, server_hostname=name)
        s = server.wrap_bio(s_in, s_out, server_side=True)
        error = None
        for _ in range(10):
            for obj in (c, s):
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    error = exc
            s_in.write(c_out.read())
            c_in.write(s_out.read())
            if error:
                break
        assert (error is None) == ok


def test_cache_is_lru_and_refreshes_before_expiry() -> None:
    cache = LeafCache(CA, capacity=2, validity_hours=1)
    for name in ("a.example", "b.example"):
        cache.put(cache.issue(name, NOW), extra=name)
    assert cache.get("a.example", NOW) is not None  # a is now most recent
    cache.put(cache.issue("c.example", NOW))
    assert cache.get("b.example", NOW) is None  # evicted
    assert len(cache) == 2
    entry = cache.get("a.example", NOW + 3600 - 301)
    assert entry is not None and entry[1] == "a.example"
    assert cache.get("a.example", NOW + 3600 - 299) is None  # too close to expiry: reissue


def test_dedupe_pem_bundle() -> None:
    der = CA.cert.public_bytes(Encoding.DER)
    other = generate_ca().cert.public_bytes(Encoding.DER)
    bundle = dedupe_pem_bundle([der, other, der])
    assert bundle is not None
    assert bundle.count(b"BEGIN CERTIFICATE") == 2
    assert bundle.startswith(CA.cert.public_bytes(Encoding.PEM))
    assert b"\r" not in bundle
    assert dedupe_pem_bundle([]) is None
