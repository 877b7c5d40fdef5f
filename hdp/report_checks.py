"""The report's UDP / IP fragmentation section: the chapter's statements as answered (pure).

An hdp-report/1 file may carry `checks`, one entry per statement, path and family:
{"check", "section", "claim", "target", "path", "family", "expected", "chapter",
"observed", "detail", "verdict" (pass | xfail | fail), "why"}. They sort by (section,
check, target, family) so reports from different runs diff cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdp.describe import markdown_cell

CHECK_FIELDS = ("check", "section", "claim", "target", "path", "family", "expected",
                "chapter", "observed", "detail", "verdict", "why")


def _section_key(section: str) -> tuple[int, ...]:
    first = section.split(",")[0].strip()
    return tuple(int(part) for part in first.split(".") if part.isdigit())


def sort_checks(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    unique = {(e.get("check"), e.get("target"), e.get("family")): e for e in entries}
    return sorted(unique.values(), key=lambda e: (_section_key(str(e.get("section", ""))),
                                                  str(e.get("check")), str(e.get("target")),
                                                  int(e.get("family") or 0)))


def render_checks(checks: list[dict[str, Any]]) -> str:
    """Markdown: one row per statement and path, the platform's answer beside the chapter's."""
    if not checks:
        return ""
    lines = ["## UDP and IP fragmentation (the chapter's statements)", "",
             "| § | statement | path | IPv | chapter | observed | verdict |",
             "|---|---|---|---|---|---|---|"]
    for entry in sort_checks(checks):
        verdict = str(entry.get("verdict"))
        if verdict == "xfail" and entry.get("why"):
            verdict = f"xfail: {entry['why']}"
        lines.append("| " + " | ".join(markdown_cell(str(value)) for value in (
            entry.get("section"), entry.get("check"), entry.get("target"),
            entry.get("family"), " or ".join(entry.get("chapter") or []) or "-",
            entry.get("observed"), verdict)) + " |")
    counts: dict[str, int] = {}
    for entry in checks:
        counts[str(entry.get("verdict"))] = counts.get(str(entry.get("verdict")), 0) + 1
    lines += ["", "Statements: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())),
              ""]
    return "\n".join(lines)
