"""The CA on disk, the live secrets handle, and the Network's TLS surface."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from trionet import NetworkConfig, SecretsConfig, SecretsHandle
from trionet.addressing import HostRoutes
from trionet.network import open_network
from trionet.services.tls_files import load_or_create_ca
from trionet.tls.certs import CaError, generate_ca
from trionet.tls.config import TlsConfig

SECRETS = SecretsConfig.from_dict(
    {"secrets": [{"env_var": "K", "value": "real-1", "allowed_hosts": ["a.example"]}]}
)


def test_ca_is_generated_once_with_a_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIONET_HOME", str(tmp_path / "home"))
    first = load_or_create_ca(TlsConfig(enabled=True))
    key = tmp_path / "home" / "tls" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home" / "tls" / "ca.crt").read_bytes() == first.cert_pem
    again = load_or_create_ca(TlsConfig(enabled=True))
    assert again.cert_pem == first.cert_pem


def test_configured_ca_is_used_byte_for_byte(tmp_path: Path) -> None:
    ca = generate_ca()
    cert = tmp_path / "ca.pem"
    # Comments around the PEM block must survive: the bytes are the file's.
    cert.write_bytes(b"# my corporate CA\n" + ca.cert_pem)
    key = tmp_path / "ca.key"
    key.write_bytes(ca.key_pem())
    config = TlsConfig.from_dict({"intercept_ca": {"cert_path": str(cert), "key_path": str(key)}})
    assert load_or_create_ca(config).cert_pem == cert.read_bytes()
    missing = TlsConfig.from_dict(
        {"intercept_ca": {"cert_path": str(tmp_path / "nope"), "key_path": str(key)}}
    )
    with pytest.raises(CaError, match="cert_path"):
        load_or_create_ca(missing)


def test_secrets_handle_rotates_removes_and_rescopes() -> None:
    handle = SecretsHandle(SECRETS)
    before = handle.snapshot()
    handle.rotate_value("K", "real-2")
    assert handle.snapshot().secrets[0].value.reveal() == "real-2"
    assert before.secrets[0].value.reveal() == "real-1"  # a snapshot never changes
    handle.set_allowed_hosts("K", ["*.b.example", "*"])
    assert [p.text() for p in handle.snapshot().secrets[0].allowed_hosts] == ["*.b.example", "any"]
    with pytest.raises(KeyError):
        handle.rotate_value("NOPE", "x")
    with pytest.raises(ValueError):
        handle.set_allowed_hosts("K", [])
    assert "real" not in repr(handle) + repr(handle.snapshot())
    handle.remove("K")
    handle.remove("K")
    assert handle.snapshot().secrets == ()


def test_network_tls_surface(tmp_path: Path) -> None:
    ca = generate_ca()
    config = NetworkConfig(tls=TlsConfig(enabled=True), secrets=SECRETS)

    async def main() -> None:
        routes = HostRoutes(ipv4=True, ipv6=False)
        async with open_network(config, 0, routes=routes, ca=ca) as net:
            assert net.ca_cert_pem() == ca.cert_pem
            assert net.host_cas_cert_pem() is None
            assert ("K", "$MSB_K") in net.guest_env_vars()
            assert net.secrets_handle().names() == ["K"]
        trusting = NetworkConfig(trust_host_cas=True)
        async with open_network(trusting, 0, routes=routes) as net:
            assert net.ca_cert_pem() is None  # no TLS interception
            bundle = net.host_cas_cert_pem()
            if Path("/etc/ssl/certs/ca-certificates.crt").exists():
                assert bundle is not None and bundle.startswith(b"-----BEGIN CERTIFICATE-----\n")
                blocks = bundle.split(b"-----END CERTIFICATE-----\n")[:-1]
                assert len(blocks) == len(set(blocks)) > 0

    trio.run(main)


def test_secret_values_from_host_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trionet.config_fields import ConfigError
    from trionet.services.secret_sources import resolve_sources

    secret_file = tmp_path / "token"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("TRIONET_TEST_TOKEN", "from-the-env")
    config = SecretsConfig.from_dict(
        {
            "secrets": [
                {"env_var": "A", "source": "env:TRIONET_TEST_TOKEN", "allowed_hosts": ["a.x"]},
                {"env_var": "B", "source": f"file:{secret_file}", "allowed_hosts": ["b.x"]},
                {
                    "env_var": "C",
                    "value": "inline",
                    "source": "env:NOPE",
                    "allowed_hosts": ["c.x"],
                },
            ]
        }
    )
    values = [s.value.reveal() for s in resolve_sources(config).secrets]
    assert values == ["from-the-env", "from-a-file", "inline"]
    monkeypatch.delenv("TRIONET_TEST_TOKEN")
    with pytest.raises(ConfigError, match=r"^secrets.secrets\[0\].source: .*TRIONET_TEST_TOKEN"):
        resolve_sources(config)
    with pytest.raises(ConfigError, match=r"^secrets.secrets\[0\].source"):
        SecretsConfig.from_dict(
            {"secrets": [{"env_var": "A", "source": "vault:x", "allowed_hosts": ["a.x"]}]}
        )


@pytest.mark.parametrize(
    "value", [987654321, 98765.4321, ["hunter2-secret"], {"k": "hunter2-secret"}]
)
def test_a_secret_value_of_another_type_is_not_echoed_in_the_error(value: object) -> None:
    """A TOML or JSON number (a PIN, a numeric key) is still the secret: the error names
    the field and the type, never the value (it goes to stderr and logs)."""
    from trionet.config_fields import ConfigError

    data = {"secrets": [{"env_var": "PIN", "value": value, "allowed_hosts": ["a.x"]}]}
    with pytest.raises(ConfigError, match=r"^secrets.secrets\[0\].value: ") as info:
        SecretsConfig.from_dict(data)
    assert "98765" not in str(info.value) and "hunter2" not in str(info.value)
