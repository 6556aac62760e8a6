"""Wire codec costs: a TCP/IPv4 data frame parsed and emitted, and the checksum.

The frame is what a bulk transfer at MTU 1500 carries: Ethernet, IPv4, TCP
with the timestamp option Linux puts in every segment, 1448 bytes of data.
"Full" verifies and computes every checksum in Python (a plain TAP);
"offload" trusts the link for the TCP checksum on receive and leaves it
partial on send (virtio-net CSUM offload), so no payload byte is summed.
"gso64k" is the same with a 64 KB segment, as TSO/GSO hands them over: the
codec cost stays per frame, not per byte.

    python -m benchmarks.bench_wire
"""

from __future__ import annotations

from benchmarks.timing import best_rate
from trionet.wire.checksum import internet_checksum, pseudo_header_v4
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.frames import build_ipv4_frame
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions, parse_tcp

MAC_GUEST = bytes.fromhex("020000000002")
MAC_GATEWAY = bytes.fromhex("020000000001")
IP_GUEST = bytes([10, 0, 2, 15])
IP_REMOTE = bytes([93, 184, 216, 34])
PAYLOAD = bytes(range(256)) * 5 + bytes(168)  # 1448 bytes
GSO_PAYLOAD = bytes(range(256)) * 255  # 65280 bytes: one TSO/GSO segment via virtio-net
SEGMENT = TcpHeader(
    40000,
    443,
    0x12345678,
    0x9ABCDEF0,
    TcpFlags.ACK | TcpFlags.PSH,
    502,
    options=TcpOptions(timestamp=(123456, 654321)),
)
FRAME = (
    bytes(build_ipv4_frame(MAC_GUEST, MAC_GATEWAY, IP_GUEST, IP_REMOTE, SEGMENT, payload=PAYLOAD))
    + PAYLOAD
)
GSO_FRAME = (
    bytes(
        build_ipv4_frame(MAC_GUEST, MAC_GATEWAY, IP_GUEST, IP_REMOTE, SEGMENT, payload=GSO_PAYLOAD)
    )
    + GSO_PAYLOAD
)


def _parse(frame: bytes, verify: bool) -> tuple[TcpHeader, memoryview]:
    _, l3 = parse_ethernet(frame)
    ip, l4 = parse_ipv4(l3)
    pseudo = pseudo_header_v4(ip.src, ip.dst, ip.protocol, len(l4)) if verify else None
    return parse_tcp(l4, pseudo)


def _emit(header: TcpHeader, payload: memoryview, partial: bool) -> bytearray:
    # The reply direction: gateway to guest, same sizes.
    return build_ipv4_frame(
        MAC_GATEWAY,
        MAC_GUEST,
        IP_REMOTE,
        IP_GUEST,
        header,
        payload=payload,
        partial_checksum=partial,
    )


def run() -> dict[str, float]:
    def parse_full() -> object:
        return _parse(FRAME, True)

    def parse_offload() -> object:
        return _parse(FRAME, False)

    parsed, payload = _parse(FRAME, True)

    def emit_full() -> object:
        return _emit(parsed, payload, False)

    def emit_offload() -> object:
        return _emit(parsed, payload, True)

    def both_full() -> object:
        header, data = _parse(FRAME, True)
        return _emit(header, data, False)

    def both_offload() -> object:
        header, data = _parse(FRAME, False)
        return _emit(header, data, True)

    def gso_offload() -> object:
        header, data = _parse(GSO_FRAME, False)
        return _emit(header, data, True)

    small = bytes(range(256)) * 5 + bytes(220)  # 1500 bytes
    large = bytes(range(256)) * 256  # 64 KiB

    n = 10000
    metrics = {
        "tcp4_parse_emit_full_frames_per_s": best_rate(both_full, n),
        "tcp4_parse_emit_offload_frames_per_s": best_rate(both_offload, n),
        "tcp4_parse_full_frames_per_s": best_rate(parse_full, n),
        "tcp4_parse_offload_frames_per_s": best_rate(parse_offload, n),
        "tcp4_emit_full_frames_per_s": best_rate(emit_full, n),
        "tcp4_emit_offload_frames_per_s": best_rate(emit_offload, n),
        "tcp4_gso64k_parse_emit_offload_frames_per_s": best_rate(gso_offload, n),
        "checksum_1500B_us": 1e6 / best_rate(lambda: internet_checksum(small), 50000),
        "checksum_64KiB_us": 1e6 / best_rate(lambda: internet_checksum(large), 2000),
    }
    # What the offload path implies for payload throughput, codec cost only.
    metrics["tcp4_gso64k_offload_codec_gbit_per_s"] = (
        metrics["tcp4_gso64k_parse_emit_offload_frames_per_s"] * len(GSO_PAYLOAD) * 8 / 1e9
    )
    width = max(map(len, metrics))
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {value:>12,.1f}")
    return metrics


if __name__ == "__main__":
    run()
