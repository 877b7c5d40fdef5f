"""Probes built and recognised at packet rate: a template filled in place, a tag read in
place (pure; the same bytes as hdp.probe and hdp.wire.hdp build and read).

A probe of one carrier and data differs from the next only in the HDP timestamp and the
tag's probe number, run, case and CRC. `ProbeTemplate` keeps the bytes after the IP
header once and writes those fields into them (about a microsecond a probe, against
several for hdp.probe.encode_probe, which validates every field through dataclasses).
`read_tag` checks magic, version, carrier and CRC of a tag where a carrier puts it, in a
received buffer, without copying or building objects. Both refuse nothing silently: what
they cannot do (a UDP carrier, whose checksum covers the addresses) they say at once.
"""

from __future__ import annotations

import struct
import zlib

from hdp.wire.hdp import (
    HEADER_LENGTH,
    ORIGINAL_PORT,
    TAG_LENGTH,
    TAG_MAGIC,
    TAG_VERSION,
    Carrier,
)

_TAG = struct.Struct("!4sBBHIII")  # magic, version, carrier, probe, run, case, CRC
_STAMP = struct.Struct("!Q")  # the HDP header's timestamp, at byte 4
_CRC = struct.Struct("!I")
_CRC_AT = 16  # the CRC's offset in the tag
_OFFSET = {Carrier.HDP: HEADER_LENGTH, Carrier.RAW: 0}  # where each carrier puts the tag
_CARRIERS = frozenset(int(c) for c in Carrier)


class ProbeTemplate:
    """The bytes after the IP header of probes of one carrier (HDP or raw) and data.

    `fill` writes a probe's fields and returns the buffer, valid until the next fill:
    send it, or copy it, before filling again.
    """

    def __init__(self, carrier: Carrier, data: bytes, src_port: int = ORIGINAL_PORT,
                 dst_port: int = ORIGINAL_PORT) -> None:
        if carrier not in _OFFSET:
            raise ValueError(f"no template for a {carrier.name} carrier: its checksum covers "
                             "the addresses (build it with hdp.probe.encode_probe)")
        self.carrier = carrier
        self.offset = _OFFSET[carrier]
        self.buffer = bytearray(self.offset + TAG_LENGTH + len(data))
        if carrier is Carrier.HDP:
            struct.pack_into("!HH", self.buffer, 0, src_port, dst_port)
        self.buffer[self.offset + TAG_LENGTH:] = data
        self._view = memoryview(self.buffer)[self.offset:]

    def fill(self, run: int, case: int, probe: int = 0, stamp_ns: int = 0) -> bytearray:
        """The probe tagged (run, case, probe), its HDP timestamp `stamp_ns`; struct.error
        for a field out of its range (run and case 32 bits, probe 16)."""
        buffer = self.buffer
        if self.offset:
            _STAMP.pack_into(buffer, 4, stamp_ns)
        _TAG.pack_into(buffer, self.offset, TAG_MAGIC, TAG_VERSION, self.carrier, probe, run,
                       case, 0)
        # The CRC covers the tag with its CRC field zeroed, then the data: one pass.
        _CRC.pack_into(buffer, self.offset + _CRC_AT, zlib.crc32(self._view))
        return buffer


def read_tag(buffer: bytes | bytearray | memoryview, offset: int, end: int
             ) -> tuple[int, int, int, int, bool] | None:
    """(carrier, probe, run, case, intact) of a tag at `offset` of `buffer`, the probe
    ending at `end`; None where no whole tag of this version is. `intact` is whether the
    CRC matches the tag and every byte up to `end`."""
    if end - offset < TAG_LENGTH or offset < 0 or end > len(buffer):
        return None
    magic, version, carrier, probe, run, case, crc = _TAG.unpack_from(buffer, offset)
    if magic != TAG_MAGIC or version != TAG_VERSION or carrier not in _CARRIERS:
        return None
    view = memoryview(buffer)
    head = zlib.crc32(b"\0\0\0\0", zlib.crc32(view[offset:offset + _CRC_AT]))
    return carrier, probe, run, case, crc == zlib.crc32(view[offset + TAG_LENGTH:end], head)
