"""IP fragmentation and reassembly: the textbook example, RFC rules, scapy as oracle, fuzzing."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdp.errors import DecodeError, EncodeError
from hdp.wire import ipv4, ipv6, udp
from hdp.wire.fragment import (
    OVERLAP_POLICIES,
    Drop,
    Fragment,
    Overlap,
    Reassembler,
    copied_options,
    decode_fragment,
    fragment_ipv4,
    fragment_ipv6,
    refragment_ipv4,
)
from hdp.wire.ipv4 import FLAG_DF, FLAG_MF, IPv4Header
from hdp.wire.ipv6 import FragmentHeader, IPv6Header

SRC, DST = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.7")
SRC6, DST6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8:0:1::2")
KEY4 = (SRC, DST, 17, 0x3C5A)

PROPERTY = settings(max_examples=60, deadline=timedelta(seconds=2),
                    suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=timedelta(milliseconds=500))


def scapy_inet() -> Any:
    pytest.importorskip("scapy", reason="scapy is the oracle here: pip install scapy (or .[test])")
    from scapy.layers import inet

    return inet


def scapy_inet6() -> Any:
    pytest.importorskip("scapy", reason="scapy is the oracle here: pip install scapy (or .[test])")
    from scapy.layers import inet6

    return inet6


class FakeClock:
    """An injectable clock, so timeouts are tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------
# The chapter's example (TCP/IP Illustrated vol. 1, 10.7.1, in shared/seeds/003_*.txt):
# "a UDP datagram holding 2992 bytes of application data (UDP payload) and an 8-byte UDP
# header gives an IPv4 datagram whose Total Length field is 3020 bytes (with its 20-byte
# IPv4 header). Fragmented into three packets it gains 40 bytes (a 20-byte IPv4 header for
# each newly made fragment), so 3060 bytes are sent in all." So 3020 is the whole IPv4
# datagram, and 3060 is the sum of the three fragments' Total Lengths: 3020 + 2 * 20.

CHAPTER_UDP_PAYLOAD = bytes(i * 7 % 251 for i in range(2992))
CHAPTER_UDP = udp.encode(5000, 6000, CHAPTER_UDP_PAYLOAD, SRC, DST)
CHAPTER_HEADER = IPv4Header(SRC, DST, udp.PROTO_UDP, identification=0x3C5A)
CHAPTER_PACKET = ipv4.encode(CHAPTER_HEADER, CHAPTER_UDP)
CHAPTER_FRAGMENTS = fragment_ipv4(CHAPTER_HEADER, CHAPTER_UDP, 1500)
# (offset in 8-byte units, MF, total length) of each fragment, as the chapter's figure has them
CHAPTER_TABLE = [(0, True, 1500), (185, True, 1500), (370, False, 60)]


def test_the_chapters_datagram_is_3020_bytes() -> None:
    assert len(CHAPTER_UDP) == 3000 == 2992 + 8
    assert len(CHAPTER_PACKET) == 3020
    assert ipv4.decode(CHAPTER_PACKET).header.total_length == 3020


def test_the_chapters_fragments() -> None:
    frags = [decode_fragment(f) for f in CHAPTER_FRAGMENTS]
    assert [(f.header.fragment_offset, f.more, f.header.total_length) for f in frags] == \
        CHAPTER_TABLE
    assert 185 * 8 == 1480 == 1500 - 20  # "1480 is the first fragment's size less its header"
    assert [len(f.payload) for f in frags] == [1480, 1480, 40]
    assert sum(len(f) for f in CHAPTER_FRAGMENTS) == 3060 == 3020 + 2 * 20
    assert {f.header.identification for f in frags} == {0x3C5A}
    assert all(ipv4.verify_header_checksum(f[:20]) for f in CHAPTER_FRAGMENTS)
    assert all(not f.header.df for f in frags)
    # "the original length is the last fragment's offset times 8 plus its total length
    # less its header length"
    last = frags[-1]
    assert last.header.fragment_offset * 8 + 60 - 20 == 3000 == len(CHAPTER_UDP)
    assert b"".join(f.payload for f in frags) == CHAPTER_UDP
    assert udp.verify(SRC, DST, b"".join(f.payload for f in frags))


def test_scapy_fragments_the_chapters_datagram_the_same_way() -> None:
    inet = scapy_inet()
    # scapy's fragsize is the data per fragment, not the MTU: 1500 - 20.
    theirs = [bytes(p) for p in inet.fragment(inet.IP(CHAPTER_PACKET), fragsize=1480)]
    assert [(p[6:8], len(p)) for p in theirs] == [(f[6:8], len(f)) for f in CHAPTER_FRAGMENTS]
    assert theirs == CHAPTER_FRAGMENTS


def test_scapy_reassembles_our_fragments() -> None:
    inet = scapy_inet()
    # scapy's defragment() reassembles when the fragment without MF arrives, so that one
    # has to come last; the middle ones may come in any order.
    for order in ([0, 1, 2], [1, 0, 2]):
        whole = inet.defragment([inet.IP(CHAPTER_FRAGMENTS[i]) for i in order])
        assert [bytes(p) for p in whole] == [CHAPTER_PACKET]


# ---------------------------------------------------------------------------------------
# Invariants every IPv4 fragmentation must keep


def check_fragments(fragments: list[bytes], header: IPv4Header, payload: bytes,
                    mtu: int) -> None:
    """RFC 791's rules, checked over the bytes of the fragments of one datagram."""
    frags = [decode_fragment(f) for f in fragments]
    assert all(len(f) <= mtu for f in fragments)
    assert all(ipv4.verify_header_checksum(f[:d.header.header_length])
               for f, d in zip(fragments, frags, strict=True))
    assert {d.header.identification for d in frags} == {header.identification}
    position = header.fragment_offset * 8
    for d in frags:
        assert d.offset_bytes == position
        position = d.end
    assert position == header.fragment_offset * 8 + len(payload)
    assert all(d.more for d in frags[:-1])
    assert frags[-1].more == header.mf
    assert all(len(d.payload) % 8 == 0 for d in frags[:-1])
    assert b"".join(d.payload for d in frags) == payload
    later = copied_options(header.options)
    for d in frags:
        expected = header.options if d.offset_bytes == 0 else later
        assert d.header.options == expected
        for name in ("src", "dst", "protocol", "ttl", "dscp", "ecn"):
            assert getattr(d.header, name) == getattr(header, name)
        assert d.header.df == header.df


def feed(reassembler: Reassembler, packets: list[bytes]) -> list[bytes | None]:
    return [reassembler.add(p) for p in packets]


# ---------------------------------------------------------------------------------------
# Reassembly in any order, with duplicates


@pytest.mark.parametrize("policy", OVERLAP_POLICIES)
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))),
                         ids=lambda o: "".join(map(str, o)))
def test_reassembly_in_every_order(order: tuple[int, ...], policy: Overlap) -> None:
    r = Reassembler(ipv4_overlap=policy)
    results = feed(r, [CHAPTER_FRAGMENTS[i] for i in order])
    assert results[:2] == [None, None]
    assert results[2] == CHAPTER_PACKET
    assert r.pending == 0
    assert r.dropped == []


@pytest.mark.parametrize("policy", OVERLAP_POLICIES)
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))),
                         ids=lambda o: "".join(map(str, o)))
def test_reassembly_with_duplicates(order: tuple[int, ...], policy: Overlap) -> None:
    a, b, c = (CHAPTER_FRAGMENTS[i] for i in order)
    r = Reassembler(ipv4_overlap=policy)
    results = feed(r, [a, a, b, a, b, c])
    assert results == [None] * 5 + [CHAPTER_PACKET]
    assert r.duplicates == 3
    assert r.dropped == []


def test_a_duplicate_after_completion_starts_a_new_datagram() -> None:
    clock = FakeClock()
    r = Reassembler(clock=clock)
    assert feed(r, CHAPTER_FRAGMENTS)[-1] == CHAPTER_PACKET
    assert r.add(CHAPTER_FRAGMENTS[0]) is None
    assert r.pending == 1
    clock.now += 31
    assert r.expire() == [Drop(KEY4, "reassembly timeout")]


option_sets = st.sampled_from([
    b"",
    bytes([0x94, 4, 0, 0]),  # router alert: copied
    bytes([7, 7, 4]) + bytes(4) + b"\x00",  # record route: not copied
    bytes([0x88, 4, 0xAB, 0xCD]) * 10,  # 40 bytes of stream identifier: copied
])


@PROPERTY
@given(size=st.integers(0, 6000), seed=st.integers(0, 2**32 - 1), mtu=st.integers(68, 1600),
       options=option_sets, policy=st.sampled_from(OVERLAP_POLICIES), data=st.data())
def test_random_datagrams_reassemble_in_any_order(size: int, seed: int, mtu: int,
                                                  options: bytes, policy: Overlap,
                                                  data: st.DataObject) -> None:
    payload = random.Random(seed).randbytes(size)
    header = IPv4Header(SRC, DST, 253, identification=seed & 0xFFFF, options=options)
    fragments = fragment_ipv4(header, payload, mtu)
    check_fragments(fragments, header, payload, mtu)
    original = ipv4.encode(header, payload)
    indices = list(range(len(fragments)))
    sequence = data.draw(st.permutations(indices), label="order")
    for at, which in data.draw(st.lists(st.tuples(st.integers(0, len(indices)),
                                                  st.sampled_from(indices)), max_size=8),
                               label="duplicates"):
        sequence.insert(at, which)
    r = Reassembler(ipv4_overlap=policy)
    seen: set[int] = set()
    for which in sequence:
        seen.add(which)
        result = r.add(fragments[which])
        if len(seen) < len(fragments):
            assert result is None
        else:
            assert result == original
            break
    assert r.pending == 0
    assert r.dropped == []


# ---------------------------------------------------------------------------------------
# Missing fragments and the reassembly timer


@pytest.mark.parametrize("missing", range(3))
def test_a_missing_fragment_never_completes(missing: int) -> None:
    others = [f for i, f in enumerate(CHAPTER_FRAGMENTS) if i != missing]
    r = Reassembler()
    assert feed(r, others + others[::-1]) == [None] * 4
    assert r.pending == 1


def test_expire_drops_after_the_timeout_and_not_before() -> None:
    clock = FakeClock()
    start = clock.now
    r = Reassembler(timeout=30.0, clock=clock)
    assert r.add(CHAPTER_FRAGMENTS[0]) is None
    clock.now = start + 20  # a later fragment does not restart the timer
    assert r.add(CHAPTER_FRAGMENTS[2]) is None
    clock.now = start + 30  # "more than timeout ago": not yet
    assert r.expire() == []
    assert r.pending == 1
    clock.now = start + 30.001
    assert r.expire() == [(KEY4, "reassembly timeout")]
    assert r.pending == 0
    assert r.dropped == [Drop(KEY4, "reassembly timeout")]
    assert r.expire() == []
    # The straggler now starts a datagram of its own, which cannot complete.
    assert r.add(CHAPTER_FRAGMENTS[1]) is None
    assert r.pending == 1


def test_add_expires_stale_datagrams_first() -> None:
    clock = FakeClock()
    r = Reassembler(timeout=5.0, clock=clock)
    feed(r, CHAPTER_FRAGMENTS[:2])
    clock.now += 6
    assert r.add(CHAPTER_FRAGMENTS[2]) is None
    assert r.dropped == [Drop(KEY4, "reassembly timeout")]
    assert r.pending == 1


def test_timeouts_are_per_datagram() -> None:
    clock = FakeClock()
    r = Reassembler(timeout=30.0, clock=clock)
    other = fragment_ipv4(IPv4Header(SRC, DST, 17, identification=1), CHAPTER_UDP, 1500)
    r.add(CHAPTER_FRAGMENTS[0])
    clock.now += 10
    r.add(other[0])
    clock.now += 25
    assert [d.key for d in r.expire()] == [KEY4]
    assert r.pending == 1
    assert r.add(other[1]) is None
    assert r.add(other[2]) == ipv4.encode(IPv4Header(SRC, DST, 17, identification=1),
                                          CHAPTER_UDP)


# ---------------------------------------------------------------------------------------
# Re-fragmentation at a router: offsets stay relative to the original datagram

# id -> (which chapter fragment, next-hop MTU, [(offset units, MF, total length), ...])
REFRAGMENTS: dict[str, tuple[int, int, list[tuple[int, bool, int]]]] = {
    # 576 - 20 = 556 bytes of room, 552 (69 units) per non-last piece; 1480 = 552+552+376.
    "first-via-576": (0, 576, [(0, True, 572), (69, True, 572), (138, True, 396)]),
    # 1280 - 20 = 1260 bytes of room, 1256 (157 units); 1480 = 1256 + 224.
    "first-via-1280": (0, 1280, [(0, True, 1276), (157, True, 244)]),
    "second-via-576": (1, 576, [(185, True, 572), (254, True, 572), (323, True, 396)]),
    "second-via-1280": (1, 1280, [(185, True, 1276), (342, True, 244)]),
    "last-fits-576": (2, 576, [(370, False, 60)]),
    "first-fits-1500": (0, 1500, [(0, True, 1500)]),
}


@pytest.mark.parametrize("which, mtu, expected", REFRAGMENTS.values(), ids=REFRAGMENTS.keys())
def test_refragment_the_chapters_fragments(which: int, mtu: int,
                                           expected: list[tuple[int, bool, int]]) -> None:
    original = CHAPTER_FRAGMENTS[which]
    pieces = refragment_ipv4(original, mtu)
    got = [decode_fragment(p) for p in pieces]
    assert [(g.header.fragment_offset, g.more, g.header.total_length) for g in got] == expected
    source = decode_fragment(original)
    check_fragments(pieces, source.header, source.payload, mtu)
    if len(pieces) == 1:
        assert pieces == [original]  # a packet that fits passes untouched


@pytest.mark.parametrize("mtu", [68, 576, 1006, 1280])
@pytest.mark.parametrize("seed", range(4))
def test_recut_fragments_still_reassemble(mtu: int, seed: int) -> None:
    pieces = [p for f in CHAPTER_FRAGMENTS for p in refragment_ipv4(f, mtu)]
    random.Random(seed).shuffle(pieces)
    results = feed(Reassembler(), pieces)
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert results[-1] == CHAPTER_PACKET


def test_recut_and_original_fragments_mix() -> None:
    pieces = refragment_ipv4(CHAPTER_FRAGMENTS[0], 576)
    results = feed(Reassembler(), [CHAPTER_FRAGMENTS[2], *pieces[::-1], CHAPTER_FRAGMENTS[1]])
    assert results[-1] == CHAPTER_PACKET


def test_scapy_reassembles_recut_fragments() -> None:
    inet = scapy_inet()
    pieces = [p for f in CHAPTER_FRAGMENTS for p in refragment_ipv4(f, 576)]
    assert len(pieces) == 7
    # Out of order, but with the last fragment last (see test_scapy_reassembles_our_fragments).
    whole = inet.defragment([inet.IP(p) for p in [*pieces[-2::-1], pieces[-1]]])
    assert [bytes(p) for p in whole] == [CHAPTER_PACKET]


def test_refragmenting_a_whole_datagram_is_fragmenting_it() -> None:
    assert refragment_ipv4(CHAPTER_PACKET, 1500) == CHAPTER_FRAGMENTS
    assert refragment_ipv4(CHAPTER_PACKET + b"\x00" * 6, 4000) == [CHAPTER_PACKET]


@PROPERTY
@given(size=st.integers(1, 5000), first=st.integers(68, 2000), second=st.integers(68, 2000),
       options=option_sets, seed=st.integers(0, 2**32 - 1))
def test_two_hops_then_reassembly(size: int, first: int, second: int, options: bytes,
                                  seed: int) -> None:
    payload = random.Random(seed).randbytes(size)
    header = IPv4Header(SRC, DST, 17, identification=seed & 0xFFFF, options=options)
    pieces: list[bytes] = []
    for fragment in fragment_ipv4(header, payload, first):
        source = decode_fragment(fragment)
        recut = refragment_ipv4(fragment, second)
        check_fragments(recut, source.header, source.payload, second)
        pieces += recut
    random.Random(seed).shuffle(pieces)
    results = feed(Reassembler(), pieces)
    assert results[-1] == ipv4.encode(header, payload)
    assert results[:-1] == [None] * (len(pieces) - 1)


# ---------------------------------------------------------------------------------------
# Edges of IPv4 fragmentation: tiny fragments, the MTU range, DF, options, sizes

COPIED_40 = bytes([0x88, 4, 0xAB, 0xCD]) * 10  # stream identifier x 10: copied, 40 bytes
RR_40 = bytes([7, 39, 4]) + bytes(36) + b"\x00"  # record route, 9 slots: not copied
RA = bytes([0x94, 4, 0, 0])  # router alert (RFC 2113): copied
RR_7 = bytes([7, 7, 4, 0, 0, 0, 0])  # record route, 1 slot: not copied
SECURITY_11 = bytes([0x82, 11]) + bytes(9)  # basic security: copied
LSRR_7 = bytes([0x83, 7, 4]) + IPv4Address("203.0.113.9").packed  # loose source route: copied


def test_tiny_fragments_of_eight_bytes() -> None:
    # A 60-byte header whose options are all copied leaves 8 data bytes in a 68-byte MTU.
    header = IPv4Header(SRC, DST, 253, identification=99, options=COPIED_40)
    payload = bytes(range(100))
    fragments = fragment_ipv4(header, payload, 68)
    check_fragments(fragments, header, payload, 68)
    assert len(fragments) == 13
    assert [len(f) for f in fragments] == [68] * 12 + [64]
    assert [decode_fragment(f).offset_bytes for f in fragments] == list(range(0, 100, 8))
    results = feed(Reassembler(), fragments[::-1])
    assert results == [None] * 12 + [ipv4.encode(header, payload)]


def test_tiny_first_fragment_when_options_are_not_copied() -> None:
    header = IPv4Header(SRC, DST, 253, options=RR_40)
    fragments = fragment_ipv4(header, bytes(200), 68)
    check_fragments(fragments, header, bytes(200), 68)
    assert [len(decode_fragment(f).payload) for f in fragments] == [8, 48, 48, 48, 48]


def test_scapy_reassembles_tiny_fragments() -> None:
    inet = scapy_inet()
    header = IPv4Header(SRC, DST, 17, identification=5)
    fragments = fragment_ipv4(header, CHAPTER_UDP[:500], 68)
    assert {len(decode_fragment(f).payload) for f in fragments[:-1]} == {48}
    whole = inet.defragment([inet.IP(f) for f in fragments])
    assert [bytes(p) for p in whole] == [ipv4.encode(header, CHAPTER_UDP[:500])]


@pytest.mark.parametrize("mtu", [-1, 0, 20, 60, 67])
def test_mtu_below_68_is_refused(mtu: int) -> None:
    with pytest.raises(EncodeError, match=rf"MTU {mtu} is below 68"):
        fragment_ipv4(CHAPTER_HEADER, CHAPTER_UDP, mtu)
    with pytest.raises(EncodeError, match=rf"MTU {mtu} is below 68"):
        refragment_ipv4(CHAPTER_FRAGMENTS[0], mtu)
    with pytest.raises(EncodeError, match=rf"MTU {mtu} is below 68"):
        fragment_ipv4(CHAPTER_HEADER, b"", mtu)  # even when the datagram would fit


@pytest.mark.parametrize("mtu", [68, 69, 75, 76, 1500, 65535, 65536, 1 << 20])
def test_mtus_from_68_up_are_accepted(mtu: int) -> None:
    fragments = fragment_ipv4(CHAPTER_HEADER, CHAPTER_UDP, mtu)
    check_fragments(fragments, CHAPTER_HEADER, CHAPTER_UDP, mtu)
    assert feed(Reassembler(), fragments)[-1] == CHAPTER_PACKET


def test_df_set_refuses_to_fragment() -> None:
    header = IPv4Header(SRC, DST, 17, flags=FLAG_DF)
    with pytest.raises(EncodeError, match=r"^DF set and the datagram of 3020 bytes exceeds "
                                          r"MTU 1500$"):
        fragment_ipv4(header, CHAPTER_UDP, 1500)
    assert fragment_ipv4(header, CHAPTER_UDP, 3020) == [ipv4.encode(header, CHAPTER_UDP)]
    packet = ipv4.encode(header, CHAPTER_UDP)
    with pytest.raises(EncodeError, match="DF set and the datagram of 3020 bytes exceeds MTU 576"):
        refragment_ipv4(packet, 576)


def test_a_datagram_that_fits_is_one_packet() -> None:
    for header in (CHAPTER_HEADER, IPv4Header(SRC, DST, 17, checksum=0, total_length=3020)):
        assert fragment_ipv4(header, CHAPTER_UDP, 3020) == [ipv4.encode(header, CHAPTER_UDP)]
    assert fragment_ipv4(CHAPTER_HEADER, b"", 68) == [ipv4.encode(CHAPTER_HEADER, b"")]


def test_the_largest_datagram() -> None:
    payload = bytes(65535 - 20)
    fragments = fragment_ipv4(CHAPTER_HEADER, payload, 1500)
    check_fragments(fragments, CHAPTER_HEADER, payload, 1500)
    assert len(fragments) == 45
    assert decode_fragment(fragments[-1]).header.fragment_offset == 44 * 185
    assert feed(Reassembler(), fragments[::-1])[-1] == ipv4.encode(CHAPTER_HEADER, payload)
    with pytest.raises(EncodeError, match="65536 bytes exceeds 65535"):
        fragment_ipv4(CHAPTER_HEADER, payload + b"x", 1500)


# id -> (options, what non-first fragments carry)
OPTION_CASES: dict[str, tuple[bytes, bytes]] = {
    "none": (b"", b""),
    "rr-nop-ra": (RR_7 + b"\x01" + RA, RA),
    "security-padded": (SECURITY_11 + b"\x00", SECURITY_11 + b"\x00"),
    "lsrr-and-rr": (LSRR_7 + RR_7 + b"\x00\x00", LSRR_7 + b"\x00"),
    "only-not-copied": (RR_7 + b"\x00", b""),
    "nops": (b"\x01" * 4, b""),
    "eol-ends-the-list": (RA + b"\x00" + RA[1:], RA),
    "all-copied-40": (COPIED_40, COPIED_40),
    "record-route-40": (RR_40, b""),
}


@pytest.mark.parametrize("options, later", OPTION_CASES.values(), ids=OPTION_CASES.keys())
def test_only_copied_options_go_into_later_fragments(options: bytes, later: bytes) -> None:
    assert copied_options(options) == later
    header = IPv4Header(SRC, DST, 17, identification=7, options=options)
    fragments = fragment_ipv4(header, CHAPTER_UDP, 1500)
    check_fragments(fragments, header, CHAPTER_UDP, 1500)
    frags = [decode_fragment(f) for f in fragments]
    assert frags[0].header.options == options
    assert all(f.header.options == later for f in frags[1:])
    assert len(frags[0].payload) == (1500 - 20 - len(options)) // 8 * 8
    assert all(len(f.payload) == (1500 - 20 - len(later)) // 8 * 8 for f in frags[1:-1])
    # Re-cutting a later fragment copies from what it has; re-cutting the first, from all.
    for piece in refragment_ipv4(fragments[0], 576)[1:] + refragment_ipv4(fragments[1], 576):
        assert decode_fragment(piece).header.options == later
    assert feed(Reassembler(), fragments[::-1])[-1] == ipv4.encode(header, CHAPTER_UDP)


# id -> (options, offset of the fault in the packet)
BAD_OPTIONS: dict[str, tuple[bytes, int]] = {
    "length-past-end": (bytes([0x94, 9, 0, 0]), 21),
    "length-below-2": (bytes([0x94, 1, 0, 0]), 21),
    "no-length-byte": (bytes([1, 1, 1, 0x94]), 23),
}


@pytest.mark.parametrize("options, offset", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_options_that_cannot_be_walked(options: bytes, offset: int) -> None:
    header = IPv4Header(SRC, DST, 17, options=options)
    with pytest.raises(EncodeError, match="cannot fragment: malformed IPv4 options"):
        fragment_ipv4(header, CHAPTER_UDP, 1500)
    assert fragment_ipv4(header, b"fits", 1500) == [ipv4.encode(header, b"fits")]
    with pytest.raises(DecodeError) as caught:
        refragment_ipv4(ipv4.encode(header, CHAPTER_UDP), 1500)
    assert caught.value.offset == offset


def test_refragment_wants_an_ipv4_packet() -> None:
    # IPv6 routers do not fragment: only the source does (fragment_ipv6).
    [v6] = fragment_ipv6(IPv6Header(SRC6, DST6, 17), b"x" * 100, 17, 1280, 1)
    with pytest.raises(DecodeError, match="version is 6, not 4"):
        refragment_ipv4(v6, 1280)


def test_refragment_refuses_data_past_the_datagram_limit() -> None:
    header = IPv4Header(SRC, DST, 17, flags=FLAG_MF, fragment_offset=8000)
    with pytest.raises(DecodeError, match="exceeds 65535"):
        refragment_ipv4(ipv4.encode(header, bytes(2000)), 1500)
    with pytest.raises(EncodeError, match="exceeds 65535"):
        fragment_ipv4(header, bytes(2000), 1500)


def test_fragment_value() -> None:
    frag = decode_fragment(CHAPTER_FRAGMENTS[1])
    assert isinstance(frag, Fragment)
    assert (frag.offset_bytes, frag.more, frag.end, frag.is_fragment) == (1480, True, 2960, True)
    whole = decode_fragment(CHAPTER_PACKET)
    assert (whole.offset_bytes, whole.more, whole.is_fragment) == (0, False, False)
    with pytest.raises(DecodeError):
        decode_fragment(CHAPTER_FRAGMENTS[1][:30])


# ---------------------------------------------------------------------------------------
# IPv4 reassembly decisions: overlaps, ends, sizes, checksums


def frag4(offset: int, data: bytes, more: bool, ident: int = 7, **kwargs: Any) -> bytes:
    """An IPv4 fragment of protocol 253 built field by field."""
    header = IPv4Header(SRC, DST, 253, identification=ident, flags=FLAG_MF if more else 0,
                        fragment_offset=offset // 8, **kwargs)
    return ipv4.encode(header, data)


def whole4(data: bytes, ident: int = 7) -> bytes:
    return ipv4.encode(IPv4Header(SRC, DST, 253, identification=ident), data)


A, B, C, Z = b"A" * 8, b"B" * 8, b"C" * 8, b"Z" * 8
DISCARD = None  # the datagram is discarded

# id -> (fragments in arrival order, {policy: reassembled data or DISCARD})
OVERLAPS: dict[str, tuple[list[bytes], dict[str, bytes | None]]] = {
    "partial-overlap": (
        [frag4(0, A * 2, True), frag4(8, B * 2, False)],
        {"linux": DISCARD, "rfc5722": DISCARD, "first": A * 2 + B, "last": A + B * 2},
    ),
    "contained-in-a-run": (
        [frag4(0, A * 2, True), frag4(8, C, True), frag4(16, B, False)],
        {"linux": A * 2 + B, "rfc5722": DISCARD, "first": A * 2 + B, "last": A + C + B},
    ),
    "same-range-other-bytes": (
        [frag4(0, A * 2, True), frag4(0, Z * 2, True), frag4(16, B, False)],
        {"linux": A * 2 + B, "rfc5722": DISCARD, "first": A * 2 + B, "last": Z * 2 + B},
    ),
    "exact-duplicate": (
        [frag4(0, A * 2, True), frag4(0, A * 2, True), frag4(16, B, False)],
        {"linux": A * 2 + B, "rfc5722": A * 2 + B, "first": A * 2 + B, "last": A * 2 + B},
    ),
    "covers-two-fragments": (
        [frag4(0, A, True), frag4(8, B, True), frag4(0, Z * 2, True), frag4(16, C, False)],
        {"linux": A + B + C, "rfc5722": DISCARD, "first": A + B + C, "last": Z * 2 + C},
    ),
    "later-fragment-overlaps-the-end": (
        [frag4(8, B * 2, False), frag4(0, A * 2, True)],
        {"linux": DISCARD, "rfc5722": DISCARD, "first": A + B * 2, "last": A * 2 + B},
    ),
}


@pytest.mark.parametrize("policy", OVERLAP_POLICIES)
@pytest.mark.parametrize("packets, outcomes", OVERLAPS.values(), ids=OVERLAPS.keys())
def test_ipv4_overlap_policies(packets: list[bytes], outcomes: dict[str, bytes | None],
                               policy: Overlap) -> None:
    r = Reassembler(ipv4_overlap=policy)
    results = feed(r, packets)
    expected = outcomes[policy]
    if expected is DISCARD:
        assert results == [None] * len(packets)
        assert len(r.dropped) == 1
        assert r.dropped[0].key == (SRC, DST, 253, 7)
        assert "overlap" in r.dropped[0].reason
        assert r.dropped[0].reason.endswith("datagram discarded")
        # Fragments after the discard start a new datagram (RFC 5722 as amended by its
        # erratum 3089, and Linux): they do not complete it.
    else:
        assert results[-1] == whole4(expected)
        assert results[:-1] == [None] * (len(packets) - 1)
        assert r.dropped == []


def test_linux_runs_make_the_verdict_depend_on_arrival_order() -> None:
    # Linux keeps "runs" of fragments that arrived in ascending, adjacent order. A fragment
    # inside one run is a duplicate; one across two runs is an overlap, even when every
    # byte it carries is already held.
    head, middle, gap, tail = frag4(0, A, True), frag4(8, B, True), frag4(16, C, True), \
        frag4(24, Z, False)
    spanning = frag4(0, A + B, True)
    in_order = Reassembler()
    assert feed(in_order, [head, middle, tail, spanning]) == [None] * 4  # one run 0..16
    assert in_order.duplicates == 1 and in_order.dropped == []
    assert in_order.add(gap) == whole4(A + B + C + Z)
    out_of_order = Reassembler()
    assert feed(out_of_order, [tail, middle, head, spanning]) == [None] * 4  # runs 8..16, 0..8
    assert [d.reason.split(":")[0] for d in out_of_order.dropped] == ["overlap"]
    assert out_of_order.pending == 0


# id -> (fragments, expected reason fragment); each discards the datagram under every policy
END_FAULTS: dict[str, tuple[list[bytes], str]] = {
    "two-different-last-ends": (
        [frag4(16, C, False), frag4(16, C * 2, False)],
        "last fragment ends at byte 32 but an earlier last fragment ended at byte 24",
    ),
    "data-past-the-last-end": (
        [frag4(8, B, False), frag4(16, C, True)],
        "fragment data reaches byte 24, past the end (byte 16) set by the last fragment",
    ),
    "last-ends-before-received-data": (
        [frag4(16, C, True), frag4(8, B, False)],
        "last fragment ends at byte 16 but data already reaches byte 24",
    ),
    "fragment-without-data": (
        [frag4(0, A, True), frag4(16, b"", True)],
        "fragment at byte 16 carries no data",
    ),
    "last-fragment-without-data": (
        [frag4(0, A, True), frag4(8, b"", False)],
        "fragment at byte 8 carries no data",
    ),
}


@pytest.mark.parametrize("policy", OVERLAP_POLICIES)
@pytest.mark.parametrize("packets, reason", END_FAULTS.values(), ids=END_FAULTS.keys())
def test_inconsistent_ends_discard_the_datagram(packets: list[bytes], reason: str,
                                                policy: Overlap) -> None:
    r = Reassembler(ipv4_overlap=policy)
    assert feed(r, packets) == [None] * len(packets)
    assert [d.reason for d in r.dropped] == [f"{reason}: datagram discarded"]
    assert r.pending == 0


def test_ipv4_data_not_a_multiple_of_8_is_trimmed_as_linux_does() -> None:
    r = Reassembler()
    assert r.add(frag4(0, A + b"extra", True)) is None
    assert r.add(frag4(8, B, False)) == whole4(A + B)


def test_ping_of_death_fragment_is_dropped() -> None:
    r = Reassembler()
    # 65528 + 16 data bytes, plus at least a 20-byte header, passes 65535.
    assert r.add(frag4(65528, bytes(16), False)) is None
    assert r.pending == 0
    [drop] = r.dropped
    assert "fragment data ends at byte 65544" in drop.reason
    assert drop.reason.endswith("fragment dropped")
    # 65512 + 3 bytes is the largest that may end a datagram with a 20-byte header.
    assert r.add(frag4(65512, bytes(3), False)) is None
    assert r.pending == 1


def test_a_datagram_too_long_for_its_first_header_is_discarded() -> None:
    # 65480 data bytes fit behind a 20-byte header but not behind a 60-byte one.
    fragments = fragment_ipv4(IPv4Header(SRC, DST, 253, identification=7), bytes(65480), 9000)
    first = decode_fragment(fragments[0])
    fragments[0] = ipv4.encode(IPv4Header(SRC, DST, 253, identification=7, flags=FLAG_MF,
                                          options=RR_40), first.payload)
    r = Reassembler()
    assert feed(r, fragments) == [None] * len(fragments)
    assert [d.reason for d in r.dropped] == [
        "reassembled datagram of 65540 bytes exceeds 65535: datagram discarded"]
    assert r.pending == 0


def test_reassembly_uses_the_first_fragments_header() -> None:
    r = Reassembler()
    r.add(frag4(8, B, False, ttl=3))
    whole = r.add(frag4(0, A, True, ttl=9, dscp=46, options=RA))
    expected = ipv4.encode(IPv4Header(SRC, DST, 253, identification=7, ttl=9, dscp=46,
                                      options=RA), A + B)
    assert whole == expected
    assert whole is not None and ipv4.verify_header_checksum(whole[:24])


def test_bad_header_checksum_drops_the_packet() -> None:
    bad = bytearray(CHAPTER_FRAGMENTS[0])
    bad[10] ^= 0xFF
    r = Reassembler()
    assert r.add(bytes(bad)) is None
    assert r.pending == 0
    assert "checksum" in r.dropped[0].reason
    lax = Reassembler(verify_checksum=False)
    assert feed(lax, [bytes(bad), *CHAPTER_FRAGMENTS[1:]])[-1] == CHAPTER_PACKET


def test_packets_that_are_not_fragments_come_straight_back() -> None:
    r = Reassembler()
    assert r.add(CHAPTER_PACKET + b"\x00" * 4) == CHAPTER_PACKET  # link padding trimmed
    [v6] = fragment_ipv6(IPv6Header(SRC6, DST6, 17), b"x" * 100, 17, 1280, 1)
    assert r.add(v6 + b"\x00\x00") == v6
    assert r.pending == 0 and r.dropped == []


def test_keys_keep_datagrams_apart() -> None:
    # Same identification, different protocol: two datagrams (RFC 791's key has protocol).
    r = Reassembler()
    a = ipv4.encode(IPv4Header(SRC, DST, 17, identification=1, flags=FLAG_MF), A)
    b = ipv4.encode(IPv4Header(SRC, DST, 6, identification=1, fragment_offset=1), B)
    assert feed(r, [a, b]) == [None, None]
    assert r.pending == 2


@pytest.mark.parametrize("kwargs", [{"ipv4_overlap": "bsd"}, {"ipv6_overlap": "linux-old"},
                                    {"timeout": -1.0}])
def test_reassembler_settings_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Reassembler(**kwargs)


# ---------------------------------------------------------------------------------------
# IPv6: fragmentation at the source, reassembly, RFC 5722

CHAPTER_UDP6 = udp.encode(5000, 6000, CHAPTER_UDP_PAYLOAD, SRC6, DST6)
HEADER6 = IPv6Header(SRC6, DST6, 17)
IDENT6 = 0xABCDEF
[WHOLE6] = fragment_ipv6(HEADER6, CHAPTER_UDP6, 17, 65535, IDENT6)
FRAGMENTS6 = fragment_ipv6(HEADER6, CHAPTER_UDP6, 17, 1280, IDENT6)
KEY6 = (SRC6, DST6, IDENT6)

# Unfragmentable extension headers, by hand: hop-by-hop (PadN), then a routing header.
HOP_BY_HOP = bytes([43, 0, 1, 4, 0, 0, 0, 0])  # next: routing
ROUTING = bytes([59, 2, 0, 1, 0, 0, 0, 0]) + IPv6Address("2001:db8::9").packed  # next: rewritten


def fragment_headers(packets: list[bytes], at: int = 40) -> list[FragmentHeader]:
    return [ipv6.decode_fragment_header(p, at) for p in packets]


def test_ipv6_fragments_for_the_minimum_mtu() -> None:
    assert ipv6.encode(HEADER6, CHAPTER_UDP6) == WHOLE6
    # 1280 - 40 - 8 = 1232 data bytes (154 units) per fragment; 3000 = 1232 + 1232 + 536.
    assert [len(p) for p in FRAGMENTS6] == [1280, 1280, 584]
    headers = fragment_headers(FRAGMENTS6)
    assert [(h.fragment_offset, h.more_fragments) for h in headers] == \
        [(0, True), (154, True), (308, False)]
    assert {h.identification for h in headers} == {IDENT6}
    assert {h.next_header for h in headers} == {17}
    for packet in FRAGMENTS6:
        decoded = ipv6.decode(packet)
        assert decoded.header.next_header == ipv6.FRAGMENT
        assert decoded.header.payload_length == len(packet) - 40
    assert b"".join(p[48:] for p in FRAGMENTS6) == CHAPTER_UDP6


def test_scapy_fragment6_agrees() -> None:
    inet6 = scapy_inet6()
    from scapy.packet import Raw

    ip = inet6.IPv6(src=str(SRC6), dst=str(DST6))
    packet = ip / inet6.IPv6ExtHdrFragment(nh=17, id=IDENT6) / Raw(CHAPTER_UDP6)
    assert [bytes(p) for p in inet6.fragment6(packet, 1280)] == FRAGMENTS6


def test_scapy_defragment6_reassembles_ours() -> None:
    inet6 = scapy_inet6()
    whole = inet6.defragment6([inet6.IPv6(p) for p in FRAGMENTS6[::-1]])
    assert bytes(whole) == WHOLE6


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))),
                         ids=lambda o: "".join(map(str, o)))
def test_ipv6_reassembly_in_every_order(order: tuple[int, ...]) -> None:
    r = Reassembler()
    first, second, third = (FRAGMENTS6[i] for i in order)
    assert feed(r, [first, first, second, third]) == [None, None, None, WHOLE6]
    assert r.duplicates == 1


def test_ipv6_unfragmentable_part_is_repeated() -> None:
    header = IPv6Header(SRC6, DST6, ipv6.HOP_BY_HOP)
    unfragmentable = HOP_BY_HOP + ROUTING
    [whole] = fragment_ipv6(header, CHAPTER_UDP6, 17, 65535, 5, unfragmentable)
    packets = fragment_ipv6(header, CHAPTER_UDP6, 17, 1280, 5, unfragmentable)
    assert whole[40:40 + 32] == HOP_BY_HOP + bytes([17]) + ROUTING[1:]
    assert ipv6.decode(whole).upper_protocol == 17
    room = (1280 - 40 - 32 - 8) // 8 * 8
    assert [len(p) - 80 for p in packets] == [room, room, 3000 - 2 * room]
    assert all(len(p) <= 1280 for p in packets)
    for packet in packets:
        assert packet[6] == ipv6.HOP_BY_HOP
        assert packet[40:72] == HOP_BY_HOP + bytes([ipv6.FRAGMENT]) + ROUTING[1:]
    assert [h.fragment_offset for h in fragment_headers(packets, 72)] == [0, room // 8,
                                                                          2 * room // 8]
    assert feed(Reassembler(), packets[::-1])[-1] == whole


def test_scapy_agrees_on_an_unfragmentable_part() -> None:
    inet6 = scapy_inet6()
    from scapy.packet import Raw

    header = IPv6Header(SRC6, DST6, ipv6.HOP_BY_HOP)
    unfragmentable = HOP_BY_HOP + ROUTING
    [whole] = fragment_ipv6(header, CHAPTER_UDP6, 17, 65535, 5, unfragmentable)
    packets = fragment_ipv6(header, CHAPTER_UDP6, 17, 1280, 5, unfragmentable)
    routing = inet6.IPv6ExtHdrRouting(ROUTING)
    del routing.nh  # let scapy chain it to the fragment header
    ip = inet6.IPv6(src=str(SRC6), dst=str(DST6))
    theirs = ip / inet6.IPv6ExtHdrHopByHop(HOP_BY_HOP) / routing / \
        inet6.IPv6ExtHdrFragment(nh=17, id=5) / Raw(CHAPTER_UDP6)
    assert [bytes(p) for p in inet6.fragment6(theirs, 1280)] == packets
    assert bytes(inet6.defragment6([inet6.IPv6(p) for p in packets])) == whole


def test_ipv6_atomic_fragment() -> None:
    [atomic] = fragment_ipv6(HEADER6, b"small", 253, 1280, IDENT6, atomic=True)
    assert ipv6.decode_fragment_header(atomic, 40) == FragmentHeader(253, 0, False, IDENT6)
    r = Reassembler()
    r.add(FRAGMENTS6[0])  # an unrelated queue, even with the same key, is left alone
    assert r.add(atomic) == ipv6.encode(IPv6Header(SRC6, DST6, 253), b"small")
    assert r.pending == 1


@pytest.mark.parametrize("mtu", [0, 68, 576, 1279])
def test_ipv6_mtu_below_1280_is_refused(mtu: int) -> None:
    with pytest.raises(EncodeError, match=rf"MTU {mtu} is below 1280"):
        fragment_ipv6(HEADER6, CHAPTER_UDP6, 17, mtu, 1)


# id -> (header next_header, unfragmentable, payload size, message)
BAD_V6: dict[str, tuple[int, bytes, int, str]] = {
    "jumbogram": (17, b"", 65536, "needs a jumbogram"),
    "short-header": (ipv6.DESTINATION_OPTIONS, bytes(7), 10, "needs 8 bytes"),
    "length-past-end": (ipv6.DESTINATION_OPTIONS, bytes([17, 1]) + bytes(6), 10, "says 16 bytes"),
    "fragment-header": (ipv6.FRAGMENT, bytes(8), 10, "header 44 at byte 0"),
    "hop-by-hop-second": (ipv6.ROUTING, bytes([0, 0]) + bytes(6) + HOP_BY_HOP, 10,
                          "header 0 at byte 8"),
    "no-room-for-data": (ipv6.DESTINATION_OPTIONS, bytes([17, 153]) + bytes(1230), 1300,
                         "leaves no room for 8 data bytes"),
}


@pytest.mark.parametrize("first, unfragmentable, size, message", BAD_V6.values(),
                         ids=BAD_V6.keys())
def test_ipv6_fragmentation_errors(first: int, unfragmentable: bytes, size: int,
                                   message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        fragment_ipv6(IPv6Header(SRC6, DST6, first), bytes(size), 17, 1280, 1, unfragmentable)


@pytest.mark.parametrize("kwargs", [{"identification": 1 << 32}, {"identification": -1},
                                    {"next_header": 256}])
def test_ipv6_fields_out_of_range(kwargs: dict[str, int]) -> None:
    arguments: dict[str, Any] = {"next_header": 17, "mtu": 1280, "identification": 1}
    arguments.update(kwargs)
    with pytest.raises(EncodeError, match="must fit"):
        fragment_ipv6(HEADER6, b"x", **arguments)


def frag6(offset: int, data: bytes, more: bool, ident: int = 3) -> bytes:
    """An IPv6 fragment built field by field."""
    header = IPv6Header(SRC6, DST6, ipv6.FRAGMENT)
    return ipv6.encode(header, FragmentHeader(253, offset // 8, more, ident).encode() + data)


def whole6(data: bytes) -> bytes:
    return ipv6.encode(IPv6Header(SRC6, DST6, 253), data)


def test_ipv6_overlap_discards_the_datagram_rfc5722() -> None:
    r = Reassembler()
    assert r.add(frag6(0, A * 2, True)) is None
    assert r.add(frag6(8, B, True)) is None  # inside data already held: still an overlap
    assert r.pending == 0
    [drop] = r.dropped
    assert drop.key == (SRC6, DST6, 3)
    assert "(RFC 5722): datagram discarded" in drop.reason
    # What was held is gone: the rest of the datagram alone cannot complete it.
    assert r.add(frag6(16, C, False)) is None
    assert r.pending == 1


def test_ipv6_exact_duplicates_are_not_overlaps() -> None:
    r = Reassembler()
    packets = [frag6(0, A, True), frag6(0, A, True), frag6(8, B, False), frag6(0, A, True)]
    assert feed(r, packets)[2] == whole6(A + B)
    assert r.duplicates == 1 and r.dropped == []


@pytest.mark.parametrize("policy, expected", [("rfc5722", None), ("linux", A * 2 + C),
                                              ("first", A * 2 + C), ("last", A + B + C)])
def test_ipv6_overlap_policy_is_configurable(policy: Overlap, expected: bytes | None) -> None:
    r = Reassembler(ipv6_overlap=policy)
    results = feed(r, [frag6(0, A * 2, True), frag6(8, B, True), frag6(16, C, False)])
    assert results[-1] == (None if expected is None else whole6(expected))


def test_ipv6_fragment_not_a_multiple_of_8_is_dropped() -> None:
    r = Reassembler()
    assert r.add(frag6(0, A + b"odd", True)) is None
    assert r.pending == 0
    assert "not a multiple of 8: fragment dropped" in r.dropped[0].reason
    assert feed(r, [frag6(8, B + b"end", False), frag6(0, A, True)])[-1] == \
        whole6(A + B + b"end")


def test_ipv6_fragment_past_65535_is_dropped() -> None:
    r = Reassembler()
    assert r.add(frag6(65520, bytes(16), False)) is None
    assert r.pending == 0
    assert "exceed 65535 bytes: fragment dropped" in r.dropped[0].reason


def test_ipv6_timeout() -> None:
    clock = FakeClock()
    r = Reassembler(timeout=60.0, clock=clock)
    feed(r, FRAGMENTS6[:2])
    clock.now += 60
    assert r.expire() == []
    clock.now += 1
    assert r.expire() == [Drop(KEY6, "reassembly timeout")]


# ---------------------------------------------------------------------------------------
# Any bytes: the reassembler returns None or bytes, or raises DecodeError, and nothing else


def check_add(r: Reassembler, data: bytes) -> None:
    try:
        result = r.add(data)
    except DecodeError as error:
        assert 0 <= error.offset <= len(data), (error.offset, len(data))
        assert error.reason
        return
    assert result is None or isinstance(result, bytes)
    if result is not None and result[0] >> 4 == 4:
        assert ipv4.decode(result).header.total_length == len(result)


SEEDS = [*CHAPTER_FRAGMENTS, *FRAGMENTS6, frag4(8, B, False), frag6(8, B, False),
         ipv6.encode(IPv6Header(SRC6, DST6, 0), HOP_BY_HOP + ROUTING[:1] + b"\x00" * 23)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        op = draw(st.sampled_from(["flip", "set", "truncate"]))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0, 1, 0x2C, 0x3C, 0x45, 0x60, 0xFF]))
        else:
            del data[at:]
    return bytes(data)


packets = st.one_of(
    st.binary(max_size=120),
    st.binary(max_size=120).map(lambda b: b"\x45" + b),
    st.binary(max_size=120).map(lambda b: b"\x60" + b),
    mutated(),
)


@FUZZ
@given(sequence=st.lists(packets, min_size=1, max_size=6),
       policy=st.sampled_from(OVERLAP_POLICIES), verify=st.booleans())
def test_any_bytes_to_add(sequence: list[bytes], policy: Overlap, verify: bool) -> None:
    r = Reassembler(ipv4_overlap=policy, ipv6_overlap=policy, verify_checksum=verify)
    for data in sequence:
        check_add(r, data)
    assert r.pending >= 0


@FUZZ
@given(data=packets, mtu=st.integers(68, 1600))
def test_any_bytes_to_refragment(data: bytes, mtu: int) -> None:
    try:
        pieces = refragment_ipv4(data, mtu)
    except DecodeError as error:
        assert 0 <= error.offset <= len(data)
        return
    except EncodeError as error:
        assert str(error).startswith("DF set")
        return
    assert pieces and all(len(p) <= mtu for p in pieces)


def test_the_fuzzers_seeds_are_real_fragments() -> None:
    r = Reassembler()
    assert feed(r, SEEDS[:6]) == [None, None, CHAPTER_PACKET, None, None, WHOLE6]
