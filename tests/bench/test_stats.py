"""Benchmark statistics: the nearest-rank quantile."""

from __future__ import annotations

import pytest

from ha_sequencer.bench.stats import percentile


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.99) is None


@pytest.mark.parametrize("q", [99, 50, 0, -0.5])
def test_a_quantile_is_a_fraction(q: float) -> None:
    with pytest.raises(ValueError, match="q must be in"):
        percentile([1.0, 2.0], q)
