"""A flood: many probes sent unpaced and counted, every one accounted for (hdp.agent.flood
does the sending and the counting; this module asks, and adds up).

    sender agent                                     listener agent
    flood-open send  --- COUNT probes, unpaced --->  flood-open listen: a bit a probe
    flood-send ...       (chunks of CHUNK_SECONDS)   flood-count: the counts, the gaps

sent = delivered + lost + dropped, exactly: `sent` is what the kernel took from the
sender, `delivered` the probes of which an intact copy was read, `dropped` what the
listening socket's kernel queue dropped (SO_MEMINFO; at most what did not arrive, as the
socket may also have dropped other processes' packets of the protocol), `lost` the rest.
A probe whose only copy came corrupted is lost, its copy counted in `corrupted`. No
latency: a flood stamps nothing a packet (`hdp stats` without --flood measures it).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

from hdp.agent import messages
from hdp.agent.launch import AgentClient, AgentError
from hdp.endpoint import Endpoint

CHUNK_SECONDS = 5.0  # a flood-send holds its agent this long at most (MAX_WAIT is 10)
CHUNK_PROBES = 2_000_000  # probes a flood-send asks for at most
MAX_SECONDS = 60.0  # a whole flood's sending, at most: what is left is not sent
ANSWER_MARGIN = 15.0


@dataclass(frozen=True)
class FloodPlan:
    dst: str
    family: int
    count: int
    protocol: int = 253
    size: int = 64
    timeout: float = 1.0  # seconds to wait for the last probes after sending


@dataclass(frozen=True)
class FloodResult:
    plan: FloodPlan
    sent: int  # taken by the kernel
    refused: int  # refused by the OS at send (not sent)
    refused_errno: str | None
    delivered: int
    lost: int
    dropped: int | None  # None: the OS does not count a socket's drops
    socket_drops: int | None  # the listening socket's whole count (others' packets too)
    duplicated: int
    corrupted: int
    foreign: int  # other packets the listener read (other runs, other programs)
    missing: tuple[tuple[int, int], ...]  # the first ranges of probe numbers not heard
    missing_ranges: int
    send_seconds: float
    match_seconds: float | None  # first send .. last match (one clock), else None
    batched_send: bool
    batched_receive: bool
    receive_buffer: int | None
    notes: tuple[str, ...] = ()

    @property
    def sent_per_s(self) -> float | None:
        return self.sent / self.send_seconds if self.send_seconds > 0 else None

    @property
    def matched_per_s(self) -> float | None:
        return self.delivered / self.match_seconds if self.match_seconds else None

    @property
    def accounted(self) -> bool:
        """sent = delivered + lost + dropped (dropped 0 where the OS does not count)."""
        return self.sent == self.delivered + self.lost + (self.dropped or 0)


def flood(sender: AgentClient, listener: AgentClient, plan: FloodPlan, *,
          run: int | None = None) -> FloodResult:
    """Run `plan` from `sender` to `listener` (two agents: one agent at both ends works,
    at about half the rate). AgentError when an agent dies or refuses; a socket the OS
    refuses is an AgentError too (a flood has one lane: nothing could be measured)."""
    run = random.getrandbits(32) if run is None else run
    to, at = Endpoint(sender, "sender"), Endpoint(listener, "listener")
    family = messages.family(plan.family)
    heard = at.call(messages.FloodOpen(role="listen", run=run, family=family,
                                       count=plan.count, protocol=plan.protocol,
                                       size=plan.size))
    opened: dict[str, Any] = {}
    try:
        _opened(heard, "listener", plan)
        opened = to.call(messages.FloodOpen(role="send", run=run, family=family,
                                            count=plan.count, protocol=plan.protocol,
                                            size=plan.size, dst=plan.dst))
        _opened(opened, "sender", plan)
        sent, refused, why, began, ended, notes = _send(to, int(opened["handle"]), plan)
        counted = at.call(messages.FloodCount(handle=int(heard["handle"]), wait=plan.timeout,
                                              expect=sent, below=sent + refused),
                          answer_within=plan.timeout + ANSWER_MARGIN)
    finally:
        for end, answer in ((to, opened), (at, heard)):
            if answer.get("handle") and end.agent.alive():
                with contextlib.suppress(AgentError):
                    end.call(messages.FloodClose(handle=int(answer["handle"])))
    delivered = int(counted["delivered"])
    drops = counted["drops"]
    dropped = None if drops is None else min(int(drops), max(0, sent - delivered))
    last = counted["last_ns"]
    one_clock = heard.get("boot_id") is not None and heard.get("boot_id") == \
        opened.get("boot_id")
    if last is None:
        match_seconds = None
    elif one_clock:  # first send .. last match, on the one CLOCK_MONOTONIC of one kernel
        match_seconds = max(int(last), ended) - began
    else:  # the listener's own first .. last match
        match_seconds = int(last) - int(counted["first_ns"])
    return FloodResult(
        plan, sent, refused, why, delivered, sent - delivered - (dropped or 0), dropped,
        None if drops is None else int(drops), int(counted["duplicated"]),
        int(counted["corrupted"]), int(counted["foreign"]),
        tuple((int(a), int(b)) for a, b in counted["missing"]), int(counted["missing_ranges"]),
        (ended - began) / 1e9, match_seconds / 1e9 if match_seconds else None,
        bool(opened["batched"]), bool(heard["batched"]),
        heard["receive_buffer"] if isinstance(heard["receive_buffer"], int) else None,
        tuple(notes))


def _opened(answer: dict[str, Any], end: str, plan: FloodPlan) -> None:
    if not answer["ok"]:
        raise AgentError(f"the {end} could not open a raw socket of protocol {plan.protocol} "
                         f"({answer['stage']}: {answer['errno']})")


def _send(to: Endpoint, handle: int, plan: FloodPlan
          ) -> tuple[int, int, str | None, int, int, list[str]]:
    """(sent, refused, errno, began_ns, ended_ns, notes): every probe in chunks, until
    MAX_SECONDS of sending."""
    sent = refused = 0
    why: str | None = None
    began = ended = 0
    notes: list[str] = []
    first = 0
    deadline = time.monotonic() + MAX_SECONDS
    while first < plan.count:
        left = deadline - time.monotonic()
        if left <= 0:
            notes.append(f"stopped after {MAX_SECONDS:g} s of sending: probes {first}.."
                         f"{plan.count - 1} were not sent")
            break
        seconds = min(CHUNK_SECONDS, left)
        answer = to.call(messages.FloodSend(handle=handle, first=first,
                                            count=min(CHUNK_PROBES, plan.count - first),
                                            seconds=seconds),
                         answer_within=seconds + ANSWER_MARGIN)
        taken, not_taken = int(answer["sent"]), int(answer["refused"])
        began = began or int(answer["began_ns"])
        ended = int(answer["ended_ns"])
        sent += taken
        refused += not_taken
        why = answer["errno"] or why
        first += taken + not_taken
    return sent, refused, why, began, ended, notes
