"""A halt seen by a node: `hasq_halted`, /status reasons, exactly one webhook alert per halt however often the
health loop reads it, and a resolved alert when an operator resumes (a real webhook receiver)."""

from __future__ import annotations

import trio

from ha_sequencer.ha.store import Halt
from ha_sequencer.monitoring.alerts import Alerter
from ha_sequencer.node.health import HaltWatch, Health
from ha_sequencer.node.metrics import NodeMetrics

ATTESTER = "0x97b4Bc13dDF230A465598F80B984fD3d15A3edd7"
OTHER = "0x8BA4cE712dF60fc14D6C7D7DEf5C099De2c97a98"


def _gauge(metrics: NodeMetrics, attester: str) -> float:
    return metrics.halted.labels(attester=attester)._value.get()


def test_a_halt_alerts_once_shows_in_status_and_metrics_and_resolves_on_resume(webhook) -> None:
    metrics = NodeMetrics()
    health = Health(metrics, lambda text: text)
    alerter = Alerter(webhook.url, node_id="ha1")
    watch = HaltWatch(health, [ATTESTER, OTHER], metrics, alerter)
    halt = Halt(7, "0xrollup", ATTESTER.lower(), 812, "attestation", "foreign signature for slot 812", "{}")

    async def scenario() -> None:
        async with trio.open_nursery() as n:
            await n.start(alerter.run)
            watch.note([])
            assert _gauge(metrics, ATTESTER) == 0 and _gauge(metrics, OTHER) == 0
            for _ in range(5):  # the health loop reads the same halt every second
                watch.note([halt])
            assert health.halts == [halt] and _gauge(metrics, ATTESTER) == 1 and _gauge(metrics, OTHER) == 0
            watch.note([])  # resumed
            assert health.halts == [] and _gauge(metrics, ATTESTER) == 0
            with trio.fail_after(10):
                while len(webhook.messages()) < 2:
                    await trio.sleep(0.02)
            await trio.sleep(0.2)
            n.cancel_scope.cancel()

    trio.run(scenario)
    got = [(m["alert"], m["status"]) for m in webhook.messages()]
    assert got == [("halted", "firing"), ("halted", "resolved")]
    assert webhook.messages()[0]["severity"] == "critical"
    first = webhook.messages()[0]
    assert first["details"]["slot"] == 812 and "ha-db resume" in first["summary"]
