"""UDP (RFC 768) and UDP-Lite (RFC 3828): pseudo-header checksums, limits, errors."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from hdp.errors import DecodeError, EncodeError
from hdp.wire import udp
from hdp.wire.checksum import internet_checksum, ones_complement_sum
from hdp.wire.udp import UDPDatagram, UDPHeader

V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")
FAMILIES = pytest.mark.parametrize(("src", "dst"), [V4, V6], ids=["v4", "v6"])


def reference_pseudo_header(src: str, dst: str, protocol: int, length: int) -> bytes:
    s, d = ip_address(src), ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + bytes([0, protocol]) + length.to_bytes(2, "big")
    return s.packed + d.packed + length.to_bytes(4, "big") + bytes([0, 0, 0, protocol])


def test_pseudo_header_layout() -> None:
    assert udp.pseudo_header(*V4, 17, 11) == bytes.fromhex("c0000201" "c0000202" "00" "11" "000b")
    assert udp.pseudo_header(*V6, 136, 70000) == (
        ip_address(V6[0]).packed + ip_address(V6[1]).packed
        + bytes.fromhex("00011170" "000000" "88")
    )


@pytest.mark.parametrize(("src", "dst"), [("192.0.2.1", "::1"), ("::1", "192.0.2.1")])
def test_pseudo_header_mixed_families(src: str, dst: str) -> None:
    with pytest.raises(EncodeError):
        udp.pseudo_header(src, dst, 17, 8)
    with pytest.raises(EncodeError):
        udp.encode(1, 2, b"", src, dst)


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        # Checked against scapy: IP(...)/UDP(sport=420, dport=420)/Raw(b"hdp").
        ("192.0.2.1", "192.0.2.2", "01a401a4000ba027686470"),
        ("2001:db8::1", "2001:db8::2", "01a401a4000bc8b6686470"),
    ],
)
def test_known_vector(src: str, dst: str, expected: str) -> None:
    assert udp.encode(420, 420, b"hdp", src, dst) == bytes.fromhex(expected)


@FAMILIES
@pytest.mark.parametrize("payload", [b"", b"x", b"hdp", b"even", bytes(range(256)) * 3,
                                     b"\xff" * 1001])
def test_round_trip(src: str, dst: str, payload: bytes) -> None:
    wire = udp.encode(420, 53, payload, src, dst)
    assert len(wire) == 8 + len(payload)
    datagram = udp.decode(wire)
    checksum = int.from_bytes(wire[6:8], "big")
    assert datagram == UDPDatagram(UDPHeader(420, 53, 8 + len(payload), checksum), payload)
    assert checksum != 0
    assert udp.verify(src, dst, wire)
    # Independent: the pseudo-header plus the datagram (odd ones padded) sums to 0xFFFF.
    padded = wire + b"\x00" * (len(wire) % 2)
    pseudo = reference_pseudo_header(src, dst, 17, len(wire))
    assert internet_checksum(pseudo + padded) == 0


@FAMILIES
def test_odd_length_payload_is_padded_for_the_checksum_only(src: str, dst: str) -> None:
    wire = udp.encode(1, 2, b"abc", src, dst)
    assert len(wire) == 11  # the pad byte is not sent
    unchecked = wire[:6] + b"\x00\x00" + wire[8:]
    pseudo = reference_pseudo_header(src, dst, 17, 11)
    assert int.from_bytes(wire[6:8], "big") == internet_checksum(pseudo + unchecked + b"\x00")


def _payload_whose_checksum_is_zero(src: str, dst: str, prefix: bytes) -> bytes:
    """`prefix` plus two bytes chosen so the computed UDP checksum is 0x0000."""
    assert len(prefix) % 2 == 0  # so the two bytes form one aligned 16-bit word
    length = 8 + len(prefix) + 2
    header = (1234).to_bytes(2, "big") + (5678).to_bytes(2, "big") + length.to_bytes(2, "big")
    partial = ones_complement_sum(
        reference_pseudo_header(src, dst, 17, length) + header + b"\x00\x00" + prefix + b"\x00\x00"
    )
    # Adding the word ~partial makes the sum 0xFFFF, whose complement is 0.
    return prefix + (~partial & 0xFFFF).to_bytes(2, "big")


@FAMILIES
@pytest.mark.parametrize("prefix", [b"", b"hd", b"probe tag zero!!", bytes(range(100))])
def test_computed_zero_checksum_is_sent_as_ffff(src: str, dst: str, prefix: bytes) -> None:
    payload = _payload_whose_checksum_is_zero(src, dst, prefix)
    unchecked = udp.encode(1234, 5678, payload, src, dst, checksum=0)
    pseudo = reference_pseudo_header(src, dst, 17, len(unchecked))
    assert internet_checksum(pseudo + unchecked) == 0  # the construction worked

    assert udp.udp_checksum(src, dst, unchecked) == 0xFFFF
    wire = udp.encode(1234, 5678, payload, src, dst)
    assert wire[6:8] == b"\xff\xff"
    assert udp.verify(src, dst, wire)
    assert udp.decode(wire).header.checksum == 0xFFFF
    # The same datagram sent with 0 sums correctly too (0x0000 and 0xFFFF are both zero in
    # one's complement), yet 0 means "no checksum": fine on IPv4, forbidden on IPv6.
    assert udp.verify(src, dst, unchecked) == (src == V4[0])


def test_zero_checksum_means_none_on_ipv4_only() -> None:
    v4 = udp.encode(1, 2, b"no checksum", *V4, checksum=0)
    assert v4[6:8] == b"\x00\x00"
    assert udp.verify(*V4, v4)
    # Even a corrupted datagram passes: there is nothing to check.
    assert udp.verify(*V4, v4[:-1] + b"?")
    v6 = udp.encode(1, 2, b"no checksum", *V6, checksum=0)
    assert not udp.verify(*V6, v6)


@FAMILIES
def test_verify_rejects_any_single_corrupted_byte(src: str, dst: str) -> None:
    wire = udp.encode(420, 420, b"a payload of some length", src, dst)
    assert udp.verify(src, dst, wire)
    for i in range(len(wire)):
        for mask in (0x01, 0x80, 0xFF):
            corrupted = bytearray(wire)
            corrupted[i] ^= mask
            if i in (6, 7) and corrupted[6:8] == b"\x00\x00" and src == V4[0]:
                continue  # became "no checksum", which IPv4 allows
            assert not udp.verify(src, dst, bytes(corrupted)), (i, mask)


@FAMILIES
def test_verify_rejects_other_addresses(src: str, dst: str) -> None:
    wire = udp.encode(420, 420, b"pseudo-header", src, dst)
    assert udp.verify(src, dst, wire)
    other = "192.0.2.99" if src == V4[0] else "2001:db8::99"
    assert not udp.verify(other, dst, wire)
    assert not udp.verify(src, other, wire)


@FAMILIES
def test_verify_rejects_a_truncated_datagram(src: str, dst: str) -> None:
    wire = udp.encode(420, 420, b"truncate me", src, dst)
    for n in range(len(wire)):
        assert not udp.verify(src, dst, wire[:n]), n


@FAMILIES
@pytest.mark.parametrize("data", [b"", b"\x01", bytes(7)])
def test_verify_on_short_input_is_false(src: str, dst: str, data: bytes) -> None:
    assert udp.verify(src, dst, data) is False
    assert udp.verify_lite(src, dst, data) is False


def test_verify_on_oversized_ipv4_input_is_false() -> None:
    # No IPv4 datagram is this long; its length does not fit the pseudo-header.
    data = b"\x00\x01\x00\x02\x00\x00\x12\x34" + bytes(70000)
    assert udp.verify(*V4, data) is False
    assert udp.verify_lite(*V4, data) is False


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"", 0, "need 8"),
        (bytes(7), 7, "need 8"),
        (bytes.fromhex("0001000200070000"), 4, "length 7"),
        (bytes.fromhex("0001000200000000"), 4, "length 0"),
        (bytes.fromhex("0001000200090000"), 8, "9"),
        (bytes.fromhex("00010002ffff0000") + bytes(100), 108, "65535"),
    ],
    ids=["empty", "7-bytes", "length-7", "length-0", "length-9-of-8", "length-65535"],
)
def test_decode_error(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as caught:
        udp.decode(data)
    assert caught.value.offset == offset
    assert words in caught.value.reason
    assert f"offset {offset}" in str(caught.value)


def test_decode_drops_bytes_after_the_length() -> None:
    wire = udp.encode(1, 2, b"data", *V4)
    assert udp.decode(wire + b"pad").payload == b"data"


def test_decode_header_only() -> None:
    assert udp.decode(bytes.fromhex("000100020008abcd")) == UDPDatagram(
        UDPHeader(1, 2, 8, 0xABCD), b""
    )


@pytest.mark.parametrize(
    ("src", "dst", "largest"),
    [(*V4, 65507), (*V6, 65527)],
    ids=["v4", "v6"],
)
def test_payload_limits(src: str, dst: str, largest: int) -> None:
    assert largest == (udp.MAX_PAYLOAD_V4 if src == V4[0] else udp.MAX_PAYLOAD_V6)
    payload = bytes(range(256)) * (largest // 256) + bytes(largest % 256)
    wire = udp.encode(1, 2, payload, src, dst)
    assert len(wire) == largest + 8
    assert udp.verify(src, dst, wire)
    assert udp.decode(wire).payload == payload
    with pytest.raises(EncodeError):
        udp.encode(1, 2, payload + b"!", src, dst)


@pytest.mark.parametrize(
    ("src_port", "dst_port", "checksum"),
    [(0x10000, 1, None), (-1, 1, None), (1, 0x10000, None), (1, 2, 0x10000), (1, 2, -1)],
)
def test_encode_error_on_out_of_range_fields(src_port: int, dst_port: int,
                                             checksum: int | None) -> None:
    with pytest.raises(EncodeError):
        udp.encode(src_port, dst_port, b"", *V4, checksum=checksum)


@pytest.mark.parametrize("field", ["src_port", "dst_port", "length", "checksum"])
@pytest.mark.parametrize("value", [-1, 0x10000])
def test_header_rejects_out_of_range(field: str, value: int) -> None:
    fields = {"src_port": 1, "dst_port": 2, "length": 8, "checksum": 0} | {field: value}
    with pytest.raises(EncodeError):
        UDPHeader(**fields)


def test_explicit_checksum_is_carried_verbatim() -> None:
    wire = udp.encode(1, 2, b"x", *V4, checksum=0xBEEF)
    assert wire[6:8] == b"\xbe\xef"
    assert not udp.verify(*V4, wire)


# ---------------------------------------------------------------------------------------
# UDP-Lite


@FAMILIES
@pytest.mark.parametrize("payload", [b"", b"x", b"lite payload", bytes(range(256))])
def test_lite_full_coverage(src: str, dst: str, payload: bytes) -> None:
    wire = udp.encode_lite(7, 8, payload, src, dst, coverage=0)
    assert wire[4:6] == b"\x00\x00"
    assert udp.verify_lite(src, dst, wire)
    pseudo = reference_pseudo_header(src, dst, 136, len(wire))
    assert internet_checksum(pseudo + wire) == 0
    assert udp.decode_lite(wire) == UDPDatagram(
        UDPHeader(7, 8, 0, int.from_bytes(wire[6:8], "big")), payload
    )
    for i in range(len(wire)):
        corrupted = bytearray(wire)
        corrupted[i] ^= 0x10
        assert not udp.verify_lite(src, dst, bytes(corrupted)), i


@FAMILIES
def test_lite_coverage_equal_to_length_matches_full_coverage_checksum(src: str, dst: str) -> None:
    # The coverage field is part of the checksum, so the values differ only by that word.
    full = udp.encode_lite(7, 8, b"abcdef", src, dst, coverage=0)
    exact = udp.encode_lite(7, 8, b"abcdef", src, dst, coverage=14)
    assert udp.verify_lite(src, dst, exact)
    assert full[8:] == exact[8:]
    assert exact[4:6] == b"\x00\x0e"


@FAMILIES
@pytest.mark.parametrize("coverage", [8, 9, 12, 20])
def test_lite_partial_coverage(src: str, dst: str, coverage: int) -> None:
    payload = b"0123456789abcdefghijklmnopqrstuvwxyz"
    wire = udp.encode_lite(7, 8, payload, src, dst, coverage=coverage)
    assert int.from_bytes(wire[4:6], "big") == coverage
    assert udp.verify_lite(src, dst, wire)
    # The pseudo-header carries the whole length; the sum covers only `coverage` bytes.
    pseudo = reference_pseudo_header(src, dst, 136, len(wire))
    covered = wire[:coverage] + b"\x00" * (coverage % 2)
    assert internet_checksum(pseudo + covered) == 0
    for i in range(len(wire)):
        corrupted = bytearray(wire)
        corrupted[i] ^= 0x04
        assert udp.verify_lite(src, dst, bytes(corrupted)) == (i >= coverage), i
    assert udp.decode_lite(wire).payload == payload


@FAMILIES
def test_lite_payload_length_is_in_the_pseudo_header(src: str, dst: str) -> None:
    # Dropping uncovered bytes changes the length in the pseudo-header, which is covered.
    wire = udp.encode_lite(7, 8, b"covered|uncovered", src, dst, coverage=15)
    assert udp.verify_lite(src, dst, wire)
    assert not udp.verify_lite(src, dst, wire[:-2])


@FAMILIES
@pytest.mark.parametrize("coverage", [1, 2, 7, 19, 0xFFFF])
def test_lite_encode_rejects_bad_coverage(src: str, dst: str, coverage: int) -> None:
    with pytest.raises(EncodeError):
        udp.encode_lite(7, 8, b"ten bytes!", src, dst, coverage=coverage)  # 18 bytes in all


@pytest.mark.parametrize("coverage", [1, 2, 3, 4, 5, 6, 7, 19, 0xFFFF])
def test_lite_decode_rejects_bad_coverage(coverage: int) -> None:
    data = bytes.fromhex("00070008") + coverage.to_bytes(2, "big") + b"\x12\x34" + b"ten bytes!"
    with pytest.raises(DecodeError) as caught:
        udp.decode_lite(data)
    assert caught.value.offset == 4
    assert str(coverage) in caught.value.reason
    assert not udp.verify_lite(*V4, data)


@pytest.mark.parametrize(("data", "offset"), [(b"", 0), (bytes(5), 5), (bytes(7), 7)])
def test_lite_decode_short(data: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        udp.decode_lite(data)
    assert caught.value.offset == offset


@FAMILIES
@pytest.mark.parametrize("coverage", [0, 8, 12])
def test_lite_zero_checksum_never_verifies(src: str, dst: str, coverage: int) -> None:
    wire = udp.encode_lite(7, 8, b"payload", src, dst, coverage=coverage, checksum=0)
    assert wire[6:8] == b"\x00\x00"
    assert not udp.verify_lite(src, dst, wire)


@FAMILIES
def test_lite_computed_zero_is_sent_as_ffff(src: str, dst: str) -> None:
    prefix = b"lite"
    length = 8 + len(prefix) + 2
    partial = ones_complement_sum(
        reference_pseudo_header(src, dst, 136, length)
        + bytes.fromhex("00070008") + b"\x00\x00\x00\x00" + prefix + b"\x00\x00"
    )
    payload = prefix + (~partial & 0xFFFF).to_bytes(2, "big")
    wire = udp.encode_lite(7, 8, payload, src, dst)
    assert wire[6:8] == b"\xff\xff"
    assert udp.verify_lite(src, dst, wire)
    # Sent with 0 instead, the sum still comes out right; RFC 3828 forbids 0 all the same.
    zero = udp.encode_lite(7, 8, payload, src, dst, checksum=0)
    assert internet_checksum(reference_pseudo_header(src, dst, 136, len(zero)) + zero) == 0
    assert not udp.verify_lite(src, dst, zero)


@FAMILIES
def test_lite_is_not_udp(src: str, dst: str) -> None:
    # Same bytes apart from the protocol number in the pseudo-header: must not cross-verify.
    lite = udp.encode_lite(7, 8, b"abcdef", src, dst, coverage=14)
    plain = udp.encode(7, 8, b"abcdef", src, dst)
    assert lite[:6] == plain[:6]
    assert lite[6:8] != plain[6:8]
    assert not udp.verify(src, dst, lite)


@pytest.mark.parametrize(("src", "dst", "largest"), [(*V4, 65507), (*V6, 65527)],
                         ids=["v4", "v6"])
def test_lite_payload_limits(src: str, dst: str, largest: int) -> None:
    wire = udp.encode_lite(1, 2, bytes(largest), src, dst, coverage=8)
    assert udp.verify_lite(src, dst, wire)
    with pytest.raises(EncodeError):
        udp.encode_lite(1, 2, bytes(largest + 1), src, dst)
