"""UDP-Lite as the chapter states it (10.6): partial checksum coverage, and its options."""

from __future__ import annotations

import pytest

from hdp.checks.support import (
    NotCarried,
    fate,
    ip_packet,
    open_receiver,
    payload,
    receive_tagged,
    transport_of,
)
from hdp.wire import udp

LITE = udp.PROTO_UDPLITE


def _lite_receiver(hdp_path, **options):
    opened = hdp_path.receiver.open_udp(hdp_path.family, protocol=LITE, bind=hdp_path.dst,
                                        **options)
    if not opened.ok and opened.stage == "socket":
        pytest.skip(f"{hdp_path.id}: the receiver has no UDP-Lite ({opened.errno}); the "
                    "kernel needs UDP-Lite support")
    return open_receiver(hdp_path, protocol=LITE, **options)


def _lite_packet(hdp_path, port, *, coverage, corrupt_at=None, checksum=None):
    """A UDP-Lite datagram of 8 + 64 bytes; `corrupt_at` flips a byte after the checksum
    was computed, as a bit error on the way would."""
    src = hdp_path.src()
    datagram = bytearray(udp.encode_lite(40010, port, payload(64), src, hdp_path.dst,
                                         coverage=max(coverage, 8) if coverage else 0,
                                         checksum=checksum))
    if coverage and coverage < 8:  # an invalid coverage cannot be encoded: write it in
        datagram[4:6] = coverage.to_bytes(2, "big")
    if corrupt_at is not None:
        datagram[corrupt_at] ^= 0x20
    return ip_packet(src, hdp_path.dst, LITE, bytes(datagram))


def _observe(hdp_path, hdp_check, detail, **packet):
    receiver = _lite_receiver(hdp_path)
    answer, _ = fate(hdp_path, receiver, [_lite_packet(hdp_path, receiver.port, **packet)])
    receiver.close()
    hdp_check.observe(answer, detail)


@pytest.mark.hdp_check("udplite-coverage-zero-covers-all")
def test_coverage_zero_covers_everything(hdp_path, hdp_check):
    _observe(hdp_path, hdp_check, "coverage 0, last byte corrupted", coverage=0,
             corrupt_at=71)


@pytest.mark.hdp_check("udplite-coverage-below-8-invalid")
def test_coverage_below_header_invalid(hdp_path, hdp_check):
    _observe(hdp_path, hdp_check, "coverage 4, checksum over the first 8 bytes", coverage=4)


@pytest.mark.hdp_check("udplite-uncovered-corruption-delivered")
def test_uncovered_corruption_delivered(hdp_path, hdp_check):
    _observe(hdp_path, hdp_check, "coverage 20, byte 50 corrupted", coverage=20,
             corrupt_at=50)


@pytest.mark.hdp_check("udplite-covered-corruption-dropped")
def test_covered_corruption_dropped(hdp_path, hdp_check):
    _observe(hdp_path, hdp_check, "coverage 20, byte 12 corrupted", coverage=20,
             corrupt_at=12)


@pytest.mark.hdp_check("udplite-send-coverage")
def test_send_coverage_option(hdp_path, hdp_check):
    """UDPLITE_SEND_CSCOV=20 puts coverage 20 on the wire, and the checksum covers 20."""
    receiver = _lite_receiver(hdp_path)
    sender = hdp_path.sender.open_udp(hdp_path.family, protocol=LITE, bind="", send_cscov=20)
    if not sender.ok:
        receiver.close()
        hdp_check.observe("refused", f"UDPLITE_SEND_CSCOV: {sender.stage} {sender.errno}")
        return
    flow = hdp_path.flow(LITE, sender.port, receiver.port)
    with hdp_path.receiver.capture(flow, protocol=LITE) as seen:
        hdp_path.sender.send(sender.handle, data=payload(64), dst=hdp_path.dst,
                             port=receiver.port)
        got = receive_tagged(hdp_path, receiver.handle)
    hdp_path.sender.close(sender.handle)
    receiver.close()
    if not got:
        raise NotCarried(f"{hdp_path.id}: the UDP-Lite datagram did not arrive; the path "
                         "does not carry UDP-Lite")
    coverages = [_coverage(data) for _, data in seen.packets]
    hdp_check.observe("applied" if coverages == [20] else "ignored",
                      f"coverage on the wire: {coverages} ({flow})")


def _coverage(packet: bytes) -> int | None:
    found = transport_of(packet)
    return None if found is None else int.from_bytes(found[4:6], "big")


@pytest.mark.hdp_check("udplite-receive-coverage")
def test_receive_coverage_option(hdp_path, hdp_check):
    """With UDPLITE_RECV_CSCOV=30 a datagram covering 20 bytes is dropped, 40 delivered."""
    receiver = _lite_receiver(hdp_path, recv_cscov=30)
    narrow, _ = fate(hdp_path, receiver, [_lite_packet(hdp_path, receiver.port, coverage=20)])
    wide, _ = fate(hdp_path, receiver, [_lite_packet(hdp_path, receiver.port, coverage=40)])
    receiver.close()
    answer = "enforced" if (narrow, wide) == ("dropped", "delivered") else \
        "ignored" if narrow == "delivered" else f"coverage 20 {narrow}, 40 {wide}"
    hdp_check.observe(answer, f"coverage 20: {narrow}; coverage 40: {wide}")

