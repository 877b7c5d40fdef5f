"""The packet-rate probe template and tag reader give the bytes and answers of the
validated codecs (hdp.probe, hdp.wire.hdp), whatever the fields and bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdp.probe import PayloadKind, Probe, encode_probe
from hdp.wire import hdp as hdp_wire
from hdp.wire.fastprobe import ProbeTemplate, read_tag
from hdp.wire.hdp import Carrier, ProbeTag

u32 = st.integers(0, (1 << 32) - 1)
KINDS = {Carrier.HDP: PayloadKind.HDP, Carrier.RAW: PayloadKind.RAW}


@given(carrier=st.sampled_from(sorted(KINDS)), data=st.binary(max_size=300), run=u32,
       case=u32, probe=st.integers(0, 0xFFFF), stamp=st.integers(0, (1 << 64) - 1),
       again=st.tuples(u32, u32))
def test_a_filled_template_is_the_probe_encode_probe_builds(carrier, data, run, case, probe,
                                                            stamp, again):
    template = ProbeTemplate(carrier, data)
    template.fill(*again)  # what an earlier probe left in the buffer does not show
    built = encode_probe(Probe(KINDS[carrier], data, ProbeTag(run, case, probe)),
                         "127.0.0.1", "127.0.0.1", stamp)
    assert bytes(template.fill(run, case, probe, stamp)) == built


def test_a_template_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="UDP carrier"):
        ProbeTemplate(Carrier.UDP, b"")
    with pytest.raises(struct.error):
        ProbeTemplate(Carrier.HDP, b"").fill(1 << 32, 0)


@given(payload=st.binary(max_size=120), offset=st.integers(-2, 40), cut=st.integers(0, 8))
def test_read_tag_agrees_with_the_tag_decoder_on_any_bytes(payload, offset, cut):
    end = max(0, len(payload) - cut)
    found = read_tag(payload, offset, end)
    tagged = hdp_wire.decode_tagged(payload[offset:end]) if offset >= 0 else None
    if tagged is None or tagged.tag is None:
        assert found is None
        return
    tag = tagged.tag
    assert found == (tag.carrier, tag.probe, tag.run_id, tag.case, tagged.intact)


@given(data=st.binary(max_size=64), flip=st.integers(0, 200))
def test_read_tag_reads_a_template_probe_and_sees_a_changed_byte(data, flip):
    body = bytearray(ProbeTemplate(Carrier.HDP, data).fill(7, 9, 3, 11))
    assert read_tag(body, 12, len(body)) == (Carrier.HDP, 3, 7, 9, True)
    at = 12 + flip % (len(body) - 12)
    body[at] ^= 0x01
    found = read_tag(body, 12, len(body))
    assert found is None or found[4] is False  # a bit of magic/version: no tag at all
