"""The node's Prometheus metrics, on one registry that the guard and gossip may also register on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "hasq"
# ms-scale buckets: a slot is a few seconds, quorum is expected well under one
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class NodeMetrics:
    """All node-level series; `registry` is shared with the duty guard and gossip."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.slot = Gauge(f"{PREFIX}_slot", "Current slot by the node's clock", registry=r)
        self.duties = Counter(
            f"{PREFIX}_duties_total",
            "Duties handled, by type and guard outcome (new, same_data, adopted, busy, refused, error)",
            ["duty", "outcome"],
            registry=r,
        )
        self.attestations_collected = Counter(
            f"{PREFIX}_attestations_collected_total",
            "Valid attestations collected for this node's proposals",
            registry=r,
        )
        self.quorum = Counter(
            f"{PREFIX}_proposals_total", "Own proposals by result (quorum, no_quorum)", ["result"], registry=r
        )
        self.proposals_resent = Counter(
            f"{PREFIX}_proposals_resent_total",
            "A twin's recorded proposal sent again from the duty store (it never reached gossip)",
            registry=r,
        )
        self.proposal_latency = Histogram(
            f"{PREFIX}_proposal_latency_seconds",
            "Seconds after slot start, by stage (gossiped, quorum, submitted, mined)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.l1_submissions = Counter(
            f"{PREFIX}_l1_submissions_total",
            "L1 propose() submissions by result (mined, reverted, error, skipped_on_chain, yielded)",
            ["result"],
            registry=r,
        )
        # gossip messages by topic and verdict: p2p.validation.GossipMetrics, on this same registry
        self.sync_height = Gauge(f"{PREFIX}_sync_height", "Highest L2 block applied from L1", registry=r)
        self.l1_tip_height = Gauge(
            f"{PREFIX}_l1_tip_height", "L2 block number at the L1 rollup tip", registry=r
        )
        self.synced = Gauge(f"{PREFIX}_synced", "1 when local L2 state matches the L1 tip", registry=r)
        self.store_healthy = Gauge(f"{PREFIX}_store_healthy", "1 when the duty store answers", registry=r)
        self.l1_healthy = Gauge(f"{PREFIX}_l1_healthy", "1 when an L1 RPC endpoint answers", registry=r)
        self.peers = Gauge(f"{PREFIX}_peers", "Connected gossip peers", registry=r)
        self.mempool_size = Gauge(f"{PREFIX}_mempool_txs", "Transactions in the mempool", registry=r)
        self.detector = Counter(
            f"{PREFIX}_detector_sightings_total",
            "Messages of this node's attesters checked against the duty store, by verdict (ours, foreign, …)",
            ["verdict"],
            registry=r,
        )
        self.halted = Gauge(
            f"{PREFIX}_halted",
            "1 while the attester is halted fleet-wide (a signature the duty store did not issue was seen)",
            ["attester"],
            registry=r,
        )
        # what the alert rules (deploy/prometheus/alerts.yml) count in slots: node/conditions.py
        self.slot_duration = Gauge(
            f"{PREFIX}_slot_duration_seconds",
            "The network's slot duration, once read from L1",
            registry=r,
        )
        self.healthy = Gauge(f"{PREFIX}_healthy", "1 when /status answers 200 (no reason given)", registry=r)
        self.condition_seconds = Gauge(
            f"{PREFIX}_health_condition_seconds",
            "Seconds each /status reason has held without a break (0 while it does not hold); "
            "condition 'unhealthy' is any reason",
            ["condition"],
            registry=r,
        )
        self.l1_endpoint_healthy = Gauge(
            f"{PREFIX}_l1_endpoint_healthy",
            "1 when this L1 RPC endpoint answers (url redacted: scheme and host)",
            ["index", "url"],
            registry=r,
        )
        # an identity's duties read back from L1 once final, the same on every twin: node/duty_audit.py
        self.identity_duties = Counter(
            f"{PREFIX}_identity_duties_total",
            "Duties of each attester of this node judged from L1 once final, by duty and result "
            "(done, missed, no_block: an attestation due in a slot without a block)",
            ["attester", "duty", "result"],
            registry=r,
        )
        self.identity_missed_streak = Gauge(
            f"{PREFIX}_identity_missed_duties_streak",
            "Duties of this kind the attester missed in a row (0 once one is done)",
            ["attester", "duty"],
            registry=r,
        )
        self.rpc_txs = Counter(
            f"{PREFIX}_rpc_txs_total",
            "node_sendTx calls by result (accepted, rejected)",
            ["result"],
            registry=r,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
