"""The rules a single probe's case shares with many-probe cases (hdp.stats): pure, no imports.

hdp.accounting and hdp.observe judge every case of a sweep by them; they live outside the
hdp.stats package, whose import loads all of it (binomial intervals through statistics,
decimal, fractions; the records' and summaries' dataclasses), which a sweep never uses.
"""

from __future__ import annotations

# A latency past this cannot be trusted (clocks apart, or a stamp rewritten): left out.
DEFAULT_MAX_LATENCY_US = 10_000_000.0


def split_missing(missing: int, kernel_drops: int | None) -> tuple[int | None, int | None]:
    """(lost, dropped) of `missing` probes, given the listener's drop counter over their
    window: the counter counts packets, not which ones, so it moves probes from lost to
    dropped, `dropped = min(kernel_drops, missing)`; both None when it is unknown. The one
    rule for many-probe cases and for a batch's listeners alike (hdp.accounting)."""
    if kernel_drops is None:
        return None, None
    dropped = min(kernel_drops, missing)
    return missing - dropped, dropped
