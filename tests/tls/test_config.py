"""The ``tls`` and ``secrets`` sections: defaults, errors naming the field, round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.config_fields import ConfigError
from trionet.secrets.config import SecretsConfig, SecretValue, ViolationKind
from trionet.tls.config import TlsConfig
from trionet.tls.patterns import HostPattern, PatternKind


def test_tls_defaults_follow_the_spec() -> None:
    cfg = TlsConfig.from_dict({})
    assert not cfg.enabled
    assert cfg.intercepted_ports == (443,)
    assert cfg.verify_upstream and cfg.block_quic_on_intercept
    assert cfg.cache.capacity == 1000 and cfg.cache.validity_hours == 24
    assert TlsConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"intercepted_ports": [443, 0]}, "tls.intercepted_ports[1]"),
        ({"bypass": ["ok.com", "*"]}, None),
        ({"bypass": ["a b"]}, "tls.bypass[0]"),
        ({"intercept_ca": {"cert_path": "/x"}}, "tls.intercept_ca"),
        ({"scoped_verify_upstream": [{"pattern": "a.com"}]}, "tls.scoped_verify_upstream[0]"),
        ({"cache": {"capacity": -1}}, "tls.cache.capacity"),
        ({"nope": 1}, "tls.nope"),
    ],
)
def test_tls_errors_name_the_field(data: dict[str, Any], path: str | None) -> None:
    if path is None:
        TlsConfig.from_dict(data)
        return
    with pytest.raises(ConfigError) as info:
        TlsConfig.from_dict(data)
    assert str(info.value).startswith(path)


def test_ca_alias() -> None:
    cfg = TlsConfig.from_dict({"ca": {"cert_path": "/c", "key_path": "/k"}})
    assert cfg.intercept_ca.cert_path == "/c"


def test_patterns() -> None:
    wild = HostPattern.parse("*.Example.com.")
    assert wild.kind is PatternKind.WILDCARD
    assert wild.matches("example.com") and wild.matches("A.example.COM")
    assert not wild.matches("badexample.com")
    assert HostPattern.parse("x.com").specificity > HostPattern.parse("*.x.com").specificity
    assert HostPattern.parse("*").matches("anything")


SECRETS = {
    "secrets": [
        {
            "env_var": "API_KEY",
            "value": "hunter2-real",
            "allowed_hosts": [{"exact": "api.example.com"}, {"wildcard": "*.example.org"}, "any"],
            "on_violation": {"passthrough": ["ok.example"]},
            "injection": {"body": True},
        }
    ],
    "on_violation": "BlockAndTerminate",
}


def test_secrets_parse_and_never_show_the_value() -> None:
    cfg = SecretsConfig.from_dict(SECRETS)
    entry = cfg.secrets[0]
    assert entry.placeholder == "$MSB_API_KEY"
    assert cfg.on_violation.kind is ViolationKind.BLOCK_AND_TERMINATE
    assert entry.value.reveal() == "hunter2-real"
    for text in (repr(cfg), str(cfg), f"{entry.value}", repr(entry)):
        assert "hunter2" not in text
    assert SecretsConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.env_vars() == [("API_KEY", "$MSB_API_KEY")]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"env_var": "A=B"}, "secrets.secrets[0].env_var"),
        ({"placeholder": "a\nb"}, "secrets.secrets[0].placeholder"),
        ({"placeholder": "x" * 1025}, "secrets.secrets[0].placeholder"),
        ({"allowed_hosts": []}, "secrets.secrets[0].allowed_hosts"),
        ({"allowed_hosts": [{"exact": "*.x.com"}]}, "secrets.secrets[0].allowed_hosts[0]"),
        ({"on_violation": "explode"}, "secrets.secrets[0].on_violation"),
        ({"injection": {"cookies": True}}, "secrets.secrets[0].injection.cookies"),
    ],
)
def test_secret_errors_name_the_field_and_hide_the_value(
    change: dict[str, Any], path: str
) -> None:
    entry = {**SECRETS["secrets"][0], **change}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as info:
        SecretsConfig.from_dict({"secrets": [entry]})
    assert str(info.value).startswith(path)
    assert "hunter2" not in str(info.value)


def test_a_later_entry_errors_with_its_own_index() -> None:
    good = SECRETS["secrets"][0]
    bad = {**good, "env_var": "OTHER", "placeholder": ""}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as info:
        SecretsConfig.from_dict({"secrets": [good, bad]})
    assert str(info.value).startswith("secrets.secrets[1].placeholder: ")
    assert "hunter2" not in str(info.value)


def test_secret_value_is_not_picklable() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(SecretValue("x"))


_names = st.from_regex(r"\A[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}\Z")
_pattern_text = st.one_of(_names, _names.map(lambda n: "*." + n))


@settings(max_examples=100, deadline=None)
@given(
    ports=st.lists(st.integers(1, 65535), max_size=3),
    bypass=st.lists(_pattern_text, max_size=3),
    verify=st.booleans(),
    scoped=st.lists(st.tuples(_pattern_text, st.booleans()), max_size=2),
    cache=st.tuples(st.integers(0, 5000), st.integers(1, 100)),
)
def test_tls_round_trip(
    ports: list[int],
    bypass: list[str],
    verify: bool,
    scoped: list[tuple[str, bool]],
    cache: tuple[int, int],
) -> None:
    data = {
        "enabled": True,
        "intercepted_ports": ports,
        "bypass": bypass,
        "verify_upstream": verify,
        "scoped_verify_upstream": [{"pattern": p, "verify": v} for p, v in scoped],
        "scoped_upstream_ca_cert": [{"pattern": p, "path": "/ca.pem"} for p, _ in scoped],
        "cache": {"capacity": cache[0], "validity_hours": cache[1]},
    }
    cfg = TlsConfig.from_dict(data)
    assert TlsConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=100, deadline=None)
@given(
    secrets=st.lists(
        st.tuples(
            st.from_regex(r"\A[A-Z][A-Z0-9_]{0,10}\Z"),
            st.text(max_size=20),
            st.lists(_pattern_text, min_size=1, max_size=3),
            st.sampled_from(["block", "block-and-log", "block-and-terminate", None]),
            st.booleans(),
        ),
        max_size=3,
        unique_by=lambda t: t[0],
    )
)
def test_secrets_round_trip(secrets: list[tuple[str, str, list[str], str | None, bool]]) -> None:
    data = {
        "secrets": [
            {
                "env_var": env,
                "value": value,
                "allowed_hosts": hosts,
                "require_tls_identity": identity,
                **({} if action is None else {"on_violation": action}),
            }
            for env, value, hosts, action, identity in secrets
        ]
    }
    cfg = SecretsConfig.from_dict(data)
    assert SecretsConfig.from_dict(cfg.to_dict()) == cfg
