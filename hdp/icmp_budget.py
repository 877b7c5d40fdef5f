"""Pacing ICMP-only probes to the target's ICMP error budget, learned from its answers (pure).

Without a listener on the target, a probe's verdict comes from the ICMP error its kernel
sends back (protocol unreachable), and kernels ration those. Linux allows each peer a
burst of 6 and then one per `icmp_ratelimit` ms (net/ipv4/icmp.c:icmpv4_xrlim_allow,
net/ipv4/inetpeer.c:inet_peer_xrlim_allow; IPv6 scales the interval down for shorter
routes, net/ipv6/icmp.c:icmpv6_xrlim_allow), except toward a loopback device, and the
whole host 50 then `icmp_msgs_per_sec` (icmp_global_allow, randomised). A probe whose
answer the budget withheld looks exactly like one nobody answers, so silence is never
`lost`: it is `no-answer`, and the point of pacing is to turn as many cases as the
budget allows into answers, as nmap -sO does by slowing down.

A Pacer asks one target's cases in rounds, each sent back to back:

- the first round asks every case once (a target without a limit, such as loopback
  apart from the host-wide budget, answers nearly all of it at once);
- a round "ran dry" when a probe in it got no answer and no later probe of the round
  settles why (see `settle`); the answers in the first dry round are the burst;
- later rounds wait for tokens: the rate is learned as the answers a dry round got over
  the time since the previous round began, and each round asks for the tokens the
  learned rate promises, plus two (asking more than the budget costs the target
  nothing: a withheld answer spends no token);
- a probe without an answer is asked again, fewest asks first, until it is answered,
  shown silent, or out of asks. It is shown silent when at least two later probes of
  the same round were answered, a whole answer apart: the target had budget when it
  came, so its kernel handles the protocol or it never arrived. When too few cases are
  left to follow it, cases already answered are asked again behind it as witnesses;
- a round settles once every answer it can draw is in: four round-trip times after the
  last probe left, as the answers measured them (the batch's timeout until one came),
  so on loopback a sweep ends in milliseconds after its last answer, not a fixed wait.

Times are the caller's: `now` on a monotonic clock in seconds, send and answer stamps as
the agent's wall-clock nanoseconds. Nothing here does I/O, so the engine's event loop can
change without touching the rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ANSWERED = "answered"
SILENT = "silent"  # the target had budget when it came, and sent nothing
UNSURE = "unsure"  # no answer, and the budget may have withheld it
REFUSED = "refused"  # our own OS refused to send it: not the pacer's to ask again

FIRST_ROUND = 4096  # every case, in practice: one agent request at most
SETTLE_FLOOR = 0.005  # s: the shortest wait for a round's answers
EXTRA = 2  # probes a round asks beyond the tokens it expects
MAX_ASKS = 6
PATIENT_ASKS = 64
PATIENT_TIME = 1800.0  # s: --patient still ends


@dataclass
class _Round:
    asked: list[int]
    started: float
    sent_ns: dict[int, int] = field(default_factory=dict)
    sent_at: float | None = None  # when the agent said the round was sent
    answered: set[int] = field(default_factory=set)  # asked in this round and answered
    witnesses: int = 0  # answered cases asked again behind the others (see start_round)


@dataclass
class Pacer:
    """One target's ICMP-only cases (by index), asked as the target's budget allows."""

    indices: Iterable[int]
    time_limit: float
    timeout: float  # the wait for a first answer, before any round trip is known
    max_asks: int = MAX_ASKS
    began: float = 0.0
    once: Iterable[int] = ()  # cases no answer can come for: asked once, never again

    def __post_init__(self) -> None:
        self.order = list(self.indices)
        self.status: dict[int, str] = {i: UNSURE for i in self.order}
        self.asks: dict[int, int] = {i: 0 for i in self.order}
        self.once_only = set(self.once)
        self.round: _Round | None = None
        self.rounds = 0
        self.burst: int | None = None  # answers of the first round that ran dry
        self.dry_started: float | None = None  # start of the last dry round
        self.since_dry = 0  # answers of the rounds after it
        self.tokens = 0.0  # answers between dry rounds since the first ...
        self.span = 0.0  # ... over the time they took to come back
        self.size = 1 + EXTRA  # the next round's size
        self.witnessed = 0  # probes sent as witnesses
        self.rtt: float = 0.0  # s, the longest round trip seen
        self.lag: float = 0.0  # s, the longest wait from an answer's stamp to its event
        self.answers = 0
        self.pause = SETTLE_FLOOR
        self.next_at = self.began
        self.ended_by: str | None = None

    # -- what to do next ---------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Answers a second the target's budget gives back, once a dry round showed it."""
        return self.tokens / self.span if self.span > 0 and self.tokens > 0 else None

    def due(self, now: float) -> float | None:
        """When the next round may start (or when the current one settles); None once the
        pacer has nothing more to ask."""
        if self.round is not None:
            sent_at = self.round.sent_at
            return None if sent_at is None else sent_at + self.settle()
        if self.finished:
            return None
        return self.next_at

    @property
    def finished(self) -> bool:
        return self.round is None and self.ended_by is not None

    def start_round(self, now: float) -> list[int]:
        """The cases to ask now, back to back; [] ends the pacer when none is left."""
        assert self.round is None
        waiting = [i for i in self.order if self.status[i] == UNSURE
                   and self.asks[i] < (1 if i in self.once_only else self.max_asks)]
        if not waiting:
            self.ended_by = "done"
            return []
        if now - self.began >= self.time_limit and self.rounds:
            self.ended_by = "time"
            return []
        if self.rounds and not self.answers:
            self.ended_by = "no answers"  # nothing to learn a budget from: do not re-ask
            return []
        waiting.sort(key=lambda i: self.asks[i])  # fewest asks first, in case order
        size = FIRST_ROUND if not self.rounds else self._round_size()
        asked = waiting[:size]
        for index in asked:
            self.asks[index] += 1
        # A silent case is shown silent only by answers to later probes of its round: when
        # too few cases are left to make them, cases already answered follow as witnesses.
        known = [i for i in self.order if self.status[i] == ANSWERED]
        witnesses = known[:max(0, min(len(known), size - len(asked), EXTRA + 1))] \
            if self.rounds else []
        self.witnessed += len(witnesses)
        self.round = _Round(asked + witnesses, now, witnesses=len(witnesses))
        self.rounds += 1
        self.lag = 0.0  # measured again: a big round's last answers wait for its sending
        return self.round.asked

    def _round_size(self) -> int:
        return self.size

    # -- what happened -----------------------------------------------------------

    def on_sent(self, index: int, wall_ns: int | None, ok: bool) -> None:
        if not ok:
            self.status[index] = REFUSED
        elif self.round is not None and index in self.round.asked and wall_ns is not None:
            self.round.sent_ns[index] = wall_ns

    def on_answer(self, index: int, sent_ns: int | None, answer_ns: int | None,
                  seen_ns: int) -> None:
        """An ICMP error quoting probe `index`: stamped `answer_ns` by the kernel, read by
        the engine at `seen_ns` (both wall clock)."""
        if self.status.get(index) is None:
            return
        self.status[index] = ANSWERED
        if self.round is not None and index in self.round.sent_ns:
            self.round.answered.add(index)
        self.answers += 1
        if answer_ns is not None:
            if sent_ns is not None and answer_ns >= sent_ns:
                self.rtt = max(self.rtt, (answer_ns - sent_ns) / 1e9)
            self.lag = max(self.lag, max(0, seen_ns - answer_ns) / 1e9)

    def all_sent(self, now: float) -> None:
        """The agent has sent the round: its answers are due within `settle()` (taken when
        the round closes, so the answers it drew already shorten it)."""
        if self.round is not None and self.round.sent_at is None:
            self.round.sent_at = now

    def settle(self) -> float:
        if not self.answers:
            return self.timeout
        return min(self.timeout, max(SETTLE_FLOOR, 4 * self.rtt + 2 * self.lag))

    def poll(self, now: float) -> None:
        """Close the current round once it has settled."""
        current = self.round
        if current is None or current.sent_at is None or now < current.sent_at + self.settle():
            return
        self.round = None
        answered = current.answered
        dry = self._classify(current)
        if not dry:
            # Budget to spare: ask for twice as much at once.
            self.since_dry += len(answered)
            self.size = 2 * len(current.asked)
            self.next_at = now
            return
        if self.burst is None:
            self.burst = len(answered)
        elif self.dry_started is not None:
            # Empty at the last dry round and again now: every answer since came from
            # tokens the budget gave back in between.
            self.tokens += self.since_dry + len(answered)
            self.span += current.started - self.dry_started
        self.dry_started, self.since_dry = current.started, 0
        rate = self.rate
        if rate is None:
            self.pause *= 2
            self.size = 1 + EXTRA
        else:
            self.pause = max(self.settle(), (1 + EXTRA) / rate)
            self.size = max(1, math.floor(rate * self.pause)) + EXTRA
        self.next_at = now + self.pause

    def _classify(self, current: _Round) -> bool:
        """Mark the round's silent probes that had budget; whether the round ran dry."""
        sent = sorted((ns, i) for i, ns in current.sent_ns.items())
        answered_at = [ns for ns, i in sent if i in current.answered]
        # A witness (answered before) left unanswered now: the budget ran out.
        witnesses = current.asked[len(current.asked) - current.witnesses:] \
            if current.witnesses else []
        dry = any(i not in current.answered for i in witnesses)
        for ns, index in sent:
            if self.status[index] != UNSURE:
                continue
            later = [t for t in answered_at if t > ns]
            # Two answered probes after it, the last a full token's time (at the learned
            # rate, or 1 ms where none is learned) after it at most: budget was there.
            rate = self.rate or 1000.0
            if len(later) >= 2 and (later[-1] - ns) / 1e9 * max(rate, 1000.0) <= len(later) - 1:
                self.status[index] = SILENT
            else:
                dry = True
        return dry or any(i not in current.sent_ns and self.status[i] == UNSURE
                          for i in current.asked)

    # -- what it learned -----------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The budget as learned, and how the cases stand: plain JSON for the report."""
        counts = {s: 0 for s in (ANSWERED, SILENT, UNSURE)}
        for status in self.status.values():
            if status in counts:
                counts[status] += 1
        rate = self.rate
        return {"burst": self.burst, "rate_per_s": None if rate is None else round(rate, 2),
                "rounds": self.rounds, "asks": sum(self.asks.values()) + self.witnessed,
                "answered": counts[ANSWERED], "silent": counts[SILENT],
                "inconclusive": counts[UNSURE], "ended_by": self.ended_by}
