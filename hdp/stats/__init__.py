"""Many probes per case: accounting, latency, comparisons, clocks, tables and charts (pure).

Everything here takes plain values (per-probe records with their timestamps, samples in
µs) and returns frozen values; nothing opens a socket or imports pytest. The charts in
`hdp.stats.plot` need matplotlib (`pip install 'pytest-hdp[plot]'`) and import it lazily.
"""

from hdp.stats.accounting import CaseStats, case_stats
from hdp.stats.binomial import Proportion, wilson_interval
from hdp.stats.clock import Echo, OffsetEstimate, clock_sync, estimate_offset, shared_clock
from hdp.stats.compare import Comparison, compare
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

__all__ = [
    "DEFAULT_MAX_LATENCY_US", "NO_SYNC", "SHARED_CLOCK", "CaseStats", "ClockKind",
    "ClockSync", "Comparison", "Echo", "LatencySummary", "LeftOut", "Measure",
    "OffsetEstimate", "ProbeRecord", "Proportion", "Reception", "SyncKind", "case_stats",
    "clock_sync", "compare", "estimate_offset", "quantile", "shared_clock", "wilson_interval",
]
