"""How long each reason of /status has held: the series that alert rules count slots with.

A rule such as "the duty store unreachable for more than a slot" cannot be written with a fixed `for:` when
the slot duration is a property of the network (4 s on the devnet, 72 s on Aztec's testnet). So the node
exports, per condition, the seconds it has held without a break (0 while it does not hold), next to
`hasq_slot_duration_seconds`; the rules in deploy/prometheus/alerts.yml compare the two, and one rules file
serves every network. The node already decides what counts (a lone node with no peers is not `no_peers`), so
the conditions are exactly the codes of the /status reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import trio

from ha_sequencer.node.metrics import NodeMetrics

CONDITIONS_INTERVAL_S = 1.0
# Every reason code /status can give (node/status.py, monitoring/funds.py), exported from the start at 0 so a
# rule or a dashboard panel finds the series before the condition first happens.
KNOWN_CONDITIONS = (
    "unhealthy",  # any reason at all: /status answers 503
    "starting",
    "l1_unreachable",
    "duty_store_unreachable",
    "not_synced",
    "no_peers",
    "low_funds",
    "cannot_pay",
    "funding_account",
)


def reason_codes(reasons: Iterable[str]) -> set[str]:
    """The condition codes of /status reasons ("l1_unreachable: …" → "l1_unreachable")."""
    return {reason.split(":", 1)[0].strip() for reason in reasons}


class HealthConditions:
    """Tracks since when each condition holds and mirrors it into the node's gauges."""

    def __init__(self, metrics: NodeMetrics, *, clock: Callable[[], float] = trio.current_time) -> None:
        self._metrics = metrics
        self._clock = clock
        self._since: dict[str, float] = {}
        for code in KNOWN_CONDITIONS:
            metrics.condition_seconds.labels(condition=code).set(0)
        metrics.healthy.set(0)

    def observe(self, report: Mapping[str, Any]) -> None:
        """Update from one /status document."""
        now = self._clock()
        raw_reasons: Any = report.get("reasons") or []
        codes = reason_codes(str(r) for r in cast(list[Any], raw_reasons))
        healthy = report.get("status") == "ok"
        if not healthy:
            codes.add("unhealthy")
        for code in codes:
            self._since.setdefault(code, now)
        for code in [c for c in self._since if c not in codes]:
            del self._since[code]
        for code in set(KNOWN_CONDITIONS) | codes:
            since = self._since.get(code)
            self._metrics.condition_seconds.labels(condition=code).set(0 if since is None else now - since)
        self._metrics.healthy.set(1 if healthy else 0)
        self._endpoints(report)

    def _endpoints(self, report: Mapping[str, Any]) -> None:
        l1: Any = report.get("l1") or {}
        endpoints: Any = l1.get("endpoints") or []
        for index, endpoint in enumerate(cast(list[Any], endpoints)):
            if isinstance(endpoint, dict):
                entry = cast(dict[str, Any], endpoint)
                self._metrics.l1_endpoint_healthy.labels(index=str(index), url=str(entry.get("url"))).set(
                    1 if entry.get("healthy") else 0
                )

    async def run(
        self,
        status_report: Callable[[], Mapping[str, Any]],
        *,
        interval_s: float = CONDITIONS_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Observe /status every `interval_s` until cancelled (from the node's start: `starting` too)."""
        self.observe(status_report())
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            self.observe(status_report())
