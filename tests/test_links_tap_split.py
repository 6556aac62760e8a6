"""TapDevice.split on hostile reads: a header and a frame view, or ParseError, nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trionet.links.tap import NO_OFFLOADS, TapDevice
from trionet.wire.errors import ParseError


def _unopened(vnet_hdr_size: int) -> TapDevice:
    # split never touches the fd, so a closed placeholder is enough.
    return TapDevice(-1, "fuzz0", vnet_hdr_size, NO_OFFLOADS)


@given(st.binary(max_size=120))
def test_split_with_vnet_header(raw: bytes) -> None:
    try:
        header, frame = _unopened(10).split(raw)
    except ParseError as exc:
        assert exc.reason
        return
    assert header is not None
    assert bytes(frame) == raw[10:]
    if header.needs_csum:
        assert header.csum_start + header.csum_offset + 2 <= len(frame)


@given(st.binary(max_size=60))
def test_split_without_vnet_header_is_identity(raw: bytes) -> None:
    header, frame = _unopened(0).split(raw)
    assert header is None and bytes(frame) == raw
