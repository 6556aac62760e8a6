"""Domain names in the RFC 1035 wire form, for the options that carry search lists.

DHCPv4's domain search option (RFC 3397) may use compression pointers;
DHCPv6's domain list (RFC 3646) and the RA's DNSSL option
(RFC 8106) may not. Names are handled as lowercase text without the final
dot. Decoding is bounded: a pointer may only point backwards, so a hostile
list cannot make the decoder loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from trionet.wire._types import BytesLike
from trionet.wire.errors import ParseError

__all__ = ["decode_names", "encode_names"]

_MAX_NAME = 255
_MAX_LABEL = 63


def _labels(name: str) -> list[bytes]:
    text = name.rstrip(".")
    if not text:
        return []
    labels = [label.encode("ascii") for label in text.split(".")]
    for label in labels:
        if not 1 <= len(label) <= _MAX_LABEL:
            raise ValueError(f"{name!r}: a label must be 1..63 bytes")
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_NAME:
        raise ValueError(f"{name!r}: longer than 255 bytes encoded")
    return labels


def encode_names(names: Sequence[str], *, compress: bool = False) -> bytes:
    """The names one after the other, each ending in the root label.

    With ``compress`` (RFC 3397), a suffix already written is replaced by a
    pointer to it. Raises ValueError for a name that cannot be encoded.
    """
    out = bytearray()
    seen: dict[tuple[bytes, ...], int] = {}
    for name in names:
        labels = _labels(name)
        for i in range(len(labels)):
            suffix = tuple(label.lower() for label in labels[i:])
            where = seen.get(suffix) if compress else None
            if where is not None:
                out += (0xC000 | where).to_bytes(2, "big")
                break
            if compress and len(out) < 0x4000:
                seen[suffix] = len(out)
            out.append(len(labels[i]))
            out += labels[i]
        else:
            out.append(0)
    return bytes(out)


def decode_names(data: BytesLike, *, pointers: bool = False) -> tuple[str, ...]:
    """The names in ``data`` (lowercased); ParseError for anything malformed.

    ``pointers`` accepts RFC 1035 compression pointers, which must point to
    an earlier offset (so decoding always ends).
    """
    view = memoryview(data)
    names: list[str] = []
    pos = 0
    end = len(view)
    while pos < end:
        labels: list[str] = []
        cursor = pos
        jumped = False
        limit = end  # every pointer must go below the last one: decoding ends
        length_sum = 0
        while True:
            if cursor >= end:
                raise ParseError("domain name: truncated")
            size = view[cursor]
            if size == 0:
                cursor += 1
                break
            if size & 0xC0 == 0xC0:
                if not pointers:
                    raise ParseError("domain name: compression not allowed here")
                if cursor + 2 > end:
                    raise ParseError("domain name: truncated pointer")
                target = ((size & 0x3F) << 8) | view[cursor + 1]
                if target >= min(cursor, limit):
                    raise ParseError("domain name: pointer does not point backwards")
                if not jumped:
                    pos = cursor + 2
                jumped = True
                limit = cursor = target
                continue
            if size & 0xC0:
                raise ParseError("domain name: reserved label type")
            if cursor + 1 + size > end:
                raise ParseError("domain name: label exceeds the data")
            raw = bytes(view[cursor + 1 : cursor + 1 + size])
            if b"." in raw:
                # Legal in DNS, but not in the text form these names take.
                raise ParseError("domain name: a label holds a dot")
            length_sum += size + 1
            if length_sum + 1 > _MAX_NAME:
                raise ParseError("domain name: longer than 255 bytes")
            try:
                labels.append(raw.decode("ascii").lower())
            except UnicodeDecodeError:
                raise ParseError("domain name: not ASCII") from None
            cursor += 1 + size
        if not jumped:
            pos = cursor
        names.append(".".join(labels))
    return tuple(names)
