"""An ICMP/ICMPv6 listener that reports errors quoting our probes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from hdp import rawsock
from hdp.errors import DecodeError
from hdp.osnet import current
from hdp.wire import hdp as hdp_wire
from hdp.wire import icmp, ipv4

_PROTOCOL = {4: 1, 6: 58}
# ICMP errors xnu passes to the transport's ctlinput before rip_input, byte-swapping the
# quoted ip_len on the way (bsd/netinet/ip_icmp.c:icmp_input), by type: the codes it
# accepts there.
_SWAPPED_QUOTE = {3: range(16), 4: range(1), 11: range(2), 12: range(2)}


@dataclass
class IcmpWatch:
    family: int
    raw: rawsock.RawSocket

    @classmethod
    def open(cls, family: int) -> IcmpWatch | rawsock.OsRefusal:
        raw = rawsock.open_listener(family, _PROTOCOL[family])
        if isinstance(raw, rawsock.OsRefusal):
            return raw
        return cls(family, raw)

    def read(self, runs: set[int]) -> dict[str, Any] | None:
        """The next packet as an `icmp` event, or None if it is not an error about a probe."""
        return icmp_event(self.raw.receive(), runs)


def icmp_event(received: rawsock.Received, runs: set[int]) -> dict[str, Any] | None:
    """An `icmp` event for an error quoting one of our runs' probes (or an untagged one)."""
    table = current()
    try:
        if received.family == 4:
            outer = ipv4.decode(received.data, table.raw_quirk)
            sender, data = str(outer.header.src), outer.payload
            if table.icmp_quote_len_host_order:
                data = network_order_quote(data)
        else:
            sender, data = received.src, received.data
        message = icmp.decode(data, received.family)
        if not message.is_error:
            return None
        quoted = icmp.quoted_probe(message)
    except DecodeError:
        return None
    found = hdp_wire.find_tag(quoted.payload)
    tag = found[1].tag if found is not None else None
    if tag is not None and tag.run_id not in runs:
        return None
    return {
        "event": "icmp", "family": received.family, "type": message.type,
        "code": message.code, "from": sender, "mtu": message.mtu,
        "run": tag.run_id if tag else None, "case": tag.case if tag else None,
        "quoted_protocol": quoted.protocol, "quoted_dst": str(quoted.dst),
        "quoted_ident": quoted.identification, "quoted_flow": quoted.flow_label,
        "kernel_time_ns": received.kernel_time_ns,
    }


def network_order_quote(message: bytes) -> bytes:
    """An ICMPv4 error as sent: the quoted Total Length back in network byte order where
    the receiving BSD kernel left it in host order."""
    if len(message) < 12 or message[1] not in _SWAPPED_QUOTE.get(message[0], ()):
        return message
    (length,) = struct.unpack_from("=H", message, 10)
    return message[:10] + struct.pack("!H", length) + message[12:]
