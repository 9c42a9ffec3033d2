"""The one percentile definition of the benchmarks (make bench and make decision-bench), and the timing loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile of `values` as one of the samples: the nearest rank.

    The sample at index round(p/100 × (n − 1)) of the sorted values, rounding half to even: the
    sample nearest to numpy's linearly interpolated position, i.e. `numpy.percentile(values, p,
    method="nearest")`. A measured time, never a blend of two; 0.0 for no values.

    >>> percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50)
    3.0
    >>> percentile([float(i) for i in range(1, 101)], 99)
    99.0
    """
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timings_us(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """p50 and p99 in µs of `fn(i)` for i in 0..n-1, each call timed alone (wall clock)."""
    clock = time.perf_counter_ns
    samples = []
    for i in range(n):
        t0 = clock()
        fn(i)
        samples.append((clock() - t0) / 1000)
    return {"p50_us": round(percentile(samples, 50), 1), "p99_us": round(percentile(samples, 99), 1)}
