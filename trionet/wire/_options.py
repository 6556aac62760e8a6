"""The option lookup both DHCP codecs share.

DHCPv4 and DHCPv6 messages keep their options the same way, as
``(code, value)`` pairs in wire order, so they find one the same way.
"""

from __future__ import annotations

from collections.abc import Sequence


def first_option(options: Sequence[tuple[int, bytes]], code: int) -> bytes | None:
    """The value of the first option with ``code``, or None."""
    for have, value in options:
        if have == code:
            return value
    return None
