"""Summary statistics of benchmark samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-quantile (0 < q ≤ 1) of `values`, or None when there are none."""
    if not 0 < q <= 1:
        # `percentile(xs, 99)` once reported the maximum as a p99: a quantile is a fraction.
        raise ValueError(f"percentile: q must be in (0, 1], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank: the ceil(q·n)-th smallest. round() took x.5 to even (one rank off); the 1e-9 absorbs
    # float error such as 0.07·100 = 7.000000000000001.
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered) - 1e-9) - 1))
    return ordered[rank]
