"""Wire codecs: parse and emit each protocol's bytes. Sans-IO, no state.

One module per protocol (``ethernet``, ``arp``, ``ipv4``, ``ipv6``,
``icmpv4``, ``icmpv6``, ``udp``, ``tcp``), the checksum arithmetic in
``checksum`` and whole-frame transmit builders in ``frames``. Every parser
raises only :class:`ParseError` on malformed input.
"""

from trionet.wire.errors import ParseError

__all__ = ["ParseError"]
