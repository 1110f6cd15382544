"""Statistics for honest numbers: Wilson intervals for rates, percentiles for latencies."""
from __future__ import annotations

import math

import numpy as np


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> list | None:
    """Wilson score 95% interval for k successes in n trials ([lo, hi]; None when n == 0)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The exact bounds at k == 0 and k == n are 0 and 1; rounding would otherwise report
    # 0.9999999999999999, which reads as "not certain" in a table.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return [lo, hi]


def percentiles(values) -> dict | None:
    """{"p50", "p90", "p99"} of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}
