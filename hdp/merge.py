"""Several hdp-report/1 documents -> one cross-OS matrix (hdp-matrix/1) of where they differ.

One column per (report, target, vantage point); one row per (family, protocol, payload) on
which the columns do not all agree. Pure apart from `command_merge`, which reads the files
and writes the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any, TextIO

from hdp import report_load
from hdp.describe import family_name as _family
from hdp.describe import markdown_cell as _md
from hdp.errors import HdpError, UsageError
from hdp.report import dumps, outcome_label
from hdp.verdict import Outcome

SCHEMA = "hdp-matrix/1"
MISSING = "-"  # the column probes this family and payload, but not this protocol
_OUTCOME_ORDER = {outcome.value: index for index, outcome in enumerate(Outcome)}
_FIX = "give reports written by hdp sweep --format json or pytest --hdp-report"

_RowKey = tuple[int, int, str]  # (family, protocol, payload)


def cell_text(entry: dict[str, Any]) -> str:
    """What a case came to, comparable across machines: `send-error (EOPNOTSUPP)`,
    `altered (protocol: 0)`; what differs between runs rather than OSes is left out."""
    return outcome_label(entry, with_values=True)


def _short_release(release: str) -> str:
    """`6.18.44-generic` -> `6.18`; `23.4.0` -> `23.4`."""
    return ".".join(release.split(".")[:2])


def _base_label(platform: dict[str, Any], target: str | None, vantage: str | None) -> str:
    words = [str(platform.get("system") or "unknown")]
    if platform.get("release"):
        words.append(_short_release(str(platform["release"])))
    where = "(no cases)" if target is None else target
    return f"{' '.join(words)} / {where}{'' if vantage is None else f' from {vantage}'}"


def _unique_labels(bases: list[str], sources: list[str]) -> list[str]:
    """Labels as given where unique; colliding ones get the source file's stem, then #N."""
    labels = list(bases)
    for index, base in enumerate(bases):
        if bases.count(base) > 1:
            labels[index] = f"{base} ({PurePath(sources[index]).stem or sources[index]})"
    repeated = {label for label in labels if labels.count(label) > 1}
    taken = set(labels) - repeated
    for index, label in enumerate(labels):
        if label in repeated:
            number = 1
            while f"{label} #{number}" in taken:
                number += 1
            labels[index] = f"{label} #{number}"
            taken.add(labels[index])
    return labels


def merge_reports(reports: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The hdp-matrix/1 document for (source name, hdp-report/1 dict) pairs.

    A cell is `cell_text` of the column's case; several cases of one column on one row (other
    sizes or paths) are joined with " / ". A column that probes no case of the row's family
    and payload at all (a ::1 column on an IPv4 row) has the cell None: it takes no part in
    the comparison. A column that does, but lacks this protocol, has "-", which differs from
    everything. A row is left out (counted in "identical") when at least two columns have
    the case and every column taking part shows the same text.
    """
    columns: list[dict[str, Any]] = []
    column_cases: list[list[dict[str, Any]]] = []
    for source, report in reports:
        platform = dict(report.get("platform") or {})
        by_place: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for entry in report["cases"]:
            by_place.setdefault((entry["target"], entry.get("vantage")), []).append(entry)
        places: list[tuple[str | None, str | None]] = [
            *sorted(by_place, key=lambda place: (place[0], place[1] or ""))] or [(None, None)]
        for target, vantage in places:
            column = {"source": source, "platform": platform, "target": target,
                      "label": _base_label(platform, target, vantage)}
            if vantage is not None:  # absent otherwise, as in the report
                column["vantage"] = vantage
            columns.append(column)
            column_cases.append([] if target is None else by_place[(target, vantage)])
    labels = _unique_labels([c["label"] for c in columns], [c["source"] for c in columns])
    for column, label in zip(columns, labels, strict=True):
        column["label"] = label

    cells_by_column: list[dict[_RowKey, list[str]]] = []
    covered: list[set[tuple[int, str]]] = []
    for cases in column_cases:
        cells: dict[_RowKey, list[str]] = {}
        for entry in cases:
            texts = cells.setdefault((entry["family"], entry["protocol"], entry["payload"]), [])
            text = cell_text(entry)
            if text not in texts:
                texts.append(text)
        cells_by_column.append(cells)
        covered.append({(family, payload) for family, _, payload in cells})

    rows: list[dict[str, Any]] = []
    identical = 0
    for key in sorted({key for cells in cells_by_column for key in cells}):
        family, protocol, payload = key
        row_cells: list[str | None] = []
        for cells, probes in zip(cells_by_column, covered, strict=True):
            if key in cells:
                row_cells.append(" / ".join(cells[key]))
            else:
                row_cells.append(MISSING if (family, payload) in probes else None)
        present = [cell for cell in row_cells if cell is not None]
        if len(present) >= 2 and len(set(present)) == 1:
            identical += 1
            continue
        rows.append({"family": family, "protocol": protocol, "payload": payload,
                     "cells": row_cells})

    totals = []
    for cases in column_cases:
        counts: dict[str, int] = {}
        for entry in cases:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        totals.append(dict(sorted(counts.items(), key=_outcome_order)))

    return {"schema": SCHEMA,
            "columns": [{name: column[name] for name in ("label", "source", "platform",
                                                         "target", "vantage") if name in column}
                        for column in columns],
            "rows": rows, "totals": totals, "identical": identical}


def _outcome_order(item: tuple[str, int]) -> tuple[int, str]:
    return (_OUTCOME_ORDER.get(item[0], len(_OUTCOME_ORDER)), item[0])


# --- Markdown --------------------------------------------------------------------------

def render_matrix_markdown(matrix: dict[str, Any]) -> str:
    """Heading, the columns, how many rows agree, the differing rows, and the totals."""
    columns: list[dict[str, Any]] = matrix["columns"]
    rows: list[dict[str, Any]] = matrix["rows"]
    labels = [_md(str(column["label"])) for column in columns]
    lines = ["# HDP cross-OS matrix", ""]
    lines += [f"- {_md(str(column['label']))}: {_md(str(column['source']))}"
              for column in columns]
    identical = matrix["identical"]
    lines += ["", f"{identical} (family, protocol, payload) row{'' if identical == 1 else 's'} "
              f"agree{'s' if identical == 1 else ''} everywhere and "
              f"{'is' if identical == 1 else 'are'} folded away; "
              f"{len(rows)} differ{'s' if len(rows) == 1 else ''}.", ""]
    if rows:
        lines += ["## Differences", "",
                  "`-`: the column has no such case; empty: it probes no case of that "
                  "family and payload.", "",
                  _row(["Family", "Protocol", "Payload", *labels]),
                  _row(["---", "---:", "---", *(["---"] * len(labels))])]
        for row in rows:
            cells = ["" if cell is None else _md(str(cell)) for cell in row["cells"]]
            lines.append(_row([_family(row["family"]), str(row["protocol"]),
                               _md(str(row["payload"])), *cells]))
        lines.append("")
    totals: list[dict[str, int]] = matrix["totals"]
    outcomes = sorted({name for counts in totals for name in counts},
                      key=lambda name: _outcome_order((name, 0)))
    lines += ["## Totals", "", _row(["Outcome", *labels]),
              _row(["---", *(["---:"] * len(labels))])]
    for name in outcomes:
        lines.append(_row([_md(name), *(str(counts.get(name, 0)) for counts in totals)]))
    lines.append(_row(["**cases**", *(f"**{sum(counts.values())}**" for counts in totals)]))
    return "\n".join(lines) + "\n"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# --- command line ----------------------------------------------------------------------

def read_report(path: str) -> dict[str, Any]:
    """One hdp-report/1 file (read up to its cap), or one HdpError line naming it."""
    return report_load.read_report(path, _FIX)


def command_merge(args: Any, stdout: TextIO) -> int:
    """`hdp report merge A.json B.json ... [--out FILE] [--format md|json]`."""
    files: list[str] = list(args.files)
    if len(files) < 2:
        raise UsageError(f"give two or more JSON reports to merge (got {len(files)}), "
                         "e.g. hdp report merge linux.json macos.json")
    matrix = merge_reports([(path, read_report(path)) for path in files])
    out: str | None = args.out
    fmt: str | None = getattr(args, "format", None)
    if fmt is None:
        fmt = "json" if out and out.endswith(".json") else "md"
    if fmt not in ("md", "json"):
        raise UsageError(f"--format {fmt!r} is not md or json")
    text = dumps(matrix) if fmt == "json" else render_matrix_markdown(matrix)
    if out is None or out == "-":
        stdout.write(text)
        return 0
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HdpError(f"cannot write the matrix to {out} ({exc.strerror}): "
                       "give a writable path with --out") from None
    return 0

