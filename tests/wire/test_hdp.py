"""The original 12-byte HDP header, and pytest-hdp's probe tag in its payload."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError
from hdp.wire import hdp
from hdp.wire.hdp import Carrier, HDPHeader, HDPPacket, ProbeTag, TaggedPayload

from .vectors import COWSAY, WRITEUP_HDP_HEADER, WRITEUP_TIMESTAMP


@pytest.mark.parametrize(
    ("header", "raw"),
    [
        (HDPHeader(420, 420, WRITEUP_TIMESTAMP), WRITEUP_HDP_HEADER),
        (HDPHeader(420, 420, WRITEUP_TIMESTAMP), bytes.fromhex("01a401a4" "18247195a18a95f0")),
        (HDPHeader(), b"\x01\xa4\x01\xa4" + bytes(8)),
        (HDPHeader(0, 0xFFFF, 1), b"\x00\x00\xff\xff" + bytes(7) + b"\x01"),
        (HDPHeader(1, 2, 2**64 - 1), b"\x00\x01\x00\x02" + b"\xff" * 8),
        (HDPHeader(0x1234, 0xABCD, 0x0102030405060708), bytes.fromhex("1234abcd0102030405060708")),
    ],
    ids=["writeup", "writeup-literal", "defaults", "ports-extremes", "ts-max", "all-distinct"],
)
def test_header_layout(header: HDPHeader, raw: bytes) -> None:
    assert len(raw) == hdp.HEADER_LENGTH == 12
    assert hdp.encode_header(header) == raw
    assert hdp.encode(header, b"") == raw
    assert hdp.decode(raw).header == header


def test_writeup_timestamp_bytes() -> None:
    assert WRITEUP_TIMESTAMP.to_bytes(8, "big") == bytes.fromhex("18247195a18a95f0")


def test_defaults_are_the_original_ports() -> None:
    assert HDPHeader() == HDPHeader(420, 420, 0)
    assert hdp.ORIGINAL_PORT == 420


@pytest.mark.parametrize("payload", [b"", b"x", COWSAY, bytes(range(256)) * 4])
def test_round_trip(payload: bytes) -> None:
    header = HDPHeader(420, 420, WRITEUP_TIMESTAMP)
    wire = hdp.encode(header, payload)
    assert wire == WRITEUP_HDP_HEADER + payload
    assert hdp.decode(wire) == HDPPacket(header, TaggedPayload(None, payload, True))


@pytest.mark.parametrize(
    "kwargs",
    [{"src_port": 0x10000}, {"src_port": -1}, {"dst_port": 0x10000}, {"dst_port": -1},
     {"timestamp_ns": 2**64}, {"timestamp_ns": -1}],
    ids=str,
)
def test_header_encode_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(EncodeError):
        HDPHeader(**kwargs)


@pytest.mark.parametrize("length", [0, 1, 11])
def test_decode_short(length: int) -> None:
    with pytest.raises(DecodeError) as caught:
        hdp.decode(WRITEUP_HDP_HEADER[:length])
    assert caught.value.offset == length
    assert f"offset {length}" in str(caught.value)


# ---------------------------------------------------------------------------------------
# Probe tag


def test_tag_layout() -> None:
    tag = ProbeTag(run_id=0x01020304, case=0x0A0B0C0D, probe=0x0506, carrier=Carrier.UDP)
    wire = hdp.encode_tagged(tag, b"data")
    head = b"HDPt" + b"\x01" + b"\x01" + b"\x05\x06" + b"\x01\x02\x03\x04" + b"\x0a\x0b\x0c\x0d"
    assert wire[:16] == head
    assert wire[16:20] == zlib.crc32(head + b"\x00\x00\x00\x00" + b"data").to_bytes(4, "big")
    assert wire[20:] == b"data"
    assert len(wire) == hdp.TAG_LENGTH + 4


@pytest.mark.parametrize("carrier", list(Carrier))
@pytest.mark.parametrize("data", [b"", b"x", COWSAY])
def test_tag_round_trip(carrier: Carrier, data: bytes) -> None:
    tag = ProbeTag(run_id=0xCAFEF00D, case=253, probe=3, carrier=carrier)
    tagged = hdp.encode_tagged(tag, data)
    assert tagged[5] == int(carrier)
    decoded = hdp.decode_tagged(tagged)
    assert decoded == TaggedPayload(tag, data, True)
    assert decoded.tag is not None and decoded.tag.carrier is carrier

    packet = hdp.decode(hdp.encode(HDPHeader(timestamp_ns=5), tagged))
    assert packet.payload == TaggedPayload(tag, data, True)


@pytest.mark.parametrize(
    "tag",
    [ProbeTag(0, 0), ProbeTag(2**32 - 1, 2**32 - 1, 2**16 - 1, Carrier.RAW), ProbeTag(1, 2, 3)],
    ids=["zeros", "maxima", "small"],
)
def test_tag_field_extremes_round_trip(tag: ProbeTag) -> None:
    assert hdp.decode_tagged(hdp.encode_tagged(tag, b"d")) == TaggedPayload(tag, b"d", True)


@pytest.mark.parametrize(
    "kwargs",
    [{"run_id": 2**32}, {"run_id": -1}, {"case": 2**32}, {"case": -1},
     {"probe": 2**16}, {"probe": -1}],
    ids=str,
)
def test_tag_encode_error(kwargs: dict[str, int]) -> None:
    fields = {"run_id": 1, "case": 1} | kwargs
    with pytest.raises(EncodeError):
        ProbeTag(**fields)


def test_untagged_cowsay_payload() -> None:
    assert hdp.decode_tagged(COWSAY) == TaggedPayload(None, COWSAY, True)
    packet = hdp.decode(WRITEUP_HDP_HEADER + COWSAY)
    assert packet.header.timestamp_ns == WRITEUP_TIMESTAMP
    assert packet.payload == TaggedPayload(None, COWSAY, True)


TAGGED = hdp.encode_tagged(ProbeTag(run_id=77, case=1234, probe=9, carrier=Carrier.HDP),
                           b"the probe's data bytes")


@pytest.mark.parametrize("position", [0, 1, 10, len(TAGGED) - 20 - 1])
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_data_byte_is_not_intact(position: int, mask: int) -> None:
    corrupted = bytearray(TAGGED)
    corrupted[20 + position] ^= mask
    decoded = hdp.decode_tagged(bytes(corrupted))
    assert decoded.tag == ProbeTag(77, 1234, 9, Carrier.HDP)
    assert decoded.data == bytes(corrupted[20:])
    assert decoded.intact is False


@pytest.mark.parametrize("position", [6, 7, 8, 11, 12, 15, 16, 19])
def test_flipped_tag_byte_is_not_intact(position: int) -> None:
    # Probe, run id, case and the CRC itself are covered by the CRC.
    corrupted = bytearray(TAGGED)
    corrupted[position] ^= 0x01
    decoded = hdp.decode_tagged(bytes(corrupted))
    assert decoded.tag is not None
    assert decoded.intact is False


@pytest.mark.parametrize("position", [0, 1, 2, 3, 4])
def test_damaged_magic_or_version_is_untagged(position: int) -> None:
    corrupted = bytearray(TAGGED)
    corrupted[position] ^= 0x02
    assert hdp.decode_tagged(bytes(corrupted)) == TaggedPayload(None, bytes(corrupted), True)


@pytest.mark.parametrize("kind", [3, 4, 0xFF])
def test_unknown_carrier_is_untagged(kind: int) -> None:
    odd = TAGGED[:5] + bytes([kind]) + TAGGED[6:]
    assert hdp.decode_tagged(odd) == TaggedPayload(None, odd, True)


@pytest.mark.parametrize("length", range(hdp.TAG_LENGTH))
def test_truncated_tag_is_untagged_data(length: int) -> None:
    short = TAGGED[:length]
    assert hdp.decode_tagged(short) == TaggedPayload(None, short, True)


@pytest.mark.parametrize("cut", [1, 5, len(TAGGED) - 20])
def test_truncated_data_is_not_intact(cut: int) -> None:
    decoded = hdp.decode_tagged(TAGGED[:-cut])
    assert decoded.tag == ProbeTag(77, 1234, 9, Carrier.HDP)
    assert decoded.intact is False


def test_appended_byte_is_not_intact() -> None:
    assert hdp.decode_tagged(TAGGED + b"\x00").intact is False


@settings(max_examples=200)
@given(
    st.builds(ProbeTag, run_id=st.integers(0, 2**32 - 1), case=st.integers(0, 2**32 - 1),
              probe=st.integers(0, 2**16 - 1), carrier=st.sampled_from(Carrier)),
    st.binary(max_size=200),
    st.integers(0, 2**64 - 1),
)
def test_tagged_round_trip_property(tag: ProbeTag, data: bytes, timestamp: int) -> None:
    wire = hdp.encode(HDPHeader(420, 420, timestamp), hdp.encode_tagged(tag, data))
    assert hdp.decode(wire) == HDPPacket(HDPHeader(420, 420, timestamp),
                                         TaggedPayload(tag, data, True))


def test_a_raw_tag_whose_magic_a_kernel_checksum_overwrote_is_found_and_not_intact():
    """IPv6 protocol 58: the sender's kernel writes the ICMPv6 checksum at offset 2, into
    a raw carrier's magic; told so, find_tag still matches the probe, never as intact."""
    tag = ProbeTag(run_id=7, case=3, probe=0, carrier=Carrier.RAW)
    sent = hdp.encode_tagged(tag, b"data" * 8)
    arrived = sent[:2] + b"\xbe\xef" + sent[4:]
    assert hdp.find_tag(arrived) is None
    found = hdp.find_tag(arrived, checksum_at=2)
    assert found is not None
    carrier, tagged = found
    assert (carrier, tagged.tag, tagged.data, tagged.intact) == (
        Carrier.RAW, tag, b"data" * 8, False)
    # an untouched probe reads as before, intact
    assert hdp.find_tag(sent, checksum_at=2) == (Carrier.RAW, TaggedPayload(tag, b"data" * 8,
                                                                             True))


@given(st.binary(max_size=64), st.sampled_from([None, 0, 2, 4, 100]))
@settings(max_examples=300)
def test_find_tag_takes_any_bytes(payload, checksum_at):
    found = hdp.find_tag(payload, checksum_at)
    assert found is None or isinstance(found[1], TaggedPayload)
