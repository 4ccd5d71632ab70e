"""The webhook alerter against a real local HTTP server: each condition once, recovery notices, no secrets."""

from __future__ import annotations

import logging

import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.monitoring.alerts import Alerter, AlertKind, NullAlerter, make_alerter, watch_health
from ha_sequencer.monitoring.thresholds import Thresholds

ETH = 10**18
PUBLISHER_KEY = Account.from_key(keccak(b"alert test publisher"))
PUBLISHER = PUBLISHER_KEY.address
ATTESTER = Account.from_key(keccak(b"alert test attester")).address


def test_each_alert_once_with_recovery_notices(webhook, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    alerter = Alerter(webhook.url, node_id="node1", retries=2, backoff_s=0.05)
    thresholds = Thresholds()
    sent: dict[str, bool] = {}

    async def main() -> None:
        async with trio.open_nursery() as n:
            await n.start(alerter.run)
            # the same conditions reported again and again, as a node's timers do
            for _ in range(3):
                sent.setdefault("low", alerter.low_balance(PUBLISHER, ETH // 8, "WARN", thresholds))
                alerter.node_unhealthy(["low_funds: …"])
                alerter.signature_refused(ATTESTER, 12, "attestation", existing_digest=b"\xab" * 32)
                alerter.duty_missed(ATTESTER, 13, "block_proposal", "no quorum")
            await trio.to_thread.run_sync(webhook.wait_for, 4)
            # from a worker thread too (the funds watcher's checks run there): the idle sender is woken
            assert await trio.to_thread.run_sync(lambda: alerter.duty_missed(ATTESTER, 14, "attestation"))
            await trio.to_thread.run_sync(webhook.wait_for, 5)
            assert alerter.low_balance(PUBLISHER, ETH // 20, "CRITICAL", thresholds)  # escalation: once more
            assert not alerter.low_balance(PUBLISHER, ETH // 30, "CRITICAL", thresholds)
            await trio.to_thread.run_sync(webhook.wait_for, 6)
            # recoveries: each once, and only for conditions that were firing
            for _ in range(2):
                alerter.balance_ok(PUBLISHER, ETH)
                alerter.node_healthy()
                alerter.signature_ok(ATTESTER, 20, "attestation")
                alerter.duty_done(ATTESTER, 21, "block_proposal")
                alerter.duty_done(ATTESTER, 22, "attestation")
                assert not alerter.duty_done(PUBLISHER, 21, "attestation")  # never fired
            await trio.to_thread.run_sync(webhook.wait_for, 11)
            await trio.sleep(0.2)  # nothing else may arrive
            n.cancel_scope.cancel()

    trio.run(main)
    got = webhook.messages()
    assert len(got) == 11, got
    firing = [(m["alert"], m["condition"]) for m in got if m["status"] == "firing"]
    assert firing == [
        ("low_balance", f"low_balance:{PUBLISHER}"),
        ("node_unhealthy", "node_unhealthy:node1"),
        ("signature_refused", f"signature_refused:{ATTESTER}:attestation"),
        ("missed_duty", f"missed_duty:{ATTESTER}:block_proposal"),
        ("missed_duty", f"missed_duty:{ATTESTER}:attestation"),
        ("low_balance", f"low_balance:{PUBLISHER}"),
    ]
    assert [m["severity"] for m in got[:6]] == [
        "warning",
        "critical",
        "critical",
        "warning",
        "warning",
        "critical",
    ]
    resolved = sorted(m["condition"] for m in got if m["status"] == "resolved")
    assert resolved == sorted({c for _, c in firing})
    assert all(m["node"] == "node1" and m["schema"] == "ha-sequencer/alert/v1" for m in got)
    refused = got[2]
    assert refused["details"] == {
        "attester": ATTESTER,
        "slot": 12,
        "duty": "attestation",
        "existingDigest": "0x" + "ab" * 32,
    }
    assert got[0]["details"]["balanceEth"] == "0.125000000000000000"
    assert sent["low"] is True and alerter.active() == []
    assert webhook.paths == ["/hooks/secret-token-123"] * 11
    everything = repr(got) + caplog.text + repr(alerter)
    assert PUBLISHER_KEY.key.hex()[2:] not in everything
    assert "secret-token-123" not in caplog.text and "secret-token-123" not in repr(alerter)


def test_dead_webhook_never_blocks_the_node(webhook, caplog) -> None:
    """A webhook answering 500: some retries, then the alert is dropped and logged; fire() never waits."""
    webhook.status = 500
    alerter = Alerter(webhook.url, node_id="node2", retries=3, backoff_s=0.01)

    async def main() -> None:
        async with trio.open_nursery() as n:
            await n.start(alerter.run)
            with trio.fail_after(1):  # queuing is immediate whatever the webhook does
                for slot in range(10):
                    alerter.fire(AlertKind.MISSED_DUTY, f"k{slot}", f"missed {slot}")
            while len(alerter.failed) < 10:
                await trio.sleep(0.02)
            n.cancel_scope.cancel()

    trio.run(main)
    assert webhook.messages() == [] and len(alerter.failed) == 10 and alerter.delivered == []
    assert "not delivered to http://127.0.0.1" in caplog.text and "after 3 attempts (HTTP 500)" in caplog.text
    assert "secret-token-123" not in caplog.text


def test_bad_webhook_url_is_an_input_error_without_echo() -> None:
    import pytest

    from ha_sequencer.errors import InputError

    with pytest.raises(InputError) as info:
        Alerter("ftp://user:pw@example.com/x", node_id="n")
    assert "pw" not in str(info.value) and info.value.exit_code == 2


def test_watch_health_alerts_after_grace_and_recovers_once(webhook) -> None:
    alerter = Alerter(webhook.url, node_id="node3", backoff_s=0.01)
    status = {"status": "ok", "reasons": []}

    async def main() -> None:
        async with trio.open_nursery() as n:
            await n.start(alerter.run)
            n.start_soon(lambda: watch_health(alerter, lambda: status, interval_s=0.01, grace_s=0.2))
            status.update(status="unhealthy", reasons=["not_synced"])
            await trio.sleep(0.05)
            status.update(status="ok", reasons=[])  # a blip shorter than the grace: no alert
            await trio.sleep(0.05)
            status.update(status="unhealthy", reasons=["duty_store_unreachable"])
            await trio.to_thread.run_sync(webhook.wait_for, 1)
            await trio.sleep(0.1)  # still unhealthy: no second alert
            status.update(status="ok", reasons=[])
            await trio.to_thread.run_sync(webhook.wait_for, 2)
            await trio.sleep(0.1)
            n.cancel_scope.cancel()

    trio.run(main)
    got = webhook.messages()
    assert [(m["alert"], m["status"]) for m in got] == [
        ("node_unhealthy", "firing"),
        ("node_unhealthy", "resolved"),
    ]
    assert got[0]["details"]["reasons"] == ["duty_store_unreachable"]


def test_without_a_webhook_the_null_alerter_takes_every_call_and_sends_nothing(webhook) -> None:
    assert isinstance(make_alerter(webhook.url, node_id="n", registry=None), Alerter)
    alerter = make_alerter(None, node_id="n", registry=None)
    assert isinstance(alerter, NullAlerter)
    queued = [
        alerter.low_balance(PUBLISHER, ETH // 20, "CRITICAL", Thresholds()),
        alerter.balance_ok(PUBLISHER, ETH),
        alerter.node_unhealthy(["not_synced"]),
        alerter.node_healthy(),
        alerter.signature_refused(ATTESTER, 5, "attestation", existing_digest=b"\x01" * 32),
        alerter.signature_ok(ATTESTER, 6, "attestation"),
        alerter.duty_missed(ATTESTER, 7, "block_proposal", "no quorum"),
        alerter.duty_done(ATTESTER, 8, "block_proposal"),
    ]
    assert queued == [False] * 8
    assert alerter.active() is None  # /status: alerts off, not "none firing"

    async def main() -> None:
        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                await n.start(alerter.run)  # started, then done: nothing to deliver
                n.start_soon(lambda: watch_health(alerter, lambda: {"status": "unhealthy"}, interval_s=0.01))
                await trio.sleep(0.05)
                n.cancel_scope.cancel()

    trio.run(main)
    assert webhook.messages() == []
