"""One end of a path as the chapter tests use it: typed calls on a host's agent.

Each method is one request of hdp.agent.socket_ops and waits for its answer; events of
other requests (arrivals of a sweep sharing the agent) are set aside, not lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError
from hdp.flow import Flow


class Unavailable(AgentError):
    """The endpoint's OS lacks what a request needs (a packet capture or a caller-built
    IPv6 header on macOS, say): the test cannot run there, which is no failure of it."""


class AgentRefusal(AgentError):
    """The agent will not do this for its caller: it needs a root caller (README
    "Security model"), while the agent was started through sudo by another user."""


@dataclass(frozen=True)
class Opened:
    """A UDP socket on the endpoint, or why the OS refused it (`stage`: socket/bind/...)."""

    ok: bool
    handle: int | None
    address: str | None
    port: int | None
    errno: str | None
    stage: str | None


@dataclass(frozen=True)
class Datagram:
    handle: int
    length: int
    truncated: bool
    src: str
    port: int
    digest: str
    head: bytes


@dataclass
class CaptureResult:
    packets: list[tuple[int, bytes]] = field(default_factory=list)  # (time_ns, IP packet)
    directions: list[str] = field(default_factory=list)  # host, outgoing, ... per packet
    dropped: int = 0  # packets of the flow beyond the capture's bound
    unattributed: int = 0  # packets too broken to tell whether they were the flow's

    def pcap(self) -> bytes:
        """The packets as a pcap file (LINKTYPE_RAW) that Wireshark and tshark open."""
        from hdp.pcap import PcapRecord, encode_pcap

        return encode_pcap([PcapRecord(t, data, len(data)) for t, data in self.packets])


class Endpoint:
    """A host's agent, driven one request at a time."""

    def __init__(self, agent: AgentClient, name: str) -> None:
        self.agent = agent
        self.name = name  # e.g. "routed/server" or "127.0.0.1"
        self.aside: list[dict[str, Any]] = []

    def call(self, request: messages.Request, *,
             answer_within: float = 15.0) -> dict[str, Any]:
        """Send one request and return its answer; an error answer is an AgentError."""
        op = request.OP
        ident = self.agent.request(request)
        event = self.agent.next_event(lambda e: e.get("id") == ident, answer_within,
                                      self.aside)
        del self.aside[:-1000]  # bounded: only the latest matter to anyone
        if event is not None:
            if event.get("event") == "error":
                kind = AgentRefusal if event.get("needs") == "root" else AgentError
                raise kind(f"agent {self.agent.spec}: {event.get('message')}")
            return event
        raise AgentError(f"agent {self.agent.spec} did not answer {op!r} within {answer_within:g} s"
                         f"{self.agent.stderr_note()}")

    # -- UDP sockets -------------------------------------------------------------------

    def open_udp(self, family: int, *, protocol: int = 17, bind: str | None = None,
                 port: int = 0, **options: Any) -> Opened:
        """A UDP (17) or UDP-Lite (136) socket; options: reuseaddr, v6only, connect=(host,
        port), rcvbuf, sndbuf, pmtudisc (do/dont/want), send_cscov, recv_cscov."""
        connect = options.pop("connect", None)
        answer = self.call(messages.UdpOpen(
            family=family, protocol=protocol, bind=bind, port=port,  # type: ignore[arg-type]
            connect=None if connect is None else messages.Peer(*connect),
            **{k: v for k, v in options.items() if v is not None}))
        return Opened(bool(answer["ok"]), answer.get("handle"), answer.get("address"),
                      answer.get("port"), answer.get("errno"), answer.get("stage"))

    def send(self, handle: int, size: int = 0, *, dst: str | None = None,
             port: int | None = None, data: bytes | None = None) -> dict[str, Any]:
        return self.call(messages.UdpSend(handle=handle, size=size, dst=dst,
                                          port=None if dst is None else port,
                                          data=None if data is None else data.hex()))

    def receive(self, handles: int | list[int], *, count: int = 1, timeout: float = 1.0,
                bufsize: int | None = None, until: bytes | None = None) -> list[Datagram]:
        """Up to `count` datagrams within `timeout` (bounded by the agent at 10 s), ending
        early with one that starts with `until`."""
        request = messages.UdpRecv(
            handles=(handles,) if isinstance(handles, int) else tuple(handles), count=count,
            timeout=timeout, bufsize=messages.MAX_DATAGRAM if bufsize is None else bufsize,
            until=None if until is None else until.hex())
        answer = self.call(request, answer_within=timeout + 15)
        return [Datagram(d["handle"], d["length"], d["truncated"], d["src"], d["port"],
                         d["digest"], bytes.fromhex(d["head"]))
                for d in answer["datagrams"] if "error" not in d]

    def path_mtu(self, handle: int) -> int | None:
        """A connected socket's path MTU; Unavailable where the OS cannot tell it."""
        answer = self.call(messages.UdpInfo(handle=handle))
        if answer.get("mtu") is None and answer.get("unavailable"):
            raise Unavailable(f"agent {self.agent.spec}: {answer['unavailable']}")
        return answer.get("mtu")

    def close(self, *handles: int | None) -> None:
        wanted = [h for h in handles if h is not None]
        if wanted:
            self.call(messages.UdpClose(handles=tuple(wanted)))

    # -- packets, counters, settings -------------------------------------------------------

    def send_packets(self, family: int, dst: str, packets: list[bytes]) -> list[dict[str, Any]]:
        """Send whole IP packets exactly as built (header included), in order."""
        answer = self.call(messages.RawSend(family=family, dst=dst,  # type: ignore[arg-type]
                                            packets=tuple(p.hex() for p in packets)))
        results = list(answer["results"])
        if results and all(r.get("errno") == "ENOPROTOOPT" for r in results):
            # The raw socket itself was refused: this OS cannot send whole packets.
            raise Unavailable(f"agent {self.agent.spec} cannot send caller-built IPv{family} "
                              "packets (ENOPROTOOPT: no IPV6_HDRINCL on macOS)")
        return results

    @contextmanager
    def capture(self, flow: Flow | None = None, *, protocol: int | None = None,
                hosts: tuple[str, ...] = (), interface: str | None = None,
                incoming_only: bool = True, wait: float = 0.0,
                count: int | None = None) -> Iterator[CaptureResult]:
        """Capture the packets of `flow` (hdp.flow) while the block runs; the result fills
        in at its end, after waiting up to `wait` seconds for `count` packets in all.

        Give the flow of the sockets the test opened: without one, every packet of
        `protocol` to or from `hosts` is kept, whoever sent it.
        """
        answer = self.call(messages.CaptureStart(flow=flow, interface=interface,
                                                 protocol=protocol, hosts=tuple(hosts),
                                                 incoming_only=incoming_only))
        if not answer.get("ok"):
            kind = Unavailable if answer.get("errno") == "EAFNOSUPPORT" else AgentError
            reason = answer.get("reason") or "captures need Linux AF_PACKET and CAP_NET_RAW"
            raise kind(f"agent {self.agent.spec} cannot capture ({answer.get('errno')}): "
                       f"{reason}")
        result = CaptureResult()
        try:
            yield result
        finally:
            stopped = self.call(messages.CaptureStop(handle=answer["handle"], wait=wait,
                                                     count=count), answer_within=wait + 15)
            result.packets = [(p["time_ns"], bytes.fromhex(p["data"]))
                              for p in stopped["packets"]]
            result.directions = [str(p.get("direction")) for p in stopped["packets"]]
            result.dropped = int(stopped.get("dropped", 0))
            result.unattributed = int(stopped.get("unattributed", 0))

    def counters(self) -> dict[str, int]:
        return dict(self.call(messages.Counters())["counters"])

    def sysctl(self, name: str, value: str | int | None = None) -> dict[str, Any]:
        return self.call(messages.Sysctl(name=name,
                                         value=None if value is None else str(value)))

    def source_for(self, dst: str, family: int) -> str:
        answer = self.call(messages.Source(dst=dst, family=family))  # type: ignore[arg-type]
        if answer.get("address") is None:
            raise AgentError(f"agent {self.agent.spec}: no route to {dst} "
                             f"({answer.get('errno')})")
        return str(answer["address"])
