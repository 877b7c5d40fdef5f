"""Decoding what a listener received: fields, carriers, corruption, and any bytes at all."""

from __future__ import annotations

import json
import struct
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from hdp.arrival import DECODE_CHOICES, decode_arrival
from hdp.rawsock import Received
from hdp.render import byte_sum, listener_dump, listener_json, listener_table_row
from hdp.wire import hdp as hdp_wire
from hdp.wire import ipv4, udp
from hdp.wire.hdp import Carrier, HDPHeader, ProbeTag

COW = (b" _____\n< moo >\n -----\n        \\   ^__^\n         \\  (oo)\\_______\n"
       b"            (__)\\       )\\/\\\n                ||----w |\n                ||     ||\n")


def _received(data: bytes, family: int = 4, protocol: int = 255, **extra: object) -> Received:
    fields: dict[str, object] = dict(
        family=family, socket_protocol=protocol, data=data, src="127.0.0.1", dst=None,
        hop_limit=None, traffic_class=None, kernel_time_ns=1_739_640_243_546_200_000, drops=0,
        truncated=False)
    fields.update(extra)
    return Received(**fields)  # type: ignore[arg-type]


def _ipv4(payload: bytes, protocol: int = 255) -> bytes:
    header = ipv4.IPv4Header(src=IPv4Address("127.0.0.1"), dst=IPv4Address("127.0.0.1"),
                             protocol=protocol, identification=36455)
    return ipv4.encode(header, payload)


def test_original_client_packet_on_linux():
    hdp_bytes = hdp_wire.encode(HDPHeader(420, 420, 1_739_640_243_546_134_000), COW)
    arrival = decode_arrival(_received(_ipv4(hdp_bytes)), ipv4.RawQuirk.NONE)
    assert arrival.carrier is Carrier.HDP and arrival.tag is None and arrival.intact
    assert arrival.hdp == HDPHeader(420, 420, 1_739_640_243_546_134_000)
    assert arrival.data == COW and arrival.byte_count == 12 + len(COW)
    dump = listener_dump(arrival)
    assert f"Total Length: {20 + 12 + len(COW)}" in dump
    assert "Header Checksum:" in dump and "(valid)" in dump
    assert "Latency: 66.0 µs" in dump
    assert dump.endswith("Data: " + COW.decode() + "\n")


def test_write_up_macos_dump_reports_505():
    """The write-up's macOS listener printed Total Length 58625 for a 505-byte packet."""
    data = COW + b"x" * (473 - len(COW))
    body = hdp_wire.encode(HDPHeader(420, 420, 1_739_640_243_546_134_000), data)
    wire = bytearray(_ipv4(body))
    wire[2:4] = struct.pack("<H", 485)  # host order, header length subtracted
    wire[10:12] = b"\x00\x00"  # and no checksum
    assert struct.unpack("!H", wire[2:4])[0] == 58625
    arrival = decode_arrival(_received(bytes(wire)), ipv4.RawQuirk.BSD)
    assert arrival.ipv4 is not None and arrival.ipv4.total_length == 505
    dump = listener_dump(arrival)
    assert "Total Length: 505\n" in dump
    assert "Identification: 36455\n" in dump
    assert "Header Checksum: 0 (not valid)" in dump
    assert "Source Port: 420\nDestination Port: 420\nTimestamp: 1739640243546134000" in dump


def test_tagged_hdp_corruption_is_seen():
    tagged = hdp_wire.encode_tagged(ProbeTag(1, 2, 3), b"payload")
    good = hdp_wire.encode(HDPHeader(timestamp_ns=5), tagged)
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    assert decode_arrival(_received(_ipv4(good), protocol=253)).intact
    arrival = decode_arrival(_received(_ipv4(bad), protocol=253))
    assert arrival.tag == ProbeTag(1, 2, 3) and not arrival.intact
    assert "CORRUPTED" in listener_dump(arrival)


def test_udp_carrier_checks_the_checksum():
    body = hdp_wire.encode_tagged(ProbeTag(9, 17, 0, Carrier.UDP), b"baseline")
    datagram = udp.encode(420, 420, body, "127.0.0.1", "127.0.0.1")
    arrival = decode_arrival(_received(_ipv4(datagram, 17), protocol=17))
    assert arrival.carrier is Carrier.UDP and arrival.udp_checksum_ok and arrival.intact
    assert f"Checksum: {arrival.udp.checksum} (valid)" in listener_dump(arrival)
    broken = datagram[:6] + bytes([datagram[6] ^ 0xFF]) + datagram[7:]
    arrival = decode_arrival(_received(_ipv4(broken, 17), protocol=17))
    assert arrival.udp_checksum_ok is False and not arrival.intact


def test_ipv6_fields_come_from_ancillary_data():
    body = hdp_wire.encode(HDPHeader(timestamp_ns=1), b"six")
    arrival = decode_arrival(_received(body, family=6, protocol=253, src="::1", dst="::1",
                                       hop_limit=63, traffic_class=0xB9))
    assert (arrival.ttl, arrival.dscp, arrival.ecn, arrival.wire_protocol) == (63, 46, 1, 253)
    dump = listener_dump(arrival)
    assert "Hop Limit: 63" in dump and "DSCP: 46" in dump and "Destination IP: ::1" in dump
    assert listener_table_row(arrival).startswith("| 253 | 1739640243546200 | ::1 | 15 |")


def test_undecodable_ipv4_keeps_the_bytes():
    arrival = decode_arrival(_received(b"\x45\x00\x01"), ipv4.RawQuirk.NONE)
    assert arrival.error is not None and "offset" in arrival.error
    assert arrival.ip_payload == b"\x45\x00\x01" and not arrival.intact
    assert "Undecodable" in listener_dump(arrival)


@settings(max_examples=300, deadline=1000)
@given(data=st.binary(max_size=120), family=st.sampled_from([4, 6]),
       protocol=st.sampled_from([17, 136, 253, 255]),
       quirk=st.sampled_from(list(ipv4.RawQuirk)), decode=st.sampled_from(DECODE_CHOICES))
def test_any_bytes_decode_and_render(data, family, protocol, quirk, decode):
    received = _received(data, family=family, protocol=protocol,
                         dst="::1" if family == 6 else None)
    arrival = decode_arrival(received, quirk, decode=decode)
    assert isinstance(listener_dump(arrival), str)
    assert isinstance(listener_table_row(arrival), str)
    packet = json.loads(json.dumps(listener_json(arrival), allow_nan=False))
    assert packet["byte_sum"] == len(data) and bytes.fromhex(packet["data_hex"]) == arrival.data


def test_the_original_clients_hdp_on_protocol_17_reads_as_hdp():
    stamp = 1_739_640_243_546_134_000
    hdp_bytes = hdp_wire.encode(HDPHeader(420, 420, stamp), COW)
    received = _received(_ipv4(hdp_bytes, 17), protocol=17)
    arrival = decode_arrival(received, ipv4.RawQuirk.NONE)
    assert arrival.carrier is Carrier.HDP and arrival.hdp == HDPHeader(420, 420, stamp)
    assert arrival.data == COW and arrival.error is None
    assert arrival.note is not None and "not a consistent UDP datagram" in arrival.note
    forced = decode_arrival(received, ipv4.RawQuirk.NONE, decode="udp")
    assert forced.carrier is Carrier.UDP and "length says" in (forced.error or "")
    datagram = udp.encode(5, 6, b"real udp", "127.0.0.1", "127.0.0.1")
    real = decode_arrival(_received(_ipv4(datagram, 17), protocol=17), ipv4.RawQuirk.NONE)
    assert real.carrier is Carrier.UDP and real.udp_checksum_ok and real.note is None
    assert decode_arrival(_received(_ipv4(datagram, 17), protocol=17), ipv4.RawQuirk.NONE,
                          decode="hdp").carrier is Carrier.HDP


def test_byte_sum_counts_the_ipv4_header_as_the_original_server_did():
    arrival = decode_arrival(_received(_ipv4(hdp_wire.encode(HDPHeader(), b"a"))),
                             ipv4.RawQuirk.NONE)
    assert (arrival.byte_count, byte_sum(arrival)) == (13, 33)


def test_a_tagged_udp_datagram_shorter_than_its_ip_payload_is_read_to_its_length():
    body = hdp_wire.encode_tagged(ProbeTag(9, 17, 0, Carrier.UDP), b"baseline")
    datagram = udp.encode(420, 420, body, "127.0.0.1", "127.0.0.1")
    arrival = decode_arrival(_received(_ipv4(datagram + b"trailer", 17), protocol=17))
    assert arrival.tag == ProbeTag(9, 17, 0, Carrier.UDP)
    assert arrival.data == b"baseline" and arrival.intact and arrival.udp_checksum_ok


@settings(max_examples=300, deadline=None)
@given(carrier=st.sampled_from(list(Carrier)), data=st.binary(max_size=40),
       tail=st.binary(max_size=4), flip=st.integers(0, 80), protocol=st.sampled_from([17, 253]))
def test_the_tag_is_read_as_the_carriers_own_codec_reads_it(carrier, data, tail, flip,
                                                            protocol):
    body = hdp_wire.encode_tagged(ProbeTag(7, 3, 1, carrier), data)
    if carrier is Carrier.HDP:
        payload = hdp_wire.encode(HDPHeader(timestamp_ns=5), body)
    elif carrier is Carrier.UDP:
        payload = udp.encode(420, 420, body, "127.0.0.1", "127.0.0.1")
    else:
        payload = body
    payload += tail
    if flip < len(payload):  # a byte changed on the way, tag or data or header
        payload = payload[:flip] + bytes([payload[flip] ^ 0x5A]) + payload[flip + 1:]
    arrival = decode_arrival(_received(_ipv4(payload, protocol), protocol=protocol))
    if arrival.carrier is Carrier.HDP:
        expected = hdp_wire.decode(payload).payload
    elif arrival.carrier is Carrier.UDP and arrival.udp is not None:
        expected = hdp_wire.decode_tagged(udp.decode(payload).payload)
    else:
        expected = hdp_wire.decode_tagged(payload)
    assert (arrival.tag, arrival.data) == (expected.tag, expected.data)
