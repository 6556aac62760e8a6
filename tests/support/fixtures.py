"""pytest fixtures for real-guest tests (registered by tests/conftest.py).

``netns_factory``: make namespaces, all deleted at teardown.
``socket_dir``: a short directory for AF_UNIX sockets, whatever ``$TMPDIR``
says (nox sessions point it deep inside the checkout, and a socket path has
at most 107 bytes).
``guest_link_factory``: a host namespace + a guest namespace whose ``eth0`` is
a TAP (opened from the host namespace, moved and renamed), configured from
guest variables. The test gets the open :class:`~trionet.links.tap.TapDevice`
to attach to whatever plays the gateway. Teardown closes the TAP first, then
deletes the namespaces.

Both need root: use them only in tests marked ``@pytest.mark.root``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.netns import (
    Netns,
    configure_guest,
    create_netns,
    delete_netns,
    env_mapping,
    in_netns,
    move_link,
    sweep_stale_netns,
)
from trionet.addressing import HostRoutes, derive_addressing
from trionet.config import NetworkConfig
from trionet.guest_env import GuestNetConfig, guest_env_vars, parse_guest_env
from trionet.links.tap import TapDevice

__all__ = [
    "GuestLink",
    "default_guest_env",
    "guest_link_factory",
    "netns_factory",
    "socket_dir",
]

_BOTH_FAMILIES = HostRoutes(ipv4=True, ipv6=True)


def default_guest_env(
    slot: int = 0,
    config: NetworkConfig | None = None,
    routes: HostRoutes = _BOTH_FAMILIES,
) -> list[tuple[str, str]]:
    """The guest variables for ``slot`` with both families on, whatever the machine routes."""
    return guest_env_vars(derive_addressing(config or NetworkConfig(), slot, routes))


@dataclass(frozen=True, slots=True)
class GuestLink:
    host: Netns
    guest: Netns
    tap: TapDevice
    config: GuestNetConfig
    env: dict[str, str]


NetnsFactory = Callable[[str], Netns]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A fresh directory under /tmp itself, removed at teardown."""
    path = Path(tempfile.mkdtemp(prefix="tnt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


GuestLinkFactory = Callable[..., GuestLink]


@pytest.fixture(scope="session")
def _sweep_stale_netns_once() -> None:
    # Leftovers of a test process that was killed would otherwise pile up forever.
    sweep_stale_netns()


@pytest.fixture
def netns_factory(_sweep_stale_netns_once: None) -> Iterator[NetnsFactory]:
    made: list[Netns] = []

    def make(role: str = "") -> Netns:
        ns = create_netns(role)
        made.append(ns)
        return ns

    yield make
    for ns in reversed(made):
        delete_netns(ns)


@pytest.fixture
def guest_link_factory(netns_factory: NetnsFactory) -> Iterator[GuestLinkFactory]:
    taps: list[TapDevice] = []

    def make(
        env: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
        *,
        offload: bool = True,
        uso: bool = True,
        host: Netns | None = None,
        configure: bool = True,
    ) -> GuestLink:
        """Build the pair; ``env`` defaults to :func:`default_guest_env` (slot 0).

        ``configure=False`` leaves the guest as a stock OS boots: only the
        NIC's MAC is set (a VMM's job) and loopback is up; no address, route
        or link state comes from the variables (DHCP and RA tests).
        """
        variables = env_mapping(default_guest_env() if env is None else env)
        config = parse_guest_env(variables)
        host = host or netns_factory("h")
        guest = netns_factory("g")
        with in_netns(host):
            tap = TapDevice.open("tnt0", offload=offload, uso=uso)
        taps.append(tap)
        move_link(host, tap.name, guest, config.iface)
        if configure:
            configure_guest(guest, config)
        else:
            guest.ip_batch([f"link set dev {config.iface} address {config.mac}"])
        return GuestLink(host, guest, tap, config, variables)

    yield make
    for tap in taps:
        tap.close()
