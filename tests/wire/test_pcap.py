"""pcap files: round trips, every malformation named, fuzzing, and tshark as the reader."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError, HdpError
from hdp.pcap import (
    LINKTYPE_RAW,
    MAGIC_MICRO,
    MAGIC_NANO,
    SNAPLEN,
    PcapError,
    PcapRecord,
    decode_pcap,
    encode_pcap,
    write_pcap,
)
from hdp.wire import udp
from hdp.wire.fragment import fragment_ipv4, fragment_ipv6
from hdp.wire.ipv4 import IPv4Header
from hdp.wire.ipv6 import FRAGMENT, IPv6Header

SRC, DST = "192.0.2.1", "198.51.100.7"
SRC6, DST6 = "2001:db8::1", "2001:db8::2"
T0 = 1_700_000_000_123_456_789

FUZZ = settings(max_examples=300, deadline=timedelta(milliseconds=500))

TSHARK = shutil.which("tshark")
requires_tshark = pytest.mark.skipif(
    TSHARK is None, reason="tshark reads our pcap files here: apt-get install tshark")


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    """One row per frame of `path`, the named fields as tshark shows them."""
    assert TSHARK is not None
    command = [TSHARK, "-r", str(path), "-T", "fields", "-E", "separator=,"]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"tshark failed: {done.stderr}"
    return [line.split(",") for line in done.stdout.splitlines()]


def textbook_fragments() -> list[bytes]:
    """The chapter's 3020-byte UDP/IPv4 datagram cut for a 1500-byte MTU."""
    datagram = udp.encode(5000, 6000, b"\xab" * 2992, SRC, DST)
    header = IPv4Header(src=SRC, dst=DST, protocol=17, identification=0x3C5A)
    return fragment_ipv4(header, datagram, 1500)


def ipv6_fragments() -> list[bytes]:
    datagram = udp.encode(5000, 6000, b"\xcd" * 2992, SRC6, DST6)
    header = IPv6Header(src=SRC6, dst=DST6, next_header=FRAGMENT)
    return fragment_ipv6(header, datagram, 17, 1280, 0xABCDEF)


def records_of(packets: list[bytes]) -> list[PcapRecord]:
    return [PcapRecord(T0 + i, packet, len(packet)) for i, packet in enumerate(packets)]


def file_header(magic: int = MAGIC_NANO, order: str = "<", major: int = 2, minor: int = 4,
                snaplen: int = SNAPLEN, linktype: int = LINKTYPE_RAW) -> bytes:
    return struct.pack(order + "IHHiIII", magic, major, minor, 0, 0, snaplen, linktype)


def record_header(seconds: int, fraction: int, kept: int, original: int,
                  order: str = "<") -> bytes:
    return struct.pack(order + "IIII", seconds, fraction, kept, original)


# ---------------------------------------------------------------------------------------
# Round trips


def test_file_header_is_nanosecond_raw_ip_little_endian() -> None:
    assert encode_pcap([]) == bytes.fromhex(
        "4d3cb2a1" "0200" "0400" "00000000" "00000000" "00000400" "65000000")


def test_round_trip_keeps_time_data_and_original_length() -> None:
    records = [*records_of(textbook_fragments()), PcapRecord(0, b"", 0),
               PcapRecord(T0, b"\x45" * 20, 1500)]
    assert decode_pcap(encode_pcap(records)) == records


def test_record_header_layout() -> None:
    data = encode_pcap([PcapRecord(T0, b"\x60abc", 9)])
    assert data[24:40] == record_header(T0 // 10**9, T0 % 10**9, 4, 9)
    assert data[40:] == b"\x60abc"


@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize(("magic", "scale"), [(MAGIC_MICRO, 1000), (MAGIC_NANO, 1)],
                         ids=["micro", "nano"])
def test_decodes_both_resolutions_and_byte_orders(order: str, magic: int, scale: int) -> None:
    data = (file_header(magic, order) + record_header(1_700_000_000, 999_999, 3, 40, order)
            + b"\x45\x00\x00")
    (record,) = decode_pcap(data)
    assert record == PcapRecord(1_700_000_000 * 10**9 + 999_999 * scale, b"\x45\x00\x00", 40)


@pytest.mark.parametrize("linktype", [228, 229, 0x0400_0000 | LINKTYPE_RAW])
def test_accepts_the_other_raw_ip_link_types(linktype: int) -> None:
    assert decode_pcap(file_header(linktype=linktype)) == []


def test_write_pcap_to_a_path_and_to_a_file_object(tmp_path: Path) -> None:
    records = records_of(ipv6_fragments())
    write_pcap(tmp_path / "a.pcap", records)
    buffer = io.BytesIO()
    write_pcap(buffer, records)
    assert (tmp_path / "a.pcap").read_bytes() == buffer.getvalue() == encode_pcap(records)


# ---------------------------------------------------------------------------------------
# Malformed files: one error type, with the offset and the reason

GOOD = file_header()
RECORD = record_header(1, 0, 4, 4) + b"\x45abc"

MALFORMED = [
    pytest.param(b"", 0, "truncated file header", id="empty"),
    pytest.param(GOOD[:23], 23, "truncated file header", id="short-header"),
    pytest.param(b"\x0a\x0d\x0d\x0a" + GOOD[4:], 0, "bad magic 0x0a0d0d0a", id="pcapng"),
    pytest.param(file_header(major=1), 4, "version 1.4", id="version"),
    pytest.param(file_header(linktype=1), 20, "link type 1, not raw IP", id="ethernet"),
    pytest.param(GOOD + RECORD[:15], 24, "truncated record header", id="short-record-header"),
    pytest.param(GOOD + record_header(1, 0, 10, 10) + b"\x45", 40, "truncated record data",
                 id="short-record-data"),
    pytest.param(GOOD + RECORD + record_header(1, 0, SNAPLEN + 1, SNAPLEN + 1), 52,
                 "longer than the snap length", id="over-snaplen"),
    pytest.param(file_header(snaplen=3) + RECORD, 32, "longer than the snap length 3",
                 id="over-file-snaplen"),
    pytest.param(GOOD + record_header(1, 0, 4, 3) + b"\x45abc", 32,
                 "keeps 4 bytes of a 3-byte packet", id="kept-over-original"),
    pytest.param(GOOD + record_header(1, 10**9, 0, 0), 28, "not below 1000000000",
                 id="nanoseconds"),
    pytest.param(file_header(MAGIC_MICRO) + record_header(1, 10**6, 0, 0), 28,
                 "not below 1000000", id="microseconds"),
]


@pytest.mark.parametrize(("data", "offset", "reason"), MALFORMED)
def test_malformed_file_names_offset_and_reason(data: bytes, offset: int, reason: str) -> None:
    with pytest.raises(PcapError) as caught:
        decode_pcap(data)
    assert caught.value.offset == offset
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"malformed pcap at offset {offset}: ")
    assert isinstance(caught.value, DecodeError) and isinstance(caught.value, HdpError)


def test_encode_refuses_a_record_over_the_snap_length() -> None:
    with pytest.raises(EncodeError, match="record 1 keeps 262145 bytes"):
        encode_pcap([PcapRecord(0, b"", 0), PcapRecord(0, bytes(SNAPLEN + 1), SNAPLEN + 1)])


@pytest.mark.parametrize(("time_ns", "data", "original"), [
    (-1, b"", 0), ((1 << 32) * 10**9, b"", 0), (0, b"abc", 2), (0, b"", 1 << 32)])
def test_record_fields_are_checked(time_ns: int, data: bytes, original: int) -> None:
    with pytest.raises(EncodeError):
        PcapRecord(time_ns, data, original)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_give_records_or_pcap_error(data: bytes) -> None:
    try:
        records = decode_pcap(data)
    except PcapError:
        return
    assert all(isinstance(record, PcapRecord) for record in records)


@FUZZ
@given(st.sampled_from([file_header(), file_header(MAGIC_MICRO, ">"), file_header(snaplen=8)]),
       st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
                          st.integers(0, 20), st.integers(0, 0xFFFFFFFF), st.binary(max_size=20)),
                max_size=4))
def test_valid_header_then_any_records_give_records_or_pcap_error(
        header: bytes, parts: list[tuple[int, int, int, int, bytes]]) -> None:
    order = ">" if header[0] == 0xA1 else "<"
    data = header + b"".join(record_header(s, f, k, o, order) + body
                             for s, f, k, o, body in parts)
    try:
        records = decode_pcap(data)
    except PcapError:
        return
    assert encode_pcap(records)[24:] == b"".join(
        record_header(r.time_ns // 10**9, r.time_ns % 10**9, len(r.data), r.original_length)
        + r.data for r in records)


# ---------------------------------------------------------------------------------------
# tshark reads what we write


@requires_tshark
def test_tshark_reads_the_textbook_ipv4_fragments(tmp_path: Path) -> None:
    path = tmp_path / "ipv4.pcap"
    write_pcap(path, records_of(textbook_fragments()))
    rows = tshark_fields(path, "frame.time_epoch", "ip.id", "ip.frag_offset", "ip.flags.mf",
                         "ip.len")
    assert [row[0] for row in rows] == [
        "1700000000.123456789", "1700000000.123456790", "1700000000.123456791"]
    assert {row[1] for row in rows} == {"0x3c5a"}
    # tshark 4.x shows the offset in 8-byte units, older releases in bytes.
    offsets = [int(row[2]) for row in rows]
    assert offsets in ([0, 185, 370], [0, 1480, 2960])
    assert [row[3] for row in rows] == ["1", "1", "0"]
    assert [int(row[4]) for row in rows] == [1500, 1500, 60]
    assert sum(int(row[4]) for row in rows) == 3060


@requires_tshark
def test_tshark_reads_ipv6_fragments(tmp_path: Path) -> None:
    path = tmp_path / "ipv6.pcap"
    write_pcap(path, records_of(ipv6_fragments()))
    rows = tshark_fields(path, "ipv6.fraghdr.ident", "ipv6.fraghdr.offset",
                         "ipv6.fraghdr.more", "ipv6.plen", "frame.len")
    assert rows == [["0x00abcdef", "0", "1", "1240", "1280"],
                    ["0x00abcdef", "154", "1", "1240", "1280"],
                    ["0x00abcdef", "308", "0", "544", "584"]]
