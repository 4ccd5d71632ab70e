"""/status calls the duty store unhealthy soon after a real hang (frozen TCP, no reset) or refusal.

Generous bounds only (the machine is shared): the targets (≤ 1 s hang, ≤ 0.5 s refused) are measured by
benchmarks/health_timing.py."""

from __future__ import annotations

import pytest
from store_health_timing import seconds_to_unhealthy


@pytest.mark.postgres
def test_a_frozen_store_is_unhealthy_soon(pg_url: str) -> None:
    assert seconds_to_unhealthy(pg_url, lambda proxy: proxy.pause()) < 5.0


@pytest.mark.postgres
def test_a_refusing_store_is_unhealthy_soon(pg_url: str) -> None:
    assert seconds_to_unhealthy(pg_url, lambda proxy: proxy.refuse()) < 5.0
