"""The UDP and IP fragmentation chapter's checkable statements, with its expectations.

Each statement names the section it comes from (shared/seeds/003, "UDP and IP
fragmentation", sections 10.2-10.11), says the claim in one line, and gives the answer
the chapter expects. A conformance test observes one answer on a real stack; where a
stack answers otherwise, a profile (conformance/profiles/udp/) says so with its reason,
never the test. A statement whose expectation depends on the path (an MTU, the offsets
a router cuts at) has `expect=None`: the test computes it from the chapter's rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Statement:
    name: str
    section: str
    claim: str
    expect: tuple[str, ...] | None  # acceptable answers; None: computed from the path
    answers: tuple[str, ...] | None  # every answer a test can report; None: free text
    by_family: tuple[tuple[int, tuple[str, ...]], ...] = ()  # where IPv4 and IPv6 differ

    def expected(self, family: int | None = None) -> tuple[str, ...] | None:
        for fam, answers in self.by_family:
            if fam == family:
                return answers
        return self.expect


_DELIVERY = ("delivered", "dropped")
_BIND = ("bound", "EADDRINUSE", "EACCES", "EINVAL")

STATEMENTS: tuple[Statement, ...] = (
    # 10.2 / 10.3 / 10.5: the header, the checksum and its pseudo-header
    Statement("udp-checksum-on-wire", "10.3",
              "the sender's checksum covers pseudo-header, header and data; an odd length "
              "is padded with one zero byte for the sum only",
              ("valid",), ("valid", "invalid", "offloaded")),
    Statement("udp-checksum-zero-sent-as-ffff", "10.3",
              "a checksum that computes to 0x0000 is sent as 0xFFFF",
              ("0xffff",), ("0xffff", "0x0000", "offloaded")),
    Statement("udp-checksum-zero", "10.3, 10.5",
              "checksum 0 means 'none' on IPv4 (delivered); on IPv6 it is mandatory (dropped)",
              None, _DELIVERY, by_family=((4, ("delivered",)), (6, ("dropped",)))),
    Statement("udp-checksum-error-dropped", "10.3",
              "a datagram whose checksum fails is discarded silently, no error message",
              ("dropped",), (*_DELIVERY, "dropped-with-icmp")),
    Statement("udp-checksum-error-counted", "10.3",
              "a checksum error, though silent, updates a statistics counter",
              ("counted",), ("counted", "not-counted", "no-counter")),
    Statement("udp-length-longer-than-ip", "10.2",
              "the UDP length must agree with the IP layer's length: longer is dropped",
              ("dropped",), _DELIVERY),
    Statement("udp-length-shorter-than-ip", "10.2",
              "the UDP length must agree with the IP layer's length: shorter is dropped",
              ("dropped",), (*_DELIVERY, "delivered-trimmed")),
    # 10.6 UDP-Lite
    Statement("udplite-coverage-zero-covers-all", "10.6",
              "coverage 0 means the whole datagram: corruption anywhere is dropped",
              ("dropped",), _DELIVERY),
    Statement("udplite-coverage-below-8-invalid", "10.6",
              "a coverage of 1-7 is invalid (the header itself must be covered): dropped",
              ("dropped",), _DELIVERY),
    Statement("udplite-uncovered-corruption-delivered", "10.6",
              "corruption outside the covered bytes is delivered", ("delivered",), _DELIVERY),
    Statement("udplite-covered-corruption-dropped", "10.6",
              "corruption inside the covered bytes is dropped", ("dropped",), _DELIVERY),
    Statement("udplite-send-coverage", "10.6",
              "UDPLITE_SEND_CSCOV sets the coverage the sender puts on the wire",
              ("applied",), ("applied", "ignored", "refused")),
    Statement("udplite-receive-coverage", "10.6",
              "UDPLITE_RECV_CSCOV makes the receiver drop datagrams covering less",
              ("enforced",), ("enforced", "ignored", "refused")),
    # 10.7 fragmentation and reassembly
    Statement("fragment-chapter-example", "10.7.1",
              "3020 bytes of UDP/IPv4 over a 1500-byte MTU leave as 3 fragments at offsets "
              "0, 185, 370 with MF on all but the last, 3060 bytes in all",
              ("offsets 0+ 185+ 370; 3060 bytes",), None),
    Statement("fragment-send-order", "10.9",
              "Linux sends the last fragment of a datagram first",
              ("last-first",), ("last-first", "in-order", "other")),
    Statement("fragment-router-recut", "10.7",
              "an IPv4 router cuts a fragment again for a narrower link; offsets stay "
              "relative to the original datagram", None, None),
    Statement("ipv6-source-only-fragmentation", "10.7",
              "IPv6 routers never fragment: a packet too big for the next link comes back "
              "as Packet Too Big", ("too-big",), ("too-big", "fragmented", "lost")),
    Statement("reassembly-out-of-order", "10.7.1",
              "offsets are relative to the original datagram, so fragments arriving in any "
              "order are reassembled", ("delivered",), _DELIVERY),
    Statement("reassembly-missing-fragment", "10.7.2",
              "a datagram missing a fragment is never delivered", ("dropped",), _DELIVERY),
    Statement("reassembly-timeout", "10.7.2",
              "the reassembly timer is typically 30 s or 60 s", ("30", "60"), None),
    Statement("reassembly-timer-not-reset", "10.7.2",
              "the timer starts with the first fragment and later fragments do not reset it",
              ("dropped",), _DELIVERY),
    # 10.8 path MTU discovery
    Statement("pmtud-too-big-names-mtu", "10.8",
              "a datagram too big for a link with DF set draws ICMP 'too big' with the "
              "next-hop MTU", None, None),
    Statement("pmtud-socket-mtu", "10.8",
              "the IP layer caches the path MTU per destination, and a socket can ask for it",
              None, None),
    Statement("pmtud-next-send-refused", "10.8",
              "with the path MTU learned, the next oversized DF send fails at once",
              ("EMSGSIZE",), None),
    # 10.10 datagram size and truncation
    Statement("udp-largest-datagram", "10.10",
              "the largest UDP payload is 65507 bytes over IPv4 and 65527 over IPv6",
              ("delivered",), (*_DELIVERY, "send-refused")),
    Statement("udp-largest-plus-one", "10.10",
              "one byte more does not fit the IP length field: refused at send",
              ("EMSGSIZE",), None),
    Statement("udp-truncation", "10.10.2",
              "a read smaller than the datagram truncates it, discards the excess and says so",
              ("truncated-flagged",),
              ("truncated-flagged", "truncated-silently", "rest-in-next-read")),
    # 10.11 servers: local and foreign address bindings
    Statement("bind-specific-beats-wildcard", "10.11.3",
              "an endpoint bound to the destination address wins over the wildcard",
              ("specific",), ("specific", "wildcard", "both", "none")),
    Statement("bind-wildcard-gets-the-rest", "10.11.3",
              "the wildcard endpoint receives what no specific endpoint matches",
              ("wildcard",), ("specific", "wildcard", "both", "none")),
    Statement("bind-same-address-twice", "10.11.5",
              "a second endpoint on the same address and port is refused", ("EADDRINUSE",),
              _BIND),
    Statement("bind-shared-port-needs-reuseaddr", "10.11.3",
              "several endpoints on one port with different local addresses need "
              "SO_REUSEADDR", ("EADDRINUSE",), _BIND),
    Statement("bind-reuseaddr-shares-port", "10.11.3",
              "with SO_REUSEADDR a wildcard and specific endpoints share a port",
              ("bound",), _BIND),
    Statement("bind-v6-wildcard-receives-ipv4", "10.11.6",
              "on Linux a wildcard IPv6 endpoint also receives IPv4", ("received",),
              ("received", "not-received", "EADDRINUSE")),
    Statement("bind-v6only-excludes-ipv4", "10.11.6",
              "IPV6_V6ONLY keeps a wildcard IPv6 endpoint to IPv6", ("not-received",),
              ("received", "not-received", "refused")),
    Statement("bind-connected-ignores-others", "10.11.4",
              "an endpoint restricted to one foreign address and port ignores other sources",
              ("ignored",), ("ignored", "received")),
)

BY_NAME = {statement.name: statement for statement in STATEMENTS}
