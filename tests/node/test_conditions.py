"""How long each /status reason has held, as the alert rules read it (hasq_health_condition_seconds)."""

from __future__ import annotations

from typing import Any

from ha_sequencer.node.conditions import KNOWN_CONDITIONS, HealthConditions, reason_codes
from ha_sequencer.node.metrics import NodeMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _value(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _report(*reasons: str, endpoints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "status": "unhealthy" if reasons else "ok",
        "reasons": list(reasons),
        "l1": {"endpoints": endpoints or []},
    }


def test_reason_codes_are_the_text_before_the_colon() -> None:
    assert reason_codes(["l1_unreachable: RpcUnavailable: x: y", "not_synced", "low_funds: publisher …"]) == {
        "l1_unreachable",
        "not_synced",
        "low_funds",
    }


def test_every_known_condition_is_exported_at_zero_from_the_start() -> None:
    metrics = NodeMetrics()
    HealthConditions(metrics, clock=FakeClock())
    for code in KNOWN_CONDITIONS:
        assert _value(metrics, "hasq_health_condition_seconds", condition=code) == 0
    assert _value(metrics, "hasq_healthy") == 0  # not observed yet: not known to be healthy


def test_a_condition_counts_seconds_without_a_break_and_drops_to_zero_when_it_ends() -> None:
    metrics, clock = NodeMetrics(), FakeClock()
    conditions = HealthConditions(metrics, clock=clock)
    conditions.observe(_report("duty_store_unreachable"))
    clock.now += 3.5
    conditions.observe(_report("duty_store_unreachable", "not_synced"))
    assert _value(metrics, "hasq_health_condition_seconds", condition="duty_store_unreachable") == 3.5
    assert _value(metrics, "hasq_health_condition_seconds", condition="not_synced") == 0  # just started
    assert _value(metrics, "hasq_health_condition_seconds", condition="unhealthy") == 3.5
    assert _value(metrics, "hasq_healthy") == 0
    clock.now += 1
    conditions.observe(_report("not_synced"))
    assert _value(metrics, "hasq_health_condition_seconds", condition="duty_store_unreachable") == 0
    assert _value(metrics, "hasq_health_condition_seconds", condition="not_synced") == 1
    clock.now += 1
    conditions.observe(_report("duty_store_unreachable"))  # a new outage counts from 0 again
    assert _value(metrics, "hasq_health_condition_seconds", condition="duty_store_unreachable") == 0
    conditions.observe(_report())
    assert _value(metrics, "hasq_health_condition_seconds", condition="unhealthy") == 0
    assert _value(metrics, "hasq_healthy") == 1


def test_each_l1_endpoint_is_a_series_by_its_redacted_url() -> None:
    metrics = NodeMetrics()
    conditions = HealthConditions(metrics, clock=FakeClock())
    endpoints = [
        {"url": "https://rpc-a.example", "healthy": False},
        {"url": "http://127.0.0.1:8545", "healthy": True},
    ]
    conditions.observe(_report(endpoints=endpoints))
    assert _value(metrics, "hasq_l1_endpoint_healthy", index="0", url="https://rpc-a.example") == 0
    assert _value(metrics, "hasq_l1_endpoint_healthy", index="1", url="http://127.0.0.1:8545") == 1
