"""Text the CLI prints: the write-up's listener dump, its client/server table rows, and
`hdp listen --format json`'s one object a packet."""

from __future__ import annotations

from typing import Any

from hdp.arrival import Arrival
from hdp.rawsock import SendResult
from hdp.wire.hdp import Carrier
from hdp.wire.ipv4 import IPv4Packet

_CONTROL = {c: f"\\x{c:02x}" for c in range(32) if chr(c) not in "\n\t"} | {0x7F: "\\x7f"}


def printable(data: bytes) -> str:
    """Data as text, as the original listener showed it, with control bytes escaped."""
    return data.decode("utf-8", "replace").translate(_CONTROL)


def listener_dump(arrival: Arrival) -> str:
    """The IP header and the HDP header & data, field by field."""
    lines = _ip_section(arrival)
    lines += ["", ""]
    if arrival.error and arrival.carrier is None:
        lines += [f"Undecodable: {arrival.error}", f"Bytes: {arrival.ip_payload.hex()}"]
        return "\n".join(lines) + "\n"
    if arrival.carrier is Carrier.HDP and arrival.hdp is not None:
        lines += ["~~~ HDP Header & Data ~~~",
                  f"Source Port: {arrival.hdp.src_port}",
                  f"Destination Port: {arrival.hdp.dst_port}",
                  f"Timestamp: {arrival.hdp.timestamp_ns}"]
    elif arrival.carrier is Carrier.UDP and arrival.udp is not None:
        checksum = {True: " (valid)", False: " (invalid)", None: ""}[arrival.udp_checksum_ok]
        lines += ["~~~ UDP Header & Data ~~~",
                  f"Source Port: {arrival.udp.src_port}",
                  f"Destination Port: {arrival.udp.dst_port}",
                  f"Length: {arrival.udp.length}",
                  f"Checksum: {arrival.udp.checksum}{checksum}"]
    else:
        lines += ["~~~ Data ~~~"]
    if arrival.note:
        lines.append(f"Note: {arrival.note}")
    if arrival.tag is not None:
        state = "intact" if arrival.intact else "CORRUPTED (CRC mismatch)"
        lines.append(f"Probe Tag: run {arrival.tag.run_id:08x}, case {arrival.tag.case}, "
                     f"probe {arrival.tag.probe}, {state}")
    latency = latency_us(arrival)
    if latency is not None:
        lines.append(f"Latency: {latency:.1f} µs (HDP timestamp to kernel receive time)")
    if arrival.error:
        lines.append(f"Decode error: {arrival.error}")
    lines.append(f"Data: {printable(arrival.data)}")
    return "\n".join(lines) + "\n"


def _ip_section(arrival: Arrival) -> list[str]:
    header = arrival.ipv4
    if header is not None:
        valid = "valid" if arrival_checksum_ok(arrival) else "not valid"
        return ["~~~ IP Header ~~~",
                f"Version: {header.version}",
                f"IHL: {header.ihl}",
                f"DSCP: {header.dscp}",
                f"ECN: {header.ecn}",
                f"Total Length: {header.total_length}",
                f"Identification: {header.identification}",
                f"Flags: {header.flags}",
                f"Fragment Offset: {header.fragment_offset}",
                f"TTL: {header.ttl}",
                f"Protocol: {header.protocol}",
                f"Header Checksum: {header.checksum} ({valid})",
                f"Source IP: {header.src}",
                f"Destination IP: {header.dst}"]
    received = arrival.received
    if received.family == 4:  # an IPv4 header we could not parse
        return ["~~~ IP Header ~~~", f"Undecodable: {arrival.error}",
                f"Bytes: {received.data[:60].hex()}", f"Source IP: {received.src}"]
    return ["~~~ IPv6 Header (from ancillary data) ~~~",
            "Version: 6",
            f"DSCP: {_or_unknown(arrival.dscp)}",
            f"ECN: {_or_unknown(arrival.ecn)}",
            f"Payload Length: {len(arrival.ip_payload)}",
            f"Next Header: {_or_unknown(arrival.wire_protocol)}",
            f"Hop Limit: {_or_unknown(arrival.ttl)}",
            f"Source IP: {arrival.src}",
            f"Destination IP: {_or_unknown(arrival.dst)}"]


def arrival_checksum_ok(arrival: Arrival) -> bool:
    if arrival.ipv4 is None:
        return False
    return IPv4Packet(arrival.ipv4, arrival.ip_payload).checksum_ok


def _or_unknown(value: object) -> str:
    return "unknown" if value is None else str(value)


def latency_us(arrival: Arrival) -> float | None:
    """One-way latency from the HDP send timestamp to the kernel's receive timestamp."""
    if arrival.hdp is None or arrival.received.kernel_time_ns is None:
        return None
    if not arrival.hdp.timestamp_ns:
        return None
    return (arrival.received.kernel_time_ns - arrival.hdp.timestamp_ns) / 1000


def listener_table_header() -> str:
    return ("| Protocol Number | Time (μs) (Server) | Source IP (Server) | Byte Sum (Server) |\n"
            "| ---: | ---: | :--- | ---: |")


def byte_sum(arrival: Arrival) -> int:
    """The original server's "Byte Sum": what recv() returned on its raw socket, so the IPv4
    header is counted (an IPv4 raw socket hands it over) and on IPv6 only the payload is
    (an IPv6 raw socket never hands over its header). 13 bytes sent over IPv4 count 33."""
    return len(arrival.received.data)


def _protocol(arrival: Arrival) -> int:
    return arrival.wire_protocol if arrival.wire_protocol is not None \
        else arrival.received.socket_protocol


def listener_table_row(arrival: Arrival) -> str:
    stamp = arrival.received.kernel_time_ns
    when = "-" if stamp is None else str(stamp // 1000)
    return f"| {_protocol(arrival)} | {when} | {arrival.src} | {byte_sum(arrival)} |"


def listener_json(arrival: Arrival) -> dict[str, Any]:
    """One packet as plain JSON types: the fields README's "hdp listen --format json" lists."""
    hdp, datagram, tag = arrival.hdp, arrival.udp, arrival.tag
    latency = latency_us(arrival)
    return {
        "time_ns": arrival.received.kernel_time_ns,
        "family": arrival.received.family,
        "protocol": _protocol(arrival),
        "socket_protocol": arrival.received.socket_protocol,
        "src": arrival.src, "dst": arrival.dst,
        "ttl": arrival.ttl, "dscp": arrival.dscp, "ecn": arrival.ecn,
        "byte_sum": byte_sum(arrival),
        "ip_payload_bytes": arrival.byte_count,
        "decoded_as": None if arrival.carrier is None else arrival.carrier.name.lower(),
        "hdp": None if hdp is None else {"src_port": hdp.src_port, "dst_port": hdp.dst_port,
                                         "timestamp_ns": hdp.timestamp_ns},
        "udp": None if datagram is None else {
            "src_port": datagram.src_port, "dst_port": datagram.dst_port,
            "length": datagram.length, "checksum": datagram.checksum,
            "checksum_ok": arrival.udp_checksum_ok},
        "tag": None if tag is None else {"run": f"{tag.run_id:08x}", "case": tag.case,
                                         "probe": tag.probe,
                                         "carrier": tag.carrier.name.lower()},
        "intact": arrival.intact,
        "latency_us": None if latency is None else round(latency, 1),
        "data": arrival.data.decode("utf-8", "replace"),
        "data_hex": arrival.data.hex(),
        "note": arrival.note,
        "error": arrival.error,
    }


def sender_table_header() -> str:
    return ("| Protocol Number | Succeeded (Client) | Time (μs) (Client) | Byte sum (Client) "
            "| Failure reason (Client) |\n| ---: | :--- | ---: | ---: | :--- |")


def sender_row(protocol: int, result: SendResult) -> str:
    sent = str(result.sent_bytes) if result.ok else "-"
    reason = "-" if result.refusal is None else str(result.refusal)
    return (f"| {protocol} | {'yes' if result.ok else 'no'} | {result.time_ns // 1000} "
            f"| {sent} | {reason} |")
