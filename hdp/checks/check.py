"""One chapter statement checked on one path: its expected answers and what was observed.

The decision is hdp.checks.rule's, the same as a delivery case's: the chapter's answer
passes, the answer a profile in conformance/profiles/udp/ expects instead is that
platform's quirk (xfail), and anything else fails naming both (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from hdp.checks.chapter import Statement
from hdp.checks.rule import Decision, Judgement, decide
from hdp.profile.model import CheckRule

C = TypeVar("C", bound="Check")


@dataclass
class Check:
    """One chapter statement on one path: what is expected, and what was observed."""

    name: str
    section: str
    claim: str
    target: str
    path: str
    family: int
    chapter: tuple[str, ...] | None  # the chapter's answers for this family
    profile: CheckRule | None  # the platform's answer instead, with its reason
    observed: str | None = None
    detail: str = ""
    computed: tuple[str, ...] | None = None  # the chapter's answer for this path
    judgement: Judgement | None = None

    @classmethod
    def of(cls: type[C], statement: Statement, target: str, path: str, family: int,
           rule: CheckRule | None) -> C:
        return cls(statement.name, statement.section, statement.claim, target, path, family,
                   statement.expected(family), rule)

    def __repr__(self) -> str:
        seen = "not yet observed" if self.observed is None else f"observed {self.observed}"
        return f"<Check {self.name} on {self.target} IPv{self.family}: {seen}>"

    @property
    def expected(self) -> tuple[str, ...] | None:
        if self.profile is not None:
            return (self.profile.expect,)
        return self.computed or self.chapter

    def expect(self, *answers: str) -> None:
        """The chapter's answer for this path, computed by the test from the chapter's rule."""
        self.computed = answers

    def judge(self, answer: str, detail: str = "") -> Judgement:
        """Record `answer` and decide it by the one rule (hdp.checks.rule)."""
        self.observed, self.detail = answer, detail
        chapter = self.computed or self.chapter
        if chapter is None and self.profile is None:
            raise ValueError(f"{self.name}: no expectation for this path: the test must "
                             "compute the chapter's answer with expect() first")
        quirk = None if self.profile is None else answer == self.profile.expect
        decision = decide(answer, baseline=chapter is not None and answer in chapter,
                          quirk=quirk)
        expected = " or ".join(self.expected or ())
        where = f"{self.name} on {self.target} IPv{self.family}"
        said = f"the profile's rule ({self.profile.why})" if self.profile is not None else \
            f"chapter {self.section}"
        extra = f" ({detail})" if detail else ""
        if decision is Decision.QUIRK:
            assert self.profile is not None
            line = f"{self.profile.why} ({self.name}: {self.profile.expect})"
        elif decision is Decision.VANISHED:
            line = (f"{where}: the quirk has gone: {said} expects {expected}, observed "
                    f"{answer}, the chapter's answer{extra}; update the profile")
        elif decision is Decision.PASS:
            line = f"{where}: {answer}, as chapter {self.section} says"
        elif decision is Decision.INCONCLUSIVE:
            line = (f"inconclusive: {where}: observed {answer}{extra}; nothing can be said "
                    f"here of what {said} expects ({expected})")
        else:
            line = f"{where}: {said} expects {expected}, observed {answer}{extra}"
        self.judgement = Judgement(decision, expected, answer, line)
        return self.judgement

    def entry(self, verdict: str) -> dict[str, Any]:
        """This check in the report's `checks` list (plain JSON)."""
        return {"check": self.name, "section": self.section, "claim": self.claim,
                "target": self.target, "path": self.path, "family": self.family,
                "expected": list(self.expected or ()),
                "chapter": list(self.computed or self.chapter or ()),
                "observed": self.observed, "detail": self.detail, "verdict": verdict,
                "why": None if self.profile is None else self.profile.why}
