"""The growth exponent of a cost curve, shared by the benchmarks and the Metrics page."""

from __future__ import annotations

import math
import statistics


def growth_exponent(sizes: list[int], seconds: list[float]) -> float:
    """The k of ``seconds ~ size**k``: the least-squares slope of log(seconds) over log(size).

    About 1 is linear, 2 quadratic; n log n over sizes 10^3..10^5 fits to about 1.1.
    """
    if len(sizes) != len(seconds) or len(sizes) < 2:
        raise ValueError(f"need two or more (size, seconds) pairs, got {len(sizes)} sizes and {len(seconds)} times")
    if any(w <= 0 for w in sizes) or any(s <= 0 for s in seconds):
        raise ValueError(f"sizes and times must be positive: sizes {sizes}, seconds {seconds}")
    xs = [math.log(w) for w in sizes]
    ys = [math.log(s) for s in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    if spread == 0:
        raise ValueError(f"sizes must differ to fit a growth exponent, got {sizes}")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / spread
