"""Prometheus metrics of the guard: every outcome and the claim latency, by duty type and node id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Claim latency buckets (seconds): loopback Postgres claims take ~0.2–1 ms, SQLite with fsync a few ms.
CLAIM_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


class GuardMetrics:
    """The guard's metric families, registered on a registry the node can share (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.outcomes = Counter(
            "hasq_ha_duty_outcomes_total",
            "Duty guard outcomes.",
            ["duty_type", "node_id", "outcome"],
            registry=self.registry,
        )
        self.claim_seconds = Histogram(
            "hasq_ha_duty_claim_seconds",
            "Guard overhead per duty: store round trips, signing excluded.",
            ["duty_type", "node_id"],
            buckets=CLAIM_BUCKETS,
            registry=self.registry,
        )
        self.publish_turns = Counter(
            "hasq_ha_publish_turns_total",
            "Publish-record decisions.",
            ["node_id", "turn"],
            registry=self.registry,
        )
        self.store_healthy = Gauge(
            "hasq_ha_store_healthy",
            "1 when the duty store answers, else 0.",
            ["node_id"],
            registry=self.registry,
        )
