"""The median wall time of a call, for the benchmarks beside this file."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(work: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median seconds of `repeats` calls of `work`, after one untimed call when `warm_up`."""
    if warm_up:
        work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
