"""The report's table of many-probe cases: each case's outcome and what a test held it to,
then its accounting, loss interval and latency percentiles (hdp.stats.table's columns)."""

from __future__ import annotations

from typing import Any

from hdp.describe import family_name, one_line
from hdp.stats import CaseStats
from hdp.stats.table import case_cells, case_header

HEADING = "Many probes per case"


def stats_rows(entries: list[dict[str, Any]], judged: bool
               ) -> tuple[str, list[str], list[list[str]]]:
    """(heading, header, rows) of the many-probe cases, in the report's order."""
    header = case_header()
    names = [header[0], "Outcome", *(["Expected", "Verdict"] if judged else []), *header[1:]]
    rows = []
    for entry in entries:
        label = (f"{entry['target']} {family_name(entry['family'])} p{entry['protocol']} "
                 f"{entry['payload']}")
        if entry.get("vantage"):
            label += f" from {entry['vantage']}"
        cells = case_cells(label, CaseStats.from_json(entry["stats"]))
        judgement = [_text(entry.get("expected")), _text(entry.get("verdict"))] if judged \
            else []
        rows.append([one_line(cell) for cell in
                     [cells[0], str(entry["outcome"]), *judgement, *cells[1:]]])
    return HEADING, names, rows


def _text(value: object) -> str:
    return "-" if value is None else str(value)
