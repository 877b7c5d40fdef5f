"""How fast `hdp.stats.compare` puts an interval on a difference of medians, beside peers.

Two sets of 10,000 synthetic one-way latencies (a floor, log-normal jitter, rare stalls; the
second 20 µs slower), and a 95% bootstrap percentile interval for the difference of their
medians with 10,000 replicates, by:

- hdp.stats.compare: the exact order-statistic bootstrap, two beta draws per replicate,
  pure Python;
- textbook, pure Python: resample n values with `random.choices` and take the median,
  timed over `--slow-replicates` replicates and scaled to 10,000 (marked "scaled");
- textbook, numpy: the same resampling with `numpy.random.Generator.choice`, in batches
  (when numpy is installed);
- scipy.stats.bootstrap: `method="percentile"`, 10,000 resamples, in batches (when scipy
  is installed).

The contenders run interleaved, `--repeat` times each; the table gives median, min and max
seconds and the ratio of medians to hdp's, and the interval each found (all should agree to
within Monte Carlo noise, a few hundredths of a µs here). Pure computation: no root, no
packets. Run: python benchmarks/stats_compare.py [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import _bench

from hdp.stats import compare, quantile
from tests.unit.test_stats_compare import latencies  # the synthetic path the tests use

N = 10_000
REPLICATES = 10_000


def hdp_compare(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    result = compare(a, b, replicates=REPLICATES, seed=1)
    return result.low_us, result.high_us


def textbook_python(replicates: int) -> Callable[[Sequence[float], Sequence[float]],
                                                 tuple[float, float]]:
    def run(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
        rng = random.Random(1)
        replica = sorted(statistics.median(rng.choices(a, k=len(a)))
                         - statistics.median(rng.choices(b, k=len(b)))
                         for _ in range(replicates))
        return quantile(replica, 0.025), quantile(replica, 0.975)
    return run


def textbook_numpy(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(1)
    xa, xb = np.asarray(a), np.asarray(b)
    parts = []
    for _ in range(REPLICATES // 500):  # batches of 500 keep memory near 40 MB
        parts.append(np.median(rng.choice(xa, (500, len(xa))), axis=1)
                     - np.median(rng.choice(xb, (500, len(xb))), axis=1))
    low, high = np.percentile(np.concatenate(parts), [2.5, 97.5])
    return float(low), float(high)


def scipy_bootstrap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    import numpy as np
    from scipy import stats

    def difference(x: Any, y: Any, axis: int = -1) -> Any:
        return np.median(x, axis=axis) - np.median(y, axis=axis)

    result = stats.bootstrap((np.asarray(a), np.asarray(b)), difference, n_resamples=REPLICATES,
                             method="percentile", batch=500, random_state=1)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slow-replicates", type=int, default=100,
                        help="replicates the pure-Python textbook bootstrap is timed over")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rng = random.Random(20)
    a, b = latencies(rng, N, shift_us=20.0), latencies(rng, N)
    scale = REPLICATES / args.slow_replicates
    contenders: list[tuple[str, Callable[..., tuple[float, float]], float]] = [
        ("hdp.stats.compare", hdp_compare, 1.0),
        ("textbook, pure Python (scaled)", textbook_python(args.slow_replicates), scale)]
    if available("numpy"):
        contenders.append(("textbook, numpy", textbook_numpy, 1.0))
    if available("scipy"):
        contenders.append(("scipy.stats.bootstrap", scipy_bootstrap, 1.0))
    times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    intervals: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for name, run, factor in contenders:
            started = time.perf_counter()
            intervals[name] = run(a, b)
            times[name].append((time.perf_counter() - started) * factor)
    base = statistics.median(times["hdp.stats.compare"])
    rows = []
    for name, _, _ in contenders:
        summary = _bench.summary(times[name])
        low, high = intervals[name]
        rows.append([name, summary["median"], summary["min"], summary["max"],
                     _bench.ratio(summary["median"], base), f"{low:+.3f} to {high:+.3f}"])
    print(f"difference of medians, {N} + {N} samples, {REPLICATES} replicates, 95%")
    print(_bench.table(["contender", "median s", "min s", "max s", "x hdp", "interval µs"],
                       rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": _bench.machine(), "n": N, "replicates": REPLICATES,
                       "slow_replicates": args.slow_replicates,
                       "contenders": {name: {**_bench.summary(times[name]),
                                             "interval_us": intervals[name]}
                                      for name in times}}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
