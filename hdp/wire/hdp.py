"""The HDP header of the original experiment, and pytest-hdp's probe tag in its payload.

HDP on the wire (all big-endian, directly after the IP header)::

    0          2          4                                   12
    | src port | dst port | timestamp, u64 ns since the epoch | payload ...

The probe tag opens the payload of our own probes::

    0        4     5      6        8        12        16       20
    | "HDPt" | ver | kind | probe  | run id | case    | crc32  | data ...

`kind` says what carries the tag (0 HDP, 1 UDP, 2 raw); the CRC-32 covers the tag
with its CRC field zeroed, and every data byte after it, so a listener can tell an
intact probe from one whose data was changed or cut short. A payload too short to hold
a whole tag, or without the magic, is plain HDP, like the original client's packets.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from hdp.errors import DecodeError, EncodeError

HEADER_LENGTH = 12
ORIGINAL_PORT = 420
_HEADER = struct.Struct("!HHQ")

TAG_MAGIC = b"HDPt"
TAG_VERSION = 1
TAG_LENGTH = 20
_TAG = struct.Struct("!4sBBHIII")


class Carrier(enum.IntEnum):
    HDP = 0
    UDP = 1
    RAW = 2


@dataclass(frozen=True)
class HDPHeader:
    src_port: int = ORIGINAL_PORT
    dst_port: int = ORIGINAL_PORT
    timestamp_ns: int = 0

    def __post_init__(self) -> None:
        for name in ("src_port", "dst_port"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise EncodeError(f"HDP {name} must fit in 16 bits, got {getattr(self, name)}")
        if not 0 <= self.timestamp_ns < 1 << 64:
            raise EncodeError(f"HDP timestamp must fit in 64 bits, got {self.timestamp_ns}")


@dataclass(frozen=True)
class ProbeTag:
    run_id: int
    case: int
    probe: int = 0
    carrier: Carrier = Carrier.HDP

    def __post_init__(self) -> None:
        for name, bits in (("run_id", 32), ("case", 32), ("probe", 16)):
            if not 0 <= getattr(self, name) < 1 << bits:
                raise EncodeError(
                    f"probe tag {name} must fit in {bits} bits, got {getattr(self, name)}"
                )
        if self.carrier not in Carrier._value2member_map_:
            raise EncodeError(f"probe tag carrier must be one of "
                              f"{[c.value for c in Carrier]}, got {self.carrier}")


@dataclass(frozen=True)
class TaggedPayload:
    """A payload as received: its tag if it has one, the data, and whether it is intact."""

    tag: ProbeTag | None
    data: bytes
    intact: bool  # False when a tag is present but its CRC does not match


@dataclass(frozen=True)
class HDPPacket:
    header: HDPHeader
    payload: TaggedPayload


def encode_header(header: HDPHeader) -> bytes:
    return _HEADER.pack(header.src_port, header.dst_port, header.timestamp_ns)


def encode(header: HDPHeader, payload: bytes) -> bytes:
    return encode_header(header) + payload


def decode(data: bytes) -> HDPPacket:
    """Parse an HDP packet (the bytes after the IP header)."""
    data = bytes(data)
    return HDPPacket(decode_header(data), decode_tagged(data[HEADER_LENGTH:]))


def decode_header(data: bytes) -> HDPHeader:
    """The HDP header alone, whatever follows it."""
    if len(data) < HEADER_LENGTH:
        raise DecodeError("HDP header", len(data), f"need {HEADER_LENGTH} bytes, have {len(data)}")
    src_port, dst_port, timestamp = _HEADER.unpack_from(data)
    return HDPHeader(src_port, dst_port, timestamp)


def encode_tagged(tag: ProbeTag, data: bytes) -> bytes:
    """`data` preceded by the probe tag, with the CRC over both."""
    head = _TAG.pack(TAG_MAGIC, TAG_VERSION, tag.carrier, tag.probe, tag.run_id, tag.case, 0)
    crc = zlib.crc32(data, zlib.crc32(head))
    return head[:16] + crc.to_bytes(4, "big") + data


def decode_tagged(payload: bytes) -> TaggedPayload:
    """Split a payload into our probe tag and data; untagged payloads pass through whole."""
    payload = bytes(payload)
    if not payload.startswith(TAG_MAGIC) or len(payload) < TAG_LENGTH:
        return TaggedPayload(None, payload, True)
    _magic, version, kind, probe, run_id, case, crc = _TAG.unpack_from(payload)
    if version != TAG_VERSION or kind not in Carrier._value2member_map_:
        return TaggedPayload(None, payload, True)
    data = payload[TAG_LENGTH:]
    expected = zlib.crc32(data, zlib.crc32(payload[:16] + b"\x00\x00\x00\x00"))
    return TaggedPayload(ProbeTag(run_id, case, probe, Carrier(kind)), data, crc == expected)


_TAG_OFFSETS = ((Carrier.HDP, HEADER_LENGTH), (Carrier.UDP, 8), (Carrier.RAW, 0))


def find_tag(payload: bytes, checksum_at: int | None = None
             ) -> tuple[Carrier, TaggedPayload] | None:
    """Our tag where a carrier puts it (after HDP's 12 bytes, UDP's 8, or at 0), if any.

    The tag fields are read even when the data after it is cut short, as in the quote of
    an ICMP error; `intact` then says False. `checksum_at` is where the sending kernel
    writes a checksum into every payload of this protocol whatever it was given (IPv6
    protocol 58 at 2, RFC 3542 3.1): inside a raw carrier's tag it overwrites the magic,
    so the tag is read with those two bytes as they were sent, and never as intact.
    """
    for carrier, offset in _TAG_OFFSETS:
        found = decode_tagged(payload[offset:])
        if found.tag is not None and found.tag.carrier is carrier:
            return carrier, found
    if checksum_at is not None and 0 <= checksum_at <= len(TAG_MAGIC) - 2:
        end = checksum_at + 2
        sent = payload[:checksum_at] + TAG_MAGIC[checksum_at:end] + payload[end:]
        found = decode_tagged(sent)
        if found.tag is not None and found.tag.carrier is Carrier.RAW:
            return Carrier.RAW, TaggedPayload(found.tag, found.data, False)
    return None
