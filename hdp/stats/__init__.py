"""Many probes per case: accounting, latency, comparisons, clocks, tables and charts (pure).

Everything here takes plain values (per-probe records with their timestamps, samples in
µs) and returns frozen values; nothing opens a socket or imports pytest. The charts in
`hdp.stats.plot` need matplotlib (`pip install 'pytest-hdp[plot]'`) and import it lazily.

The names below load with their module on first use (PEP 562): a sweep imports
hdp.stats.rules alone, without the statistics it never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded now: the function's name is also its module's, which importing the module
# (hdp.stats.table does) would otherwise put here in its place.
from hdp.stats.compare import Comparison, compare

if TYPE_CHECKING:
    from hdp.stats.accounting import CaseStats, case_stats
    from hdp.stats.binomial import Proportion, wilson_interval
    from hdp.stats.clock import Echo, OffsetEstimate, clock_sync, estimate_offset, shared_clock
    from hdp.stats.records import (
        NO_SYNC,
        SHARED_CLOCK,
        ClockKind,
        ClockSync,
        Measure,
        ProbeRecord,
        Reception,
        SyncKind,
    )
    from hdp.stats.summary import DEFAULT_MAX_LATENCY_US, LatencySummary, LeftOut, quantile

_MODULES = {
    "CaseStats": "accounting", "case_stats": "accounting",
    "Proportion": "binomial", "wilson_interval": "binomial",
    "Echo": "clock", "OffsetEstimate": "clock", "clock_sync": "clock",
    "estimate_offset": "clock", "shared_clock": "clock",
    "NO_SYNC": "records", "SHARED_CLOCK": "records", "ClockKind": "records",
    "ClockSync": "records", "Measure": "records", "ProbeRecord": "records",
    "Reception": "records", "SyncKind": "records",
    "DEFAULT_MAX_LATENCY_US": "summary", "LatencySummary": "summary", "LeftOut": "summary",
    "quantile": "summary",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_MAX_LATENCY_US", "NO_SYNC", "SHARED_CLOCK", "CaseStats", "ClockKind",
    "ClockSync", "Comparison", "Echo", "LatencySummary", "LeftOut", "Measure",
    "OffsetEstimate", "ProbeRecord", "Proportion", "Reception", "SyncKind", "case_stats",
    "clock_sync", "compare", "estimate_offset", "quantile", "shared_clock", "wilson_interval",
]
