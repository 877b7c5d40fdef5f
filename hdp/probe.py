"""The bytes a probe puts after the IP header: HDP, UDP or raw, tagged or plain."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from hdp.wire import hdp as hdp_wire
from hdp.wire import udp
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag


class PayloadKind(str, enum.Enum):
    HDP = "hdp"
    UDP = "udp"
    RAW = "raw"

    @property
    def carrier(self) -> Carrier:
        return {"hdp": Carrier.HDP, "udp": Carrier.UDP, "raw": Carrier.RAW}[self.value]


@dataclass(frozen=True)
class Probe:
    """What to send: payload kind, the user's data, and our tag (None sends it plain)."""

    kind: PayloadKind
    data: bytes
    tag: ProbeTag | None = None
    src_port: int = hdp_wire.ORIGINAL_PORT
    dst_port: int = hdp_wire.ORIGINAL_PORT


_FILLER = b"pytest-hdp probe payload; " * 64


def probe_data(size: int) -> bytes:
    """Deterministic data of `size` bytes, so requests need not carry it."""
    return (_FILLER * (size // len(_FILLER) + 1))[:size]


def encode_probe(probe: Probe, src: str, dst: str, timestamp_ns: int | None = None) -> bytes:
    """The probe's bytes; `src`/`dst` feed the UDP pseudo-header checksum."""
    body = probe.data
    if probe.tag is not None:
        tag = ProbeTag(probe.tag.run_id, probe.tag.case, probe.tag.probe, probe.kind.carrier)
        body = hdp_wire.encode_tagged(tag, body)
    if probe.kind is PayloadKind.HDP:
        stamp = time.time_ns() if timestamp_ns is None else timestamp_ns
        return hdp_wire.encode(HDPHeader(probe.src_port, probe.dst_port, stamp), body)
    if probe.kind is PayloadKind.UDP:
        return udp.encode(probe.src_port, probe.dst_port, body, src, dst)
    return body
