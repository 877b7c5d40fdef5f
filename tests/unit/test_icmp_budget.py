"""The ICMP-only pacer against a model of Linux's per-host ICMP budget
(net/ipv4/inetpeer.c:inet_peer_xrlim_allow: tokens in jiffies, a burst of 6 intervals):
whatever the budget withholds, nothing is judged wrong, and given time every case
settles."""

from __future__ import annotations

import pytest

from hdp import icmp_budget
from hdp.icmp_budget import ANSWERED, SILENT, UNSURE, Pacer

HZ = 1000
RTT = 0.0002
SEND_GAP = 0.00002


class LinuxPeer:
    """One peer's token bucket, as inet_peer_xrlim_allow keeps it."""

    def __init__(self, interval_ms: int, handled: set[int]) -> None:
        self.timeout = interval_ms * HZ // 1000
        self.tokens = 6 * self.timeout  # a new peer starts full (rate_last 60 s back)
        self.last = 0
        self.handled = handled
        self.withheld = 0

    def answers(self, protocol: int, now: float) -> bool:
        if protocol in self.handled:
            return False
        jiffies = int(now * HZ)
        self.tokens = min(6 * self.timeout, self.tokens + jiffies - self.last)
        self.last = jiffies
        if self.tokens >= self.timeout:
            self.tokens -= self.timeout
            return True
        self.withheld += 1
        return False


def run(pacer: Pacer, peer: LinuxPeer, limit: float = 3600.0) -> float:
    now = 0.0
    while not pacer.finished and now < limit:
        due = pacer.due(now)
        if due is None:
            break
        now = max(now, due)
        pacer.poll(now)
        if pacer.round is not None or pacer.finished or pacer.next_at > now:
            continue
        asked = pacer.start_round(now)
        at = now
        for index in asked:
            at += SEND_GAP
            pacer.on_sent(index, int(at * 1e9), True)
            if peer.answers(index, at):
                pacer.on_answer(index, int(at * 1e9), int((at + RTT) * 1e9),
                                int((at + RTT) * 1e9))
        pacer.all_sent(at)
    return now


@pytest.mark.parametrize("interval_ms", [1000, 250, 50])
def test_patient_pacing_settles_every_case_and_learns_the_rate(interval_ms):
    handled = {1, 2, 6, 17, 136}
    peer = LinuxPeer(interval_ms, handled)
    pacer = Pacer(range(256), icmp_budget.PATIENT_TIME, 1.0, icmp_budget.PATIENT_ASKS)
    took = run(pacer, peer)
    assert {i for i, s in pacer.status.items() if s == SILENT} == handled
    assert all(pacer.status[i] == ANSWERED for i in range(256) if i not in handled)
    rate = 1000 / interval_ms
    summary = pacer.summary()
    assert summary["burst"] == 6 and summary["ended_by"] == "done"
    assert rate / 1.3 <= summary["rate_per_s"] <= rate * 1.3
    # About the time the budget needs for its answers, like nmap at default timing.
    assert took <= (256 - len(handled) - 6) / rate * 1.3 + 5


def test_a_time_limit_leaves_the_rest_inconclusive_and_nothing_silent_by_mistake():
    handled = {1, 6, 17}
    peer = LinuxPeer(1000, handled)
    pacer = Pacer(range(256), 60.0, 1.0)
    run(pacer, peer)
    statuses = pacer.status
    answered = {i for i, s in statuses.items() if s == ANSWERED}
    assert 6 + 50 <= len(answered) <= 6 + 61  # the burst, then one a second
    silent = {i for i, s in statuses.items() if s == SILENT}
    assert silent <= handled  # never a withheld answer taken for silence
    assert sum(1 for s in statuses.values() if s == UNSURE) == 256 - len(answered) - len(silent)
    assert pacer.summary()["ended_by"] == "time"


def test_a_peer_that_answers_nothing_is_asked_once():
    peer = LinuxPeer(1000, set(range(256)))
    pacer = Pacer(range(256), 60.0, 1.0)
    took = run(pacer, peer)
    assert pacer.summary()["asks"] == 256 and pacer.summary()["ended_by"] == "no answers"
    assert took < 2.0


def test_a_last_silent_case_is_settled_with_witnesses_not_asked_to_exhaustion():
    """The only case left is one the peer handles: answered cases asked again behind it
    show it silent within a few rounds, instead of asking it until the asks run out."""
    peer = LinuxPeer(250, {9})
    pacer = Pacer(range(10), icmp_budget.PATIENT_TIME, 1.0, icmp_budget.PATIENT_ASKS)
    took = run(pacer, peer)
    assert pacer.status[9] == SILENT and pacer.asks[9] <= 6, pacer.asks
    assert pacer.summary()["ended_by"] == "done" and took < 10
