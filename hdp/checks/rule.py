"""The one rule that turns what a check observed into pass, xfail, xpass, fail, inconclusive
or error; delivery cases and the chapter's statements alike (pure).

A check has a baseline (what passes where no profile says otherwise: `delivered`, or the
chapter's answer) and may have a quirk (what the platform's profile expects instead, with
its reason):

| observed                              | decision       | in pytest                        |
| ------------------------------------- | -------------- | -------------------------------- |
| our own machinery failed (`error`)    | `error`        | ERROR, not a conformance result  |
| exactly the quirk                     | `xfail`        | XFAIL with the profile's reason  |
| no answer could settle it (no-answer) | `inconclusive` | skipped, "inconclusive: ..."     |
| the baseline, with no quirk recorded  | `pass`         | PASSED                           |
| the baseline, though a quirk is       | `xpass`        | FAILED: the quirk has gone, the  |
| recorded                              |                | profile needs updating           |
| anything else                         | `fail`         | FAILED, naming both              |

`no-answer` is never a conformance failure: where a profile expects it, it is that
profile's quirk, and where a test expects it itself, it passes; otherwise nothing was
learned, and the check says so instead of passing or failing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

ERROR = "error"
NO_ANSWER = "no-answer"


class Decision(str, enum.Enum):
    PASS = "pass"
    QUIRK = "xfail"
    VANISHED = "xpass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


def decide(observed: str, *, baseline: bool, quirk: bool | None) -> Decision:
    """`observed` is the outcome or answer seen; `baseline` whether it is what passes
    without a profile; `quirk` whether it is exactly the profile's quirk (None: the
    profile records none for this check)."""
    if observed == ERROR:
        return Decision.ERROR
    if quirk:
        return Decision.QUIRK
    if observed == NO_ANSWER and not baseline:
        return Decision.INCONCLUSIVE
    if baseline:
        return Decision.PASS if quirk is None else Decision.VANISHED
    return Decision.FAIL


@dataclass(frozen=True)
class Judgement:
    """A decision and the one line that explains it: the profile's reason for an xfail,
    expected against observed otherwise."""

    decision: Decision
    expected: str  # e.g. "delivered", or "socket-error (EINVAL) by linux.yaml rule 3"
    observed: str  # e.g. "send-error (EOPNOTSUPP)"
    line: str  # what a reader is told: the xfail reason, or why it failed

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS
