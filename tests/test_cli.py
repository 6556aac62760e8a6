from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trionet import __version__
from trionet.addressing import probe_host_routes
from trionet.cli.main import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trionet.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"trionet {__version__}"


def test_env_slot_3_prints_one_line_per_active_family() -> None:
    result = _run("env", "--slot", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    routes = probe_host_routes()
    expected = [
        "MSB_NET=iface=eth0,mac=02:6d:73:00:03:02,mtu=1500",
        "MSB_HOST_ALIAS=host.trionet.internal",
    ]
    if routes.ipv4:
        expected.append("MSB_NET_IPV4=addr=172.16.0.14/30,gw=172.16.0.13,dns=172.16.0.13")
    if routes.ipv6:
        expected.append(
            "MSB_NET_IPV6=addr=fd42:6d73:62:3::2/64,gw=fd42:6d73:62:3::1,dns=fd42:6d73:62:3::1"
        )
    assert lines == expected


def test_env_with_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "net.toml"
    config.write_text('[interface]\nmtu = 9000\nipv4_address = "10.9.0.2"\n')
    assert main(["env", "--slot", "1", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "MSB_NET=iface=eth0,mac=02:6d:73:00:01:02,mtu=9000\n" in out
    assert "MSB_NET_IPV4=addr=10.9.0.2/30,gw=10.9.0.1,dns=10.9.0.1\n" in out


def test_env_prints_secret_placeholders_never_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "net.toml"
    config.write_text(
        '[[secrets.secrets]]\nenv_var = "API_KEY"\nvalue = "real-value"\n'
        'allowed_hosts = ["api.example.com"]\n'
    )
    assert main(["env", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("API_KEY=$MSB_API_KEY\n")
    assert "real-value" not in out


def test_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text("[interface]\nmtu = 70000\n")
    result = _run("env", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == "trionet: interface.mtu: 70000 is outside 68..65535"


def test_bad_slot() -> None:
    result = _run("env", "--slot", "65536")
    assert result.returncode == 2
    assert "65536 is outside 0..65535" in result.stderr


def test_family_options_override_routes_and_config(tmp_path: Path) -> None:
    from trionet.addressing import derive_addressing
    from trionet.cli.main import build_parser
    from trionet.cli.options import network_choice

    config = tmp_path / "net.json"
    config.write_text('{"interface": {"ipv4_address": "10.9.0.2", "mtu": 9000}}')
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--config", str(config), "--no-ipv4", "--ipv6", "--mtu", "1400"]
    )
    choice = network_choice(args)
    addressing = derive_addressing(choice.config, choice.slot, choice.routes)
    assert addressing.ipv4 is None  # --no-ipv4 beats the config's explicit address
    assert addressing.ipv6 is not None and addressing.mtu == 1400


def test_guest_setup_matches_a_guest_init() -> None:
    from trionet.addressing import HostRoutes, derive_addressing
    from trionet.cli.guest_setup import hosts_file, ip_commands, resolv_conf
    from trionet.config import NetworkConfig

    addressing = derive_addressing(NetworkConfig(), 1, HostRoutes(True, True))
    assert ip_commands(addressing) == [
        "link set dev lo up",
        "link set dev eth0 address 02:6d:73:00:01:02 mtu 1500",
        "address add 172.16.0.6/30 dev eth0",
        "address add fd42:6d73:62:1::2/64 dev eth0 nodad",
        "link set dev eth0 up",
        "route add default via 172.16.0.5 dev eth0",
        "route add default via fd42:6d73:62:1::1 dev eth0",
    ]
    resolv = [line for line in resolv_conf(addressing).splitlines() if not line.startswith("#")]
    assert resolv == ["nameserver 172.16.0.5", "nameserver fd42:6d73:62:1::1"]
    hosts = [line for line in hosts_file(addressing).splitlines() if not line.startswith("#")]
    assert hosts[-2:] == [
        "172.16.0.5\thost.trionet.internal",
        "fd42:6d73:62:1::1\thost.trionet.internal",
    ]


def test_logfmt_lines_quote_what_needs_quoting() -> None:
    import logging

    from trionet.cli.logs import LogfmtFormatter

    record = logging.LogRecord("trionet.x", logging.INFO, __file__, 1, "session.end", None, None)
    record.trionet_fields = {"reason": 'eof "now"', "frames": 3, "empty": ""}
    line = LogfmtFormatter().format(record)
    assert line.endswith('event=session.end reason="eof \\"now\\"" frames=3 empty=""')
    assert line.startswith("ts=") and " level=info logger=trionet.x " in line


def test_preflight_names_the_sysctl_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from trionet.cli import run

    monkeypatch.setattr(run.os.path, "exists", lambda path: True)
    monkeypatch.setattr(run, "_read_sysctl", lambda name: "1" if "apparmor" in name else "15000")
    with pytest.raises(run.RunError) as excinfo:
        run.preflight(userns=True)
    assert str(excinfo.value) == (
        "unprivileged user namespaces are disabled "
        "(kernel.apparmor_restrict_unprivileged_userns = 1): run as root, or allow them "
        "with: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
    )
    monkeypatch.setattr(run, "_read_sysctl", lambda name: None)
    monkeypatch.setattr(run.os, "access", lambda path, mode: False)
    with pytest.raises(run.RunError, match=r"chmod 0666 /dev/net/tun"):
        run.preflight(userns=True)


@pytest.mark.root
def test_a_failing_setup_step_is_one_line_and_status_125() -> None:
    result = _run("run", "--mtu", "65535", "--", "true")  # above a TAP's maximum
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("trionet run: configuring eth0 with ip: ")


def test_first_leaf_finds_the_error_in_nested_groups() -> None:
    from trionet.cli.errors import first_leaf
    from trionet.cli.run import RunError

    error = RunError("the reason")
    nested = BaseExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [error])])
    assert first_leaf(nested, RunError) is error
    assert first_leaf(ExceptionGroup("other", [ValueError("y")]), RunError) is None


def test_publish_options_add_to_the_config_ports_on_run_and_serve(tmp_path: Path) -> None:
    import ipaddress

    from trionet import PortMapping
    from trionet.cli.main import build_parser
    from trionet.cli.options import network_choice

    config = tmp_path / "net.json"
    config.write_text('{"ports": [{"host_port": 9000, "guest_port": 90}]}')
    parser = build_parser()
    for command in (["run"], ["serve", "--tap", "tap0"]):
        args = parser.parse_args(
            [
                *command,
                "--config",
                str(config),
                "-p",
                "8080:80",
                "--publish",
                "[::1]:5353:53/udp",
                "--publish-real-source",
            ]
        )
        ports = network_choice(args).config.ports
        assert ports == (
            PortMapping(9000, 90),
            PortMapping(8080, 80, real_source=True),
            PortMapping(5353, 53, "udp", ipaddress.ip_address("::1"), real_source=True),
        )
