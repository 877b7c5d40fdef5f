"""Classic pcap files of raw IP packets: encode, write, decode.

What we write: nanosecond timestamps (magic 0xa1b23c4d), version 2.4, snap length 262144,
link type 101 (LINKTYPE_RAW: each record starts with an IPv4 or IPv6 header), little-endian
so a file's bytes do not depend on the machine that wrote it. What we read: microsecond or
nanosecond files in either byte order with a raw-IP link type; any other bytes raise
`PcapError` naming the offset and the reason.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from hdp.errors import DecodeError, EncodeError

MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
VERSION = (2, 4)
SNAPLEN = 262144  # what libpcap and tshark use by default
LINKTYPE_RAW = 101
# LINKTYPE_IPV4 / LINKTYPE_IPV6 mean the same as RAW, restricted to one family.
RAW_LINKTYPES = frozenset({LINKTYPE_RAW, 228, 229})

FILE_HEADER_LENGTH = 24
RECORD_HEADER_LENGTH = 16
_FILE_HEADER = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD_HEADER = "IIII"  # seconds, fraction, captured length, original length
_NS = 1_000_000_000
_MAX_TIME_NS = (1 << 32) * _NS - 1  # the seconds field is 32 bits unsigned


class PcapError(DecodeError):
    """Bytes that are not a pcap file of raw IP packets."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__("pcap", offset, reason)


@dataclass(frozen=True)
class PcapRecord:
    """One packet: when it was seen, the bytes kept, and how long it was on the wire."""

    time_ns: int  # since the Unix epoch
    data: bytes
    original_length: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", bytes(self.data))
        if not 0 <= self.time_ns <= _MAX_TIME_NS:
            raise EncodeError(f"pcap time {self.time_ns} ns is outside 0..2**32 seconds")
        if not len(self.data) <= self.original_length <= 0xFFFFFFFF:
            raise EncodeError(
                f"pcap original length {self.original_length} must be at least the "
                f"{len(self.data)} bytes kept and fit in 32 bits"
            )


def encode_pcap(records: Iterable[PcapRecord]) -> bytes:
    """A whole pcap file; raises EncodeError for a record longer than the snap length."""
    parts = [struct.pack("<" + _FILE_HEADER, MAGIC_NANO, *VERSION, 0, 0, SNAPLEN,
                         LINKTYPE_RAW)]
    for index, record in enumerate(records):
        if len(record.data) > SNAPLEN:
            raise EncodeError(
                f"pcap record {index} keeps {len(record.data)} bytes, over the snap length "
                f"{SNAPLEN}"
            )
        seconds, nanoseconds = divmod(record.time_ns, _NS)
        parts.append(struct.pack("<" + _RECORD_HEADER, seconds, nanoseconds,
                                 len(record.data), record.original_length))
        parts.append(record.data)
    return b"".join(parts)


def write_pcap(target: str | os.PathLike[str] | BinaryIO, records: Iterable[PcapRecord]) -> None:
    """Write `records` to a path, or to a binary file object the caller opened."""
    # Encode first so a bad record leaves no half-written file behind.
    data = encode_pcap(records)
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            file.write(data)
    else:
        target.write(data)


def decode_pcap(data: bytes) -> list[PcapRecord]:
    """The records of a pcap file; raises PcapError for anything else."""
    data = bytes(data)
    if len(data) < FILE_HEADER_LENGTH:
        raise PcapError(len(data), f"truncated file header: need {FILE_HEADER_LENGTH} bytes, "
                                   f"have {len(data)}")
    order, scale = _byte_order_and_scale(data)
    _magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
        order + _FILE_HEADER, data)
    if major != VERSION[0]:
        raise PcapError(4, f"version {major}.{minor}, only 2.x is pcap")
    if linktype & 0xFFFF not in RAW_LINKTYPES:
        # The upper bits carry FCS length and flags (pcap-linktype(7)), not the type.
        raise PcapError(20, f"link type {linktype & 0xFFFF}, not raw IP (101, 228 or 229)")
    limit = 10**6 if scale == 1000 else _NS
    records: list[PcapRecord] = []
    offset = FILE_HEADER_LENGTH
    # Every pass consumes a 16-byte header, so the loop ends with the data.
    while offset < len(data):
        if len(data) - offset < RECORD_HEADER_LENGTH:
            raise PcapError(offset, f"truncated record header: need {RECORD_HEADER_LENGTH} "
                                    f"bytes, have {len(data) - offset}")
        seconds, fraction, kept, original = struct.unpack_from(order + _RECORD_HEADER, data,
                                                               offset)
        if fraction >= limit:
            raise PcapError(offset + 4, f"sub-second field {fraction} is not below {limit}")
        if kept > snaplen:
            raise PcapError(offset + 8, f"record of {kept} bytes is longer than the snap "
                                        f"length {snaplen}")
        if kept > original:
            raise PcapError(offset + 8, f"record keeps {kept} bytes of a {original}-byte "
                                        "packet")
        start = offset + RECORD_HEADER_LENGTH
        if kept > len(data) - start:
            raise PcapError(start, f"truncated record data: need {kept} bytes, "
                                   f"have {len(data) - start}")
        records.append(PcapRecord(seconds * _NS + fraction * scale, data[start:start + kept],
                                  original))
        offset = start + kept
    return records


def _byte_order_and_scale(data: bytes) -> tuple[str, int]:
    """The struct byte order and the nanoseconds per sub-second unit, from the magic."""
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data)
        if magic == MAGIC_NANO:
            return order, 1
        if magic == MAGIC_MICRO:
            return order, 1000
    raise PcapError(0, f"bad magic 0x{data[:4].hex()}: not a classic pcap file "
                       "(pcapng is not read here)")
