"""The host's resolvers from resolv.conf text."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from trionet.dns.resolvconf import nameservers_from_resolv_conf

SAMPLE = """\
# written by a DHCP client
search example.internal
nameserver 192.0.2.53   # the LAN resolver
nameserver\t2001:db8::53
; a comment
options edns0 trust-ad
nameserver fe80::1%eth0
nameserver not-an-address
nameserver 192.0.2.53
nameserver 127.0.0.53
"""


def test_nameservers_in_file_order_without_zones_or_repeats() -> None:
    assert nameservers_from_resolv_conf(SAMPLE) == [
        ipaddress.ip_address("192.0.2.53"),
        ipaddress.ip_address("2001:db8::53"),
        ipaddress.ip_address("127.0.0.53"),
    ]


def test_nothing_to_find() -> None:
    assert nameservers_from_resolv_conf("") == []
    assert nameservers_from_resolv_conf("domain x\nsearch y\n#nameserver 1.2.3.4\n") == []


@given(st.text(max_size=400))
def test_any_text_yields_only_addresses_named_on_nameserver_lines(text: str) -> None:
    found = nameservers_from_resolv_conf(text)
    assert len(found) == len(set(found))
    for address in found:
        assert any(
            line.split()[:2] == ["nameserver", str(address)]
            or (line.split()[:1] == ["nameserver"] and str(address) in line)
            for line in text.splitlines()
        )
