"""The whole-probe comparison and trusted latency (hdp.rewrites, hdp.observe), on
events as the agents write them."""

from __future__ import annotations

import zlib

from hdp import rewrites
from hdp.case import Case
from hdp.observe import delivery

RUN, INDEX = 0x1A2B3C4D, 7
SRC, DST = "198.18.0.2", "198.18.1.2"


def _sent(payload: str, stamp: int | None = 1_700_000_000_000_000_000) -> tuple[dict, bytes]:
    body = rewrites.rebuilder(payload, 64, RUN, INDEX, stamp)(SRC, DST)
    return ({"event": "sent", "ok": True, "src": SRC, "time_ns": stamp or 1_700_000_000_000,
             "digest": zlib.crc32(body), "stamp_ns": stamp}, body)


def _arrival(body: bytes, carrier: str, *, intact: bool = True, src: str = SRC,
             received: int = 1_700_000_000_000_050_000) -> dict:
    head = {"hdp": 12, "udp": 8, "raw": 0}[carrier]
    event = {"event": "arrival", "src": src, "dst": DST, "length": len(body),
             "intact": intact, "carrier": carrier, "kernel_time_ns": received,
             "digest": zlib.crc32(body), "head": body[:head].hex()}
    if not intact:
        event["bytes"] = body.hex()
    return event


def test_equal_digests_are_unchanged():
    sent, body = _sent("hdp")
    result = rewrites.compare(sent, _arrival(body, "hdp"),
                              rewrites.rebuilder("hdp", 64, RUN, INDEX, sent["stamp_ns"]), DST)
    assert result == rewrites.UNCHANGED


def test_a_checksum_written_at_offset_2_is_named():
    sent, body = _sent("hdp")
    changed = body[:2] + b"\x12\x34" + body[4:]
    result = rewrites.compare(sent, _arrival(changed, "hdp", intact=False),
                              rewrites.rebuilder("hdp", 64, RUN, INDEX, sent["stamp_ns"]), DST)
    assert (result.changed, result.ranges, result.stamp_changed) == (True, "2-3", False)


def test_a_rewritten_timestamp_is_named_though_the_listener_saw_the_tag_intact():
    """Bytes 4-5 (Linux's default checksum offset for protocol 135) fall in HDP's
    timestamp, which no check of the listener covers: the head it reports shows it."""
    sent, body = _sent("hdp")
    changed = body[:4] + b"\xff\xff" + body[6:]
    result = rewrites.compare(sent, _arrival(changed, "hdp"),
                              rewrites.rebuilder("hdp", 64, RUN, INDEX, sent["stamp_ns"]), DST)
    assert (result.changed, result.ranges, result.stamp_changed) == (True, "4-5", True)


def test_a_nat_recomputing_the_udp_checksum_is_no_payload_change():
    sent, _ = _sent("udp", stamp=None)
    translated = rewrites.rebuilder("udp", 64, RUN, INDEX, None)("203.0.113.1", DST)
    result = rewrites.compare(sent, _arrival(translated, "udp", src="203.0.113.1"),
                              rewrites.rebuilder("udp", 64, RUN, INDEX, None), DST)
    assert result == rewrites.UNCHANGED


def test_a_nat_leaving_the_udp_checksum_stale_leaves_the_bytes_as_sent():
    sent, body = _sent("udp", stamp=None)
    result = rewrites.compare(sent, _arrival(body, "udp", src="203.0.113.1", intact=False),
                              rewrites.rebuilder("udp", 64, RUN, INDEX, None), DST)
    # The bytes are the sender's: what is wrong is the source (change `src`), and the
    # listener's failed checksum marks the delivery not intact on its own.
    assert result == rewrites.UNCHANGED


def test_length_changes_and_many_ranges_are_named_compactly():
    assert rewrites.changed_spans(b"abcd", b"abXdEF") == [(2, 2), (4, 5)]
    spans = [(i, i) for i in range(0, 40, 2)]
    assert rewrites.spans_text(spans).endswith(",+12 more")


def test_latency_comes_from_the_senders_record_never_from_a_rewritten_stamp():
    case = Case(DST, 4, 253)
    sent, body = _sent("hdp")
    garbage = body[:4] + b"\x00" * 8 + body[12:]  # a stamp of 1970: -1.7e15 µs if trusted
    event = _arrival(garbage, "hdp")
    event["hdp_time_ns"] = 0
    made, note = delivery(event, sent, case, RUN, INDEX, DST)
    assert made.latency_us == 50.0 and note is None
    spans = rewrites.changed_spans(body, garbage)
    assert not made.intact and made.changed_bytes == rewrites.spans_text(spans)
    assert spans and all(4 <= a <= b <= 11 for a, b in spans)


def test_an_untrustworthy_latency_is_left_out_and_noted():
    case = Case(DST, 4, 253)
    sent, body = _sent("hdp")
    event = _arrival(body, "hdp", received=sent["time_ns"] - 5_000_000)
    made, note = delivery(event, sent, case, RUN, INDEX, DST)
    assert made.latency_us is None and note is not None and "left out" in note
