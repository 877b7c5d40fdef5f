"""`hdp_sender` and `hdp_listener`: send and listen yourself, on any host the session can
reach (this host, a lab host, `netns://NAME`, `ssh://HOST`), through its agent.

What arrives is an `Arrival` and what was sent a `Sent`, frozen dataclasses; `wait()`
raises `ProbeTimeout` naming what it awaited. Every probe carries the session's run id in
its tag and a case number of its own, so a listener takes only this session's probes,
whatever else the host sees.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError, AgentSpec

ACK_TIMEOUT = 10.0
PAYLOADS = ("hdp", "udp", "raw")


class ProbeTimeout(AssertionError):
    """Nothing of what a listener awaited arrived in time; the message names it."""


@dataclass(frozen=True)
class Host:
    """A host a test sends from or listens on: its agent, and where probes reach it."""

    name: str
    spec: AgentSpec
    addresses: Mapping[int, str] = field(default_factory=dict)  # family -> address


@dataclass(frozen=True)
class Sent:
    """One probe as its sender's kernel took it, or why it would not."""

    case: int  # the probe's case number: what `Listener.wait(sent)` waits for
    run: int
    family: int
    protocol: int
    dst: str
    ok: bool
    errno: str | None  # the OS's refusal, e.g. EINVAL
    stage: str | None  # where it failed: socket or send
    bytes: int | None  # what send() took: the bytes after the IP header
    src: str | None  # the source address the kernel chose
    time_ns: int | None  # when it was sent

    @classmethod
    def from_event(cls, event: Mapping[str, object], family: int, protocol: int,
                   dst: str) -> Sent:
        return cls(_int(event.get("case")) or 0, _int(event.get("run")) or 0, family,
                   protocol, dst, bool(event.get("ok")), _str(event.get("errno")),
                   _str(event.get("stage")), _int(event.get("bytes")), _str(event.get("src")),
                   _int(event.get("time_ns")))


@dataclass(frozen=True)
class Arrival:
    """One probe as a listener received it: its IP header fields and its tag."""

    family: int
    src: str
    dst: str | None
    protocol: int | None  # the protocol number it arrived with
    ttl: int | None  # TTL / hop limit as received
    dscp: int | None
    ecn: int | None
    length: int  # bytes after the IP header
    payload: str | None  # how it was read: hdp, udp or raw (None: undecodable)
    kernel_time_ns: int | None  # the kernel's receive time stamp
    latency_us: float | None  # the HDP send stamp to the kernel's receive stamp
    run: int | None  # the tag: the run and case it belongs to (None: untagged)
    case: int | None
    intact: bool  # the tag's CRC (or the UDP checksum) holds: nothing was changed
    fragment_offset: int | None
    truncated: bool

    @property
    def tagged(self) -> bool:
        return self.run is not None

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> Arrival:
        received, stamp = _int(event.get("kernel_time_ns")), _int(event.get("hdp_time_ns"))
        return cls(_int(event.get("family")) or 0, str(event.get("src")),
                   _str(event.get("dst")), _int(event.get("wire_protocol")),
                   _int(event.get("ttl")), _int(event.get("dscp")), _int(event.get("ecn")),
                   _int(event.get("length")) or 0, _str(event.get("carrier")), received,
                   (received - stamp) / 1000 if received and stamp else None,
                   _int(event.get("run")), _int(event.get("case")),
                   bool(event.get("intact")), _int(event.get("fragment_offset")),
                   bool(event.get("truncated")))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _Agent:
    """One host's agent for hand-written probes; events kept until asked for."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.client = AgentClient.start(host.spec)
        self.backlog: list[dict[str, object]] = []

    def next_event(self, match: Callable[[Mapping[str, object]], bool],
                   timeout: float) -> dict[str, object] | None:
        for index, event in enumerate(self.backlog):
            if match(event):
                return self.backlog.pop(index)
        aside: list[dict[str, object]] = []
        found = self.client.next_event(match, timeout, aside)
        self.backlog += aside
        del self.backlog[:-10_000]  # bounded: a flood of others' events cannot pile up
        return found


class Hands:
    """The agents of a session's hand-written probes, one per host, and its run id."""

    def __init__(self, find: Callable[[str | None, str], Host]) -> None:
        self.find = find  # (host name or None, "sender" | "listener") -> Host
        self.run_id = random.getrandbits(32)
        self.cases = itertools.count(1)
        self.agents: dict[str, _Agent] = {}

    def agent(self, host: str | None, role: str) -> _Agent:
        found = self.find(host, role)
        key = str(found.spec)
        if key not in self.agents:
            self.agents[key] = _Agent(found)
        return self.agents[key]

    def listener(self, protocols: int | Iterable[int], family: int = 4, *,
                 host: str | None = None) -> Listener:
        """Raw listeners for `protocols` of `family` on `host` (see Hands.find)."""
        wanted = [protocols] if isinstance(protocols, int) else list(protocols)
        if family not in (4, 6) or not wanted or not all(
                isinstance(p, int) and 0 <= p <= 255 for p in wanted):
            raise ValueError(f"listener({protocols!r}, family={family!r}): give protocol "
                             "numbers 0..255 and family 4 or 6")
        agent = self.agent(host, "listener")
        ident = agent.client.request(messages.Listen(
            family=messages.family(family), protocols=tuple(wanted), runs=(self.run_id,)))
        ack = agent.next_event(lambda e: e.get("id") == ident, ACK_TIMEOUT)
        if ack is None:
            raise AgentError(f"agent {agent.client.spec} did not open listeners"
                             f"{agent.client.stderr_note()}")
        opened = ack.get("opened")
        refused = ack.get("refused")
        return Listener(self, agent, family,
                        tuple(p for p in opened if isinstance(p, int))
                        if isinstance(opened, list) else (),
                        {str(k): str(v) for k, v in refused.items()}
                        if isinstance(refused, dict) else {})

    def send(self, dst: str, protocol: int, *, family: int | None = None,
             payload: str = "hdp", data: bytes | None = None, size: int = 64,
             dscp: int = 0, ecn: int = 0, df: bool | None = None, ttl: int | None = None,
             case: int | None = None, host: str | None = None) -> Sent:
        """Send one tagged probe from `host`; the kernel's answer to the send."""
        fam = family if family is not None else (6 if ":" in dst else 4)
        if payload not in PAYLOADS or not 0 <= dscp <= 63 or not 0 <= ecn <= 3 or \
                (ttl is not None and not 1 <= ttl <= 255) or not 0 <= size <= 65000 or \
                (data is not None and len(data) > 65000) or fam not in (4, 6):
            raise ValueError("send(): payload hdp/udp/raw, dscp 0..63, ecn 0..3, ttl 1..255, "
                             "size or data up to 65000 bytes, family 4 or 6")
        number = next(self.cases) if case is None else case
        agent = self.agent(host, "sender")
        probe = messages.ProbeSpec(
            case=number, family=messages.family(fam), protocol=protocol, dst=dst,
            payload=messages.payload(payload), size=size if data is None else len(data),
            tos=dscp << 2 | ecn, df=df, ttl=ttl, data=None if data is None else data.hex())
        ident = agent.client.request(messages.Send(run=self.run_id, probes=(probe,)))
        sent = agent.next_event(lambda e: e.get("event") == "sent" and e.get("case") == number
                                and e.get("run") == self.run_id, ACK_TIMEOUT)
        agent.next_event(lambda e: e.get("id") == ident, ACK_TIMEOUT)
        if sent is None:
            raise AgentError(f"agent {agent.client.spec} did not answer the send"
                             f"{agent.client.stderr_note()}")
        return Sent.from_event(sent, fam, protocol, dst)

    def close(self) -> None:
        for agent in self.agents.values():
            agent.client.close()
        self.agents.clear()


@dataclass
class Listener:
    """Raw listeners on one host; `wait()` gives this session's arrivals."""

    hands: Hands
    agent: _Agent
    family: int
    opened: tuple[int, ...]
    refused: dict[str, str]  # protocol -> errno name

    def __repr__(self) -> str:
        return (f"<Listener {self.agent.host.name} IPv{self.family} "
                f"protocols {list(self.opened)}>")

    @property
    def address(self) -> str:
        """Where probes reach this listener's host from the session's sender."""
        address = self.agent.host.addresses.get(self.family)
        if address is None:
            raise ValueError(f"{self.agent.host.name} has no IPv{self.family} address the "
                             "session knows: send to an address of your own")
        return address

    def poll(self, sent: Sent | int | None = None, *, case: int | None = None,
             timeout: float = 2.0) -> Arrival | None:
        """The next arrival (of `sent`, or of case number `case`), or None at the timeout."""
        if sent is None:
            sent = case
        case = sent.case if isinstance(sent, Sent) else sent
        family, run = self.family, self.hands.run_id

        def match(event: Mapping[str, object]) -> bool:
            return (event.get("event") == "arrival" and event.get("family") == family
                    and event.get("run") == run and (case is None or event.get("case") == case))

        event = self.agent.next_event(match, timeout)
        return None if event is None else Arrival.from_event(event)

    def wait(self, sent: Sent | int | None = None, *, case: int | None = None,
             timeout: float = 2.0) -> Arrival:
        """The next arrival (of `sent`, or of case number `case`); ProbeTimeout when none
        comes within `timeout` seconds."""
        __tracebackhide__ = True
        if sent is None:
            sent = case
        arrival = self.poll(sent, timeout=timeout)
        if arrival is None:
            what = "any probe of this session" if sent is None else \
                f"probe case {sent.case if isinstance(sent, Sent) else sent}"
            sent_note = ""
            if isinstance(sent, Sent):
                sent_note = (f" (sent protocol {sent.protocol} to {sent.dst}: "
                             + ("ok" if sent.ok else f"refused, {sent.errno}") + ")")
            refused = f"; refused: {self.refused}" if self.refused else ""
            raise ProbeTimeout(
                f"no arrival of {what} at {self.agent.host.name} within {timeout:g} s"
                f"{sent_note}; listening on IPv{self.family} protocols "
                f"{list(self.opened)}{refused}")
        return arrival

