"""UDP as the chapter states it (10.2, 10.3, 10.5, 10.10): checksum, length, size, reads."""

from __future__ import annotations

import pytest

from hdp.checks.support import (
    ENOUGH,
    MARK,
    WAIT,
    counter,
    fate,
    ip_packet,
    open_receiver,
    payload,
    receive_tagged,
    src_of,
    tag,
    transport_of,
)
from hdp.wire import udp
from hdp.wire.checksum import internet_checksum, ones_complement_sum
from hdp.wire.fragment import Reassembler

# -- 10.3 / 10.5 the checksum ---------------------------------------------------------------


@pytest.mark.hdp_check("udp-checksum-zero")
def test_zero_checksum(hdp_path, hdp_check):
    """IPv4: 0 says 'no checksum' and the datagram is delivered; IPv6: 0 is dropped."""
    receiver = open_receiver(hdp_path)
    src = hdp_path.src()
    body = udp.encode(40001, receiver.port, payload(101), src, hdp_path.dst, checksum=0)
    answer, _ = fate(hdp_path, receiver, [ip_packet(src, hdp_path.dst, 17, body)])
    receiver.close()
    hdp_check.observe(answer, "odd-length datagram with checksum field 0")


def _corrupted(hdp_path, port):
    src = hdp_path.src()
    good = udp.encode(40002, port, payload(64), src, hdp_path.dst)
    checksum = int.from_bytes(good[6:8], "big")
    bad = good[:6] + ((checksum ^ 0x5A5A) or 1).to_bytes(2, "big") + good[8:]
    return ip_packet(src, hdp_path.dst, 17, bad)


@pytest.mark.hdp_check("udp-checksum-error-dropped")
def test_bad_checksum_dropped(hdp_path, hdp_check):
    receiver = open_receiver(hdp_path)
    answer, _ = fate(hdp_path, receiver, [_corrupted(hdp_path, receiver.port)])
    receiver.close()
    hdp_check.observe(answer)


@pytest.mark.hdp_check("udp-checksum-error-counted")
def test_bad_checksum_counted(hdp_path, hdp_check):
    """The drop is silent to the sender, but the receiver's InCsumErrors counter rises."""
    receiver = open_receiver(hdp_path)
    before = counter(hdp_path.receiver.counters(), hdp_path.family, "InCsumErrors")
    fate(hdp_path, receiver, [_corrupted(hdp_path, receiver.port)])
    after = counter(hdp_path.receiver.counters(), hdp_path.family, "InCsumErrors")
    receiver.close()
    if before is None or after is None:
        hdp_check.observe("no-counter", "the receiver exposes no UDP InCsumErrors counter")
    else:
        hdp_check.observe("counted" if after > before else "not-counted",
                          f"InCsumErrors {before} -> {after}")


def _sent_by_kernel(hdp_path, sizes, *, data_for=None):
    """Datagrams a kernel UDP socket sent toward the receiver, as they left the sender
    (reassembled where they left as fragments): [(src, datagram bytes), ...]."""
    if hdp_path.translated:
        # What a capture read back of a fragment that left shares memory with the packet
        # the NAT router then reassembles and re-cuts in place: it shows the router's work.
        pytest.skip(f"{hdp_path.id}: outgoing fragments cannot be read back unaltered "
                    "on a path whose router translates (it rewrites them in place)")
    receiver = open_receiver(hdp_path)
    sender = hdp_path.sender.open_udp(hdp_path.family, bind="", port=0, pmtudisc="dont")
    flow = hdp_path.flow(17, sender.port, receiver.port)
    with hdp_path.sender.capture(flow, protocol=17, incoming_only=False) as seen:
        for size in sizes:
            data = payload(size) if data_for is None else \
                data_for(size, sender.port, receiver.port)
            hdp_path.sender.send(sender.handle, data=data, dst=hdp_path.dst,
                                 port=receiver.port)
        hdp_path.receiver.receive(receiver.handle, count=len(sizes), timeout=2.0)
    hdp_path.sender.close(sender.handle)
    receiver.close()
    reassembler = Reassembler()
    found = []
    for (_, packet), direction in zip(seen.packets, seen.directions, strict=True):
        if direction != "outgoing":
            continue
        whole = reassembler.add(packet)  # as the receiver will see it, offload aside
        body = None if whole is None else transport_of(whole)
        if body is not None and len(body) >= 8:
            found.append((src_of(whole), body))
    return found


def _checksum_kind(src: str, dst: str, datagram: bytes, length: int) -> str:
    """valid; offloaded: the field holds only the pseudo-header's sum, left for the device
    to finish (Linux's CHECKSUM_PARTIAL); invalid otherwise."""
    if len(datagram) == length and udp.verify(src, dst, datagram):
        return "valid"
    field = int.from_bytes(datagram[6:8], "big")
    partial = ones_complement_sum(udp.pseudo_header(src, dst, 17, length))
    if field == partial:
        return "offloaded"
    return "invalid"


def _sizes(hdp_path):
    """An odd and an even size; larger than the first link where it can fragment, because
    the kernel finishes a fragmented datagram's checksum itself, never the device."""
    mtu = hdp_path.first_link()
    return (2001, 2000) if mtu < 2028 + 20 else (101, 100)


@pytest.mark.hdp_check("udp-checksum-on-wire")
def test_kernel_checksum_on_the_wire(hdp_path, hdp_check):
    sizes = _sizes(hdp_path)
    sent = _sent_by_kernel(hdp_path, sizes)
    assert len(sent) == len(sizes), f"{hdp_path.id}: captured {len(sent)} of {len(sizes)}"
    kinds = [_checksum_kind(src, hdp_path.dst, body, 8 + size)
             for (src, body), size in zip(sent, sizes, strict=True)]
    answer = "invalid" if "invalid" in kinds else "offloaded" if "offloaded" in kinds \
        else "valid"
    hdp_check.observe(answer, f"payloads of {sizes[0]} and {sizes[1]} bytes: {kinds}")


@pytest.mark.hdp_check("udp-checksum-zero-sent-as-ffff")
def test_computed_zero_is_sent_as_ffff(hdp_path, hdp_check):
    size = _sizes(hdp_path)[1]  # even: the two adjustable bytes are a whole 16-bit word
    src = hdp_path.src()

    def data_for(_size, sport, dport):
        data = bytearray(payload(size - 2) + b"\0\0")
        header = (sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
                  + (8 + size).to_bytes(2, "big") + b"\0\0")
        total = ones_complement_sum(udp.pseudo_header(src, hdp_path.dst, 17, 8 + size)
                                    + header + bytes(data))
        data[-2:] = (0xFFFF - total).to_bytes(2, "big")  # the sum becomes 0xFFFF: check 0
        return bytes(data)

    sent = _sent_by_kernel(hdp_path, [size], data_for=data_for)
    assert sent, f"{hdp_path.id}: the datagram was not captured leaving"
    src_seen, body = sent[0]
    field = int.from_bytes(body[6:8], "big")
    kind = _checksum_kind(src_seen, hdp_path.dst, body, 8 + size)
    answer = "offloaded" if kind == "offloaded" else f"0x{field:04x}"
    hdp_check.observe(answer, f"{size}-byte payload whose sum is 0; field 0x{field:04x} "
                              f"({kind})")


# -- 10.2 the length field ------------------------------------------------------------------


def _with_length(datagram: bytes, length: int, src: str, dst: str) -> bytes:
    """`datagram` claiming `length`, its checksum computed over the bytes that length names."""
    claimed = datagram[:4] + length.to_bytes(2, "big") + b"\0\0" + datagram[8:]
    covered = claimed[:length] if length <= len(claimed) else claimed
    checksum = internet_checksum(udp.pseudo_header(src, dst, 17, length) + covered)
    return claimed[:6] + (checksum or 0xFFFF).to_bytes(2, "big") + claimed[8:]


@pytest.mark.hdp_check("udp-length-longer-than-ip")
def test_length_longer_than_ip(hdp_path, hdp_check):
    receiver = open_receiver(hdp_path)
    src = hdp_path.src()
    data = payload(60)
    datagram = udp.encode(40003, receiver.port, data, src, hdp_path.dst)
    claimed = _with_length(datagram, len(datagram) + 4, src, hdp_path.dst)
    answer, _ = fate(hdp_path, receiver, [ip_packet(src, hdp_path.dst, 17, claimed)])
    receiver.close()
    hdp_check.observe(answer, f"UDP length {len(datagram) + 4}, IP carries {len(datagram)}")


@pytest.mark.hdp_check("udp-length-shorter-than-ip")
def test_length_shorter_than_ip(hdp_path, hdp_check):
    receiver = open_receiver(hdp_path)
    src = hdp_path.src()
    data = payload(60)
    datagram = udp.encode(40004, receiver.port, data, src, hdp_path.dst) + b"TAIL"
    answer, got = fate(hdp_path, receiver, [ip_packet(src, hdp_path.dst, 17, datagram)])
    receiver.close()
    lengths = [d.length for d in got if d.head.startswith(MARK)]
    if answer == "delivered" and lengths == [len(data)]:
        answer = "delivered-trimmed"
    hdp_check.observe(answer, f"UDP length {8 + len(data)}, IP carries {len(datagram)}; "
                              f"read lengths {lengths}")


# -- 10.10 the largest datagram, and reads smaller than a datagram ----------------------------

LARGEST = {4: udp.MAX_PAYLOAD_V4, 6: udp.MAX_PAYLOAD_V6}


@pytest.mark.hdp_check("udp-largest-datagram")
def test_largest_datagram_delivered(hdp_path, hdp_check):
    size = LARGEST[hdp_path.family]
    receiver = open_receiver(hdp_path, rcvbuf=1 << 20)
    sender = hdp_path.sender.open_udp(hdp_path.family, sndbuf=1 << 20)
    sent = hdp_path.sender.send(sender.handle, data=payload(size), dst=hdp_path.dst,
                                port=receiver.port)
    got = receive_tagged(hdp_path, receiver.handle, timeout=3.0) if sent["ok"] else []
    hdp_path.sender.close(sender.handle)
    receiver.close()
    if not sent["ok"]:
        hdp_check.observe("send-refused", f"send of {size} bytes: {sent['errno']}")
    elif got and got[0].length == size and got[0].digest == sent["digest"]:
        hdp_check.observe("delivered", f"{size} bytes, intact")
    else:
        hdp_check.observe("dropped", f"{size} bytes sent, read {[d.length for d in got]}")


@pytest.mark.hdp_check("udp-largest-plus-one")
def test_one_byte_more_refused(hdp_path, hdp_check):
    size = LARGEST[hdp_path.family] + 1
    sender = hdp_path.sender.open_udp(hdp_path.family, sndbuf=1 << 20)
    sent = hdp_path.sender.send(sender.handle, size, dst=hdp_path.dst, port=9)
    hdp_path.sender.close(sender.handle)
    hdp_check.observe("sent" if sent["ok"] else sent["errno"], f"send of {size} bytes")


NEXT = tag(b"NEXT")


def _rest(skip: int) -> bytes:
    """The marked 1000-byte payload from byte `skip` on."""
    return payload(1000)[skip:]


@pytest.mark.hdp_check("udp-truncation")
def test_short_read_truncates(hdp_path, hdp_check):
    """A 1000-byte datagram read into 100 bytes: cut, flagged, and the rest not kept."""
    receiver = open_receiver(hdp_path)
    sender = hdp_path.sender.open_udp(hdp_path.family, pmtudisc="dont")  # routers may cut it
    hdp_path.sender.send(sender.handle, data=payload(1000), dst=hdp_path.dst,
                         port=receiver.port)
    hdp_path.sender.send(sender.handle, data=payload(40, NEXT), dst=hdp_path.dst,
                         port=receiver.port)
    first = receive_tagged(hdp_path, receiver.handle, bufsize=100)
    second = hdp_path.receiver.receive(receiver.handle, count=ENOUGH, timeout=WAIT,
                                       until=NEXT)
    hdp_path.sender.close(sender.handle)
    receiver.close()
    assert first, f"{hdp_path.id}: the 1000-byte datagram never arrived"
    # What the next read returns of ours: the rest of the first datagram (it starts with
    # its 101st byte, not a tag), or the next datagram.
    ours = [d for d in second if d.head.startswith(NEXT) or d.head == _rest(100)[:64]]
    if ours and not ours[0].head.startswith(NEXT):
        answer = "rest-in-next-read"
    elif first[0].length == 100:
        answer = "truncated-flagged" if first[0].truncated else "truncated-silently"
    else:
        answer = f"read {first[0].length} bytes"
    hdp_check.observe(answer, f"first read {first[0].length} bytes, MSG_TRUNC "
                              f"{first[0].truncated}")
